"""Text out of a document, locally: what a backend without hosted file tools gets instead of the file.

Plain text and code as they are (UTF-8, else Latin-1), HTML without its tags, PDF through pypdf, and the
Office formats (docx, pptx) from their XML. Anything else (spreadsheets, archives, old binary Office files)
is not extracted: the caller says so to the user rather than sending bytes the model cannot read.
"""
from __future__ import annotations

import html
import io
import re
import zipfile

from core.files.sniff import TEXT_EXTS

EXTRACTABLE = TEXT_EXTS | {"pdf", "docx", "pptx"}

_TAGS = re.compile(r"<(script|style)\b.*?</\1>|<[^>]+>", re.S | re.I)
_BLANKS = re.compile(r"\n\s*\n\s*\n+")
_W_PARA = re.compile(r"<w:p[ >].*?</w:p>", re.S)
_W_TEXT = re.compile(r"<w:t(?: [^>]*)?>(.*?)</w:t>", re.S)
_A_PARA = re.compile(r"<a:p>.*?</a:p>", re.S)
_A_TEXT = re.compile(r"<a:t>(.*?)</a:t>", re.S)
_SLIDE = re.compile(r"ppt/slides/slide(\d+)\.xml$")


class NotExtractable(Exception):
    """The file's text cannot be read here (the message says why, for the user)."""


def extract_text(ext: str, data: bytes) -> str:
    match ext:
        case "pdf":
            return _pdf(data)
        case "docx":
            return _office(data, ["word/document.xml"], _W_PARA, _W_TEXT)
        case "pptx":
            return _pptx(data)
        case "html":
            return _BLANKS.sub("\n\n", html.unescape(_TAGS.sub("", _decode(data)))).strip()
        case _ if ext in TEXT_EXTS:
            return _decode(data)
    raise NotExtractable(f"its text can't be read here ({ext or 'unknown'} files)")


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise NotExtractable("it looks like binary data, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _pdf(data: bytes) -> str:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PyPdfError
    except ImportError as exc:  # pragma: no cover - pypdf is a dependency
        raise NotExtractable("PDF reading is not installed (pypdf)") from exc
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise NotExtractable("the PDF is password-protected")
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PyPdfError, ValueError, KeyError) as exc:
        raise NotExtractable("the PDF could not be read") from exc
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        raise NotExtractable("the PDF has no text layer (a scan?)")
    return text


def _office(data: bytes, parts: list[str], para: re.Pattern, run: re.Pattern) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            xml = [z.read(p).decode("utf-8", "replace") for p in parts if p in z.namelist()]
    except (zipfile.BadZipFile, KeyError) as exc:
        raise NotExtractable("the file could not be opened") from exc
    lines = ["".join(html.unescape(t) for t in run.findall(p)) for doc in xml for p in para.findall(doc)]
    return "\n".join(lines).strip()


def _pptx(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            slides = sorted((int(m.group(1)), n) for n in z.namelist() if (m := _SLIDE.match(n)))
    except zipfile.BadZipFile as exc:
        raise NotExtractable("the file could not be opened") from exc
    texts = []
    for number, name in slides:
        body = _office(data, [name], _A_PARA, _A_TEXT)
        if body:
            texts.append(f"Slide {number}:\n{body}")
    return "\n\n".join(texts)
