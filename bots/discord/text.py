"""Model Markdown -> Discord Markdown, and splitting for one-off replies (commands, notices).

Discord renders most CommonMark itself (bold, italics, code, lists, `#`..`###` headings, masked links);
it has no tables, no `####`+ headings and no inline images.
"""
from __future__ import annotations

import re

from core.splitting import split_message

MAX_CHARS = 2000

_FENCE = re.compile(r"^\s*```")
_DEEP_HEADING = re.compile(r"^#{4,6}\s+(.+?)\s*#*\s*$")
_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def to_discord(text: str) -> str:
    """Convert outside code fences only; never lengthen past the limit (then the text stays as it was)."""
    out: list[str] = []
    in_fence = False
    for line in text.split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence:
            m = _DEEP_HEADING.match(line)
            if m:
                line = f"**{m.group(1)}**"
            line = _IMAGE.sub(lambda m: f"[{m.group(1) or 'image'}]({m.group(2)})", line)
        out.append(line)
    converted = "\n".join(out)
    return converted if len(converted) <= MAX_CHARS or len(converted) <= len(text) else text


def split(text: str, limit: int = MAX_CHARS) -> list[str]:
    """Lossless, fence-aware split for one-off replies (commands, notices): core's splitter."""
    return split_message(text, limit) or [""]
