"""Markdown helpers for Slack.

Replies go out as `markdown_text` (chat.postMessage / chat.update / the chat.*Stream methods), which
Slack renders as standard Markdown (headings, lists, links, code, tables), so model output passes
through unchanged (split by core.reply.splitting, as on every platform). Only surfaces that still take
legacy `text` (ephemeral messages, response_url replies) need mrkdwn: `*bold*`, `_italic_`, `~strike~`, `<url|label>`, no headings, no tables.
"""
from __future__ import annotations

import html
import re

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


def unescape(text: str) -> str:
    """Inbound message text is HTML-escaped by Slack (&lt; &gt; &amp;)."""
    return html.unescape(text)


def escape_mrkdwn(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")


def tables_as_code(md: str) -> str:
    """mrkdwn has no tables: put each run of Markdown table rows (outside code) in a code block, where its
    columns stay aligned (the usage report is a fixed-width table)."""
    out: list[str] = []
    in_code = in_table = False
    for line in md.split("\n"):
        if _FENCE.match(line):
            in_code = not in_code
        is_row = not in_code and bool(_TABLE_ROW.match(line))
        if is_row != in_table:
            out.append("```")
            in_table = is_row
        out.append(line)
    if in_table:
        out.append("```")
    return "\n".join(out)


def to_mrkdwn(md: str) -> str:
    """Standard Markdown -> Slack mrkdwn, for surfaces that only take `text`. Code is left alone."""
    out: list[str] = []
    in_code = False
    for line in tables_as_code(md).split("\n"):
        if _FENCE.match(line):
            in_code = not in_code
            out.append("```")  # mrkdwn shows a language tag literally: drop it
            continue
        if in_code:
            out.append(escape_mrkdwn(line))
            continue
        segments = re.split(r"(`[^`]*`)", line)
        for i, seg in enumerate(segments):
            if i % 2:
                segments[i] = escape_mrkdwn(seg)
                continue
            links: list[str] = []

            def keep_link(m: re.Match) -> str:
                links.append(f"<{m.group(2)}|{escape_mrkdwn(m.group(1))}>")
                return f"\x00{len(links) - 1}\x00"

            seg = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", keep_link, seg)
            seg = escape_mrkdwn(seg)
            seg = re.sub(r"^#{1,6}\s+(.*)$", "\x01\\1\x01", seg)
            seg = re.sub(r"\*\*(.+?)\*\*|__(.+?)__", lambda m: f"\x01{m.group(1) or m.group(2)}\x01", seg)
            seg = re.sub(r"(?<![*\w])\*(?!\s)([^*]+?)\*(?![*\w])", r"_\1_", seg)
            seg = seg.replace("\x01", "*")
            seg = re.sub(r"~~(.+?)~~", r"~\1~", seg)
            seg = re.sub(r"\x00(\d+)\x00", lambda m: links[int(m.group(1))], seg)
            segments[i] = seg
        out.append("".join(segments))
    return "\n".join(out)
