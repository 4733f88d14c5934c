"""What a file is, from its bytes first and its name second; and how citations read under a reply."""
from __future__ import annotations

import io
import zipfile

import pytest
from hypothesis import given, settings, strategies as st

from core.reply.citations import footnotes, number_citations
from core.model import Citation
from core.files.sniff import sniff


def ooxml(part: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr(part, "<x/>")
    return buf.getvalue()


@pytest.mark.parametrize("name,data,ext", [
    ("a.png", b"\x89PNG\r\n\x1a\n....", "png"),
    ("a", b"\xff\xd8\xff\xe0\x00\x10JFIF", "jpeg"),
    ("a.gif", b"GIF89a\x01\x00", "gif"),
    ("a.bin", b"RIFF\x10\x00\x00\x00WEBPVP8 ", "webp"),
    ("a.pdf", b"%PDF-1.4\n", "pdf"),
    ("report.docx", ooxml("word/document.xml"), "docx"),
    ("sheet", ooxml("xl/workbook.xml"), "xlsx"),
    ("deck.zip", ooxml("ppt/presentation.xml"), "pptx"),
    ("archive.zip", ooxml("src/main.py"), "zip"),
    ("old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 32, "xls"),
    ("data.parquet", b"PAR1\x15\x04", "parquet"),
    ("setup.exe", b"MZ\x90\x00\x03", "exe"),
    ("tool", b"\x7fELF\x02\x01", "elf"),
    ("random.dat", bytes(range(256)), "bin"),
])
def test_binary_kinds_come_from_the_bytes(name, data, ext):
    assert sniff(name, data).ext == ext


@pytest.mark.parametrize("name,text,ext", [
    ("t.csv", "a,b\n1,2\n", "csv"),
    ("export", "city,temp\nShanghai,25\nBeijing,19\n", "csv"),
    ("export", "city\ttemp\nShanghai\t25\nBeijing\t19\n", "tsv"),
    ("payload", '{"city": "Shanghai", "temp": 25}', "json"),
    ("list.txt", "[1, 2, 3]", "txt"),          # the name says text: fine, text it is
    ("page", "<!DOCTYPE html><html><body>hi</body></html>", "html"),
    ("notes", "Meeting notes\nWe agreed on Friday.\n", "txt"),
    ("README.md", "# Title\n", "md"),
    ("script.py", "print('hi')\n", "py"),
    ("bad.json", "not json at all", "txt"),
    ("nb.ipynb", '{"cells": []}', "ipynb"),
    ("unicode", "naïve café ✓\n", "txt"),
])
def test_text_kinds(name, text, ext):
    kind = sniff(name, text.encode())
    assert (kind.ext, kind.is_text) == (ext, True)


def test_a_file_named_png_with_pdf_bytes_is_a_pdf():
    kind = sniff("scan.png", b"%PDF-1.7\n...")
    assert (kind.ext, kind.mime) == ("pdf", "application/pdf")


def test_a_file_named_csv_with_executable_bytes_is_not_data():
    assert sniff("totally-data.csv", b"MZ\x90\x00" + b"\0" * 60).ext == "exe"


def test_a_text_file_named_png_is_text():
    assert sniff("photo.png", b"just some words\n").ext == "txt"


def test_utf8_cut_mid_character_at_the_sample_end_is_still_text():
    data = ("✓" * 30000).encode()            # 3-byte characters: the 64 KB sample ends inside one
    assert sniff("long.txt", data).is_text
    assert sniff("head.txt", ("é" * 100).encode()[:199]).is_text   # a head cut by the caller


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=300).filter(lambda s: "\x00" not in s))
def test_any_utf8_text_is_text(text):
    assert sniff("note.txt", text.encode()).is_text


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600), st.sampled_from(["a.png", "a.csv", "a", "a.pdf", "a.docx", "a.json"]))
def test_sniffing_never_raises(data, name):
    kind = sniff(name, data)
    assert kind.ext and kind.mime


def test_footnotes_number_each_source_once():
    cited = number_citations([Citation(1, "handbook.md", file_id="file-1"),
                              Citation(2, "handbook.md", file_id="file-1"),
                              Citation(3, "pricing.md", file_id="file-2"),
                              Citation(4, "OpenAI docs [beta]", url="https://platform.openai.com/docs")])
    assert footnotes(cited) == ("[1] handbook.md\n[2] pricing.md\n"
                                "[3] [OpenAI docs (beta)](https://platform.openai.com/docs)")
    assert footnotes([]) == ""
