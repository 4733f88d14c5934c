"""Citations (file_search file_citation, web url_citation) rendered as numbered footnotes under a reply."""
from __future__ import annotations

from typing import Iterable

from core.model import Citation


def number_citations(citations: Iterable[Citation]) -> list[Citation]:
    """One footnote per source, in order of first appearance, renumbered 1..n.

    A model often cites the same file several times in one answer (one annotation per quoted passage).
    """
    seen: dict[tuple[str, str, str], Citation] = {}
    for c in citations:
        key = (c.file_id, c.url, c.title) if not (c.file_id or c.url) else (c.file_id, c.url, "")
        if key not in seen:
            seen[key] = Citation(index=len(seen) + 1, title=c.title, file_id=c.file_id, url=c.url)
    return list(seen.values())


def footnotes(citations: Iterable[Citation]) -> str:
    """Markdown lines "[1] handbook.md", "[2] [Title](https://...)"; "" when there is nothing to cite."""
    lines = []
    for c in sorted(citations, key=lambda c: c.index):
        title = (c.title or c.url or c.file_id or "source").replace("\n", " ").strip()
        if c.url:
            # Square brackets in a link text end the link early in Slack mrkdwn and Discord markdown alike.
            label = title.replace("[", "(").replace("]", ")")
            lines.append(f"[{c.index}] [{label}]({c.url})")
        else:
            lines.append(f"[{c.index}] {title}")
    return "\n".join(dict.fromkeys(lines))
