"""What kind of file is this? Decided from the first bytes first, the name second.

Platforms report whatever the user's machine claimed (Slack's `filetype`, Discord's `content_type`) and users
rename files; the model side cares about what the bytes are. A file called `scan.png` whose bytes start with
`%PDF-` is a PDF here, and is uploaded as `scan.pdf` so that OpenAI's file tools recognise it too.
"""
from __future__ import annotations

import csv
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import PurePath


@dataclass(frozen=True, slots=True)
class FileKind:
    ext: str        # canonical extension without the dot: "png", "pdf", "csv", "docx", "bin", ...
    mime: str
    is_text: bool = False


_MIME = {
    "png": "image/png", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp",
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "xls": "application/vnd.ms-excel", "doc": "application/msword", "ppt": "application/vnd.ms-powerpoint",
    "zip": "application/zip", "gz": "application/gzip", "tar": "application/x-tar",
    "parquet": "application/vnd.apache.parquet", "pkl": "application/octet-stream",
    "exe": "application/vnd.microsoft.portable-executable", "elf": "application/x-elf",
    "bin": "application/octet-stream",
    "csv": "text/csv", "tsv": "text/tab-separated-values", "json": "application/json",
    "ipynb": "application/x-ipynb+json", "txt": "text/plain", "md": "text/markdown", "html": "text/html",
    "xml": "application/xml", "yaml": "application/yaml", "py": "text/x-python", "js": "text/javascript",
    "ts": "application/typescript", "css": "text/css", "sh": "application/x-sh", "tex": "text/x-tex",
    "c": "text/x-c", "cpp": "text/x-c++", "cs": "text/x-csharp", "java": "text/x-java", "go": "text/x-golang",
    "rb": "text/x-ruby", "php": "text/x-php", "sql": "application/sql", "r": "text/x-r", "log": "text/plain",
    "rst": "text/x-rst",
}

# Names users give the same thing.
_ALIASES = {"jpg": "jpeg", "jpe": "jpeg", "htm": "html", "yml": "yaml", "markdown": "md", "text": "txt",
            "jsonl": "json", "cc": "cpp", "cxx": "cpp", "h": "c", "hpp": "cpp", "tab": "tsv", "pickle": "pkl"}

TEXT_EXTS = frozenset({
    "csv", "tsv", "json", "ipynb", "txt", "md", "html", "xml", "yaml", "py", "js", "ts", "css", "sh", "tex",
    "c", "cpp", "cs", "java", "go", "rb", "php", "sql", "r", "log", "rst",
})
_OLE_EXTS = frozenset({"xls", "doc", "ppt"})
_OOXML = (("word/", "docx"), ("xl/", "xlsx"), ("ppt/", "pptx"))


def name_ext(name: str) -> str:
    """The canonical extension a file name claims ("" when none)."""
    suffix = PurePath(name).suffix.lower().lstrip(".")
    return _ALIASES.get(suffix, suffix)


def mime_for(ext: str) -> str:
    return _MIME.get(ext, "application/octet-stream")


def sniff(name: str, data: bytes) -> FileKind:
    """Kind of `data` (the whole file or at least its first few KB) named `name`. Bytes win over the name."""
    claimed = name_ext(name)
    magic = _magic(data, claimed)
    if magic:
        return FileKind(magic, mime_for(magic))
    text = _as_text(data)
    if text is None:
        # Binary without a signature we know: only trust names of binary formats we route (parquet has a
        # signature, so this is mostly pickles); anything else stays opaque.
        ext = claimed if claimed in {"pkl"} else "bin"
        return FileKind(ext, mime_for(ext))
    ext = _text_kind(text, claimed)
    return FileKind(ext, mime_for(ext), is_text=True)


def _magic(data: bytes, claimed: str) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    # PDF writers may put junk before the header; readers accept it within the first 1024 bytes.
    if b"%PDF-" in data[:1024]:
        return "pdf"
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return _zip_kind(data, claimed)
    if data.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):  # OLE2: legacy Office, the name tells which
        return claimed if claimed in _OLE_EXTS else "bin"
    if data.startswith(b"PAR1"):
        return "parquet"
    if data.startswith(b"\x1f\x8b"):
        return "gz"
    if len(data) > 262 and data[257:262] == b"ustar":
        return "tar"
    if data.startswith(b"MZ") and b"\x00" in data[:64]:  # a DOS header has NULs; text starting "MZ" does not
        return "exe"
    if data.startswith(b"\x7fELF"):
        return "elf"
    return ""


def _zip_kind(data: bytes, claimed: str) -> str:
    """docx/xlsx/pptx are zip files told apart by their part names."""
    try:
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    except (zipfile.BadZipFile, ValueError, EOFError):
        # Only the head was given (or a damaged file): part names of the first entries are in the local
        # headers, which is usually enough.
        head = data[:65536]
        names = [prefix for prefix, _ in _OOXML if prefix.encode() in head]
    for prefix, ext in _OOXML:
        if any(n.startswith(prefix) for n in names):
            return ext
    return "zip"


def _as_text(data: bytes) -> str | None:
    if not data:
        return ""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            return None
    if b"\x00" in data[:8192]:
        return None
    sample = data[:65536]
    try:
        return sample.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample (or of a head the caller passed) is still text.
        if exc.reason == "unexpected end of data" and exc.start >= len(sample) - 3:
            return sample[: exc.start].decode("utf-8-sig")
        return None


def _text_kind(text: str, claimed: str) -> str:
    stripped = text.lstrip()
    if claimed in ("json", "ipynb"):
        return claimed if stripped[:1] in ("{", "[") else "txt"
    if claimed in TEXT_EXTS:
        return claimed
    # No name we trust (none, or a binary one like .png on a text file): look at the content.
    if stripped[:1] in ("{", "[") and _is_json(stripped):
        return "json"
    low = stripped[:256].lower()
    if low.startswith(("<!doctype html", "<html")):
        return "html"
    if low.startswith("<?xml"):
        return "xml"
    delim = _table_delimiter(text)
    if delim == "\t":
        return "tsv"
    if delim:
        return "csv"
    return "txt"


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
        return True
    except ValueError:
        return False


def _table_delimiter(text: str) -> str:
    """CSV heuristic: at least two lines, every line with the same (non-zero) number of fields."""
    lines = [ln for ln in text.splitlines()[:20] if ln.strip()]
    if len(lines) < 2:
        return ""
    try:
        dialect = csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t|")
    except csv.Error:
        return ""
    rows = list(csv.reader(lines, dialect))
    widths = {len(r) for r in rows}
    if len(widths) == 1 and widths.pop() >= 2:
        return dialect.delimiter
    return ""
