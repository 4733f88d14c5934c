"""`sandbox:` links out of answers: code interpreter answers end with `[Download the chart](sandbox:/mnt/data/chart.png)`,
a path inside OpenAI's container that no chat platform can open. Users never see one.

The file itself reaches the chat as an upload (core's OutboundFile, posted by the platform). A link to it becomes a
link to the file as posted (a Slack permalink, a Discord attachment URL, a path on the console) when the platform
says where it is, else just its label: the file is shown right there in the thread.

Text streams in deltas, so a link arrives in pieces (`[Download the ch`, `art](sand`, `box:/mnt/data/chart.png)`).
What could still become a sandbox link is held back until it is decided; a complete link whose file has not been
posted yet is held (with the text after it, to keep the order) until the file is posted, the answer ends, or
HOLD_CHARS more characters arrived — the model's stream names the file (its container_file_citation annotation) right
after the text that links it, so the wait is short. Nothing is lost: `flush()` releases everything at the end.
"""
from __future__ import annotations

import re
from posixpath import basename
from urllib.parse import unquote

HOLD_CHARS = 400        # text after an unresolved link held back at most, waiting for its file to be posted
MAX_LABEL = 300         # a "[" followed by more than this without "]" is not a link label
SCHEME = "sandbox:"

# [label](sandbox:/mnt/data/x.png) and ![alt](sandbox:...); the target may hold spaces (models write them).
_LINK = re.compile(r"!?\[([^\[\]\n]{0,%d})\]\(\s*sandbox:([^)\n]*?)\s*\)" % MAX_LABEL)
_BARE = re.compile(r"sandbox:(/[^\s)\]>\"'`]*)")


def _could_become_link(tail: str) -> bool:
    """Whether `tail` (starting at "[" or "![") is a prefix of `[label](sandbox:…)` not yet complete."""
    s = tail[1:] if tail.startswith("!") else tail
    close = s.find("]")
    if close < 0:
        return len(s) <= MAX_LABEL + 1 and "\n" not in s and "[" not in s[1:]
    if "\n" in s[:close] or "[" in s[1:close]:
        return False
    rest = s[close + 1:]
    if not rest:
        return True
    if not rest.startswith("("):
        return False
    target = rest[1:].lstrip()
    if len(target) < len(SCHEME):
        return SCHEME.startswith(target)
    return target.startswith(SCHEME) and ")" not in target and "\n" not in target


class FileLinks:
    """One answer's text on its way to the reply stream: `text(delta)`, `posted(name, url)` and `flush()` each
    return what may be shown now."""

    def __init__(self) -> None:
        self._pending = ""
        self._posted: dict[str, str | None] = {}   # file name -> where it is shown (None: posted, no address)

    def text(self, delta: str) -> str:
        pending = self._pending + delta
        if "[" not in pending and SCHEME not in pending and not _ends_in_scheme(pending):
            self._pending = ""   # (every delta of almost every answer: nothing that could become a link)
            return pending
        self._pending = pending
        return self._release(final=False)

    def posted(self, name: str, url: str | None) -> str:
        """The file `name` was posted (at `url`, when the platform gave one); releases links waiting for it."""
        self._posted[basename(name)] = url or None
        return self._release(final=False) if self._pending else ""

    def flush(self) -> str:
        """The answer ended: everything held back, unresolved links as their labels."""
        return self._release(final=True)

    # ---- the work -----------------------------------------------------------------------------------------

    def _release(self, *, final: bool) -> str:
        out: list[str] = []
        pending = self._pending
        while pending:
            link, bare = _LINK.search(pending), _BARE.search(pending)
            found = min((m for m in (link, bare) if m is not None), key=lambda m: m.start(), default=None)
            cut = self._undecided(pending, found.start() if found else len(pending))
            if cut is not None:
                out.append(pending[:cut])
                if final:  # the answer stopped inside a link: its label, never the address
                    out.append(_label_of(pending[cut:]))
                    pending = ""
                else:      # wait for the rest of it
                    pending = pending[cut:]
                break
            if found is None:
                out.append(pending)
                pending = ""
                break
            if found is bare and found.end() == len(pending) and not final:
                out.append(pending[:found.start()])   # the path may go on in the next delta
                pending = pending[found.start():]
                break
            path = found.group(2) if found is link else found.group(1)
            name = basename(unquote(path.strip()))
            if name not in self._posted and not final and len(pending) - found.end() <= HOLD_CHARS:
                out.append(pending[:found.start()])   # wait for the file: it is posted right after this text
                pending = pending[found.start():]
                break
            out.append(pending[:found.start()])
            out.append(self._render(found, link_form=found is link, name=name))
            pending = pending[found.end():]
        self._pending = pending
        return "".join(out)

    def _render(self, match: re.Match[str], *, link_form: bool, name: str) -> str:
        url = self._posted.get(name)
        if link_form:
            label = match.group(1).strip() or name
            return f"[{label}]({_safe_url(url)})" if url else label
        return _safe_url(url) if url else name

    @staticmethod
    def _undecided(pending: str, before: int) -> int | None:
        """Where text that could still become a sandbox link starts (before `before`), or None."""
        start = max(0, before - MAX_LABEL - 2)
        i = pending.find("[", start)
        while 0 <= i < before:
            at = i - 1 if i > 0 and pending[i - 1] == "!" else i
            if _could_become_link(pending[at:]):
                return at
            i = pending.find("[", i + 1)
        if before == len(pending) and _ends_in_scheme(pending):   # a bare "sandbox:" being written at the end
            return pending.rfind("s", len(pending) - len(SCHEME) + 1)
        return None


def _ends_in_scheme(text: str) -> bool:
    """Whether `text` ends with the start of a bare "sandbox:" ("s", "sa", … "sandbox", after no letter or digit).
    Only the last "s" of its last seven characters can begin one: "andbox" holds no "s"."""
    at = text.rfind("s", len(text) - len(SCHEME) + 1)
    return at >= 0 and SCHEME.startswith(text[at:]) and (at == 0 or not text[at - 1].isalnum())


def _safe_url(url: str) -> str:
    """A URL or path as a Markdown link target: spaces and parentheses would end it early."""
    return url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")


def _label_of(tail: str) -> str:
    """An unfinished sandbox link's label (`[Download the chart](sandbox:/mnt/da` -> `Download the chart`); other
    text as it is — a target that never got as far as `sandbox:` is not one, and every character stays."""
    if "](" in tail and tail[tail.find("](") + 2:].startswith(SCHEME):
        return tail.lstrip("!")[1:tail.lstrip("!").find("]")]
    return tail
