"""Model Markdown -> Discord Markdown, and splitting for one-off replies (commands, notices).

Discord renders most CommonMark itself (bold, italics, code, lists, `#`..`###` headings, masked links);
it has no tables, no `####`+ headings and no inline images. Tables are the common casualty: models love
them, and Discord shows the raw pipes. We redraw a pipe table as aligned columns inside a code block,
where a monospace font keeps the columns lined up.
"""
from __future__ import annotations

import re
import unicodedata

from core.reply.splitting import is_fence_line, split_message

MAX_CHARS = 2000

_DEEP_HEADING = re.compile(r"^#{4,6}\s+(.+?)\s*#*\s*$")
_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
_DELIMITER_CELL = re.compile(r"^\s*:?-{1,}:?\s*$")
_INLINE_MARKUP = re.compile(r"\*\*|__|`")


def to_discord(text: str, limit: int = MAX_CHARS) -> str:
    """Convert outside code fences only. The text arrives already split to `limit` (by core's EditStream),
    so a conversion that would push it past the limit falls back to a shorter form, finally to the text
    as it was: never lengthen past the limit, never lose a character."""
    for tables in ("aligned", "fenced", "raw"):
        converted = _convert(text, tables)
        if len(converted) <= limit or len(converted) <= len(text):
            return converted
    return text


def split(text: str, limit: int = MAX_CHARS) -> list[str]:
    """Lossless, fence-aware split for one-off replies (commands, notices): core's splitter."""
    return split_message(text, limit) or [""]


# ---- internals ---------------------------------------------------------------------------------------


def _convert(text: str, tables: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    in_fence = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if is_fence_line(line):
            in_fence = not in_fence
        elif not in_fence:
            end = _table_end(lines, i) if tables != "raw" else i
            if end > i:
                out.extend(_table_block(lines[i:end], aligned=tables == "aligned"))
                i = end
                continue
            m = _DEEP_HEADING.match(line)
            if m:
                line = f"**{m.group(1)}**"
            line = _IMAGE.sub(lambda m: f"[{m.group(1) or 'image'}]({m.group(2)})", line)
        out.append(line)
        i += 1
    return "\n".join(out)


def _cells(line: str) -> list[str]:
    row = line.strip()
    if row.startswith("|"):
        row = row[1:]
    if row.endswith("|") and not row.endswith("\\|"):
        row = row[:-1]
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", row)]


def _is_delimiter(line: str) -> bool:
    return "-" in line and "|" in line and all(_DELIMITER_CELL.match(c) for c in _cells(line))


def _table_end(lines: list[str], start: int) -> int:
    """Index after a GFM pipe table starting at `start` (header row, delimiter row, body rows), else `start`."""
    if start + 1 >= len(lines) or "|" not in lines[start] or is_fence_line(lines[start]):
        return start
    if not _is_delimiter(lines[start + 1]) or len(_cells(lines[start])) != len(_cells(lines[start + 1])):
        return start
    end = start + 2
    while end < len(lines) and "|" in lines[end] and lines[end].strip() and not is_fence_line(lines[end]):
        end += 1
    return end


def _width(text: str) -> int:
    # CJK and other wide characters take two columns in a monospace font.
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _table_block(rows: list[str], *, aligned: bool) -> list[str]:
    if not aligned:
        return ["```", *rows, "```"]
    header, delimiter, *body = ([_INLINE_MARKUP.sub("", c) for c in _cells(r)] for r in rows)
    ncols = len(header)
    table = [(r + [""] * ncols)[:ncols] for r in (header, *body)]
    widths = [max(_width(r[c]) for r in table) for c in range(ncols)]
    right = [d.endswith(":") and not d.startswith(":") for d in delimiter]

    def row(cells: list[str]) -> str:
        padded = [(" " * (w - _width(c)) + c) if r else (c + " " * (w - _width(c)))
                  for c, w, r in zip(cells, widths, right)]
        return " | ".join(padded).rstrip(" |")  # short rows: no trailing empty cells

    rule = "-+-".join("-" * w for w in widths)
    return ["```", row(table[0]), rule, *(row(r) for r in table[1:]), "```"]
