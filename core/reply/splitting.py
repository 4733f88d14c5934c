"""Split a long reply into messages that fit a platform's limit, without losing a character.

Rules (pure functions, no I/O):

- Every chunk is at most `limit` characters. `limit` must be at least MIN_LIMIT (64); platforms use
  2,000 (Discord) to ~12,000 (Slack markdown_text).
- A split goes preferably after a paragraph break (``\\n\\n``), else after a line break, else after a
  space, else anywhere (a hard split inside a long word). Breaks are searched in the later half of the
  window first, so chunks do not come out tiny. The whitespace of a break stays at the END of the earlier
  chunk; the next chunk starts with the first character after it.
- Code fences: a *fence line* is a line that starts with three backticks after at most three spaces
  (the CommonMark indentation rule). Every fence line toggles "inside a code block" (that is how Slack
  and Discord render them, too). When a split falls inside a code block, the chunk gets the closer
  ``"\\n```"`` appended and the next chunk starts with the opening fence line again (``"```python\\n"``;
  fence lines longer than 24 characters are reopened as a bare ``"```\\n"``). So every chunk but the last
  has an even number of fence lines; the last one is as balanced as the text itself.
- A split never cuts a run of backticks and never makes a mid-line ``"```"`` the start of a new line,
  so a chunk's fences mean what they meant in the whole text.
- `unsplit(split_message(t, n)) == t` for every text t and every n >= MIN_LIMIT: unsplit removes exactly
  the added closers and reopeners. (To keep that unambiguous a piece never ends right after a
  ``"\\n```"`` that is part of the text.)
"""
from __future__ import annotations

FENCE = "```"
CLOSER = "\n```"
MIN_LIMIT = 64
MAX_REOPEN = 24          # longest fence line repeated verbatim when a code block is reopened
LOOKAHEAD = 8            # characters after a split point that decide whether the point is allowed


def is_fence_line(line: str) -> bool:
    """True for a line that opens or closes a code block: up to three spaces, then three backticks."""
    i = 0
    while i < 3 and i < len(line) and line[i] == " ":
        i += 1
    return line.startswith(FENCE, i)


def scan_fences(text: str, fence: str | None = None) -> str | None:
    """The fence line still open after `text`, starting in state `fence` (None = outside a code block).

    The last line counts even without a trailing newline.
    """
    for line in text.split("\n"):
        if is_fence_line(line):
            fence = None if fence is not None else line.rstrip()
    return fence


def open_fence(text: str) -> str | None:
    """The fence line (e.g. ``"```python"``) of the code block still open at the end of `text`, or None."""
    return scan_fences(text, None)


def reopener(fence: str | None) -> str:
    """What a chunk starts with when the previous chunk was split inside the code block opened by `fence`."""
    if fence is None:
        return ""
    return (fence if len(fence) <= MAX_REOPEN else FENCE) + "\n"


def _allowed(text: str, p: int) -> bool:
    """May a chunk end at index p (the next chunk starts at text[p])?"""
    if p < len(text) and text[p - 1] == "`" and text[p] == "`":
        return False                       # never cut a run of backticks
    if p >= 4 and text[p - 4:p] == CLOSER:
        return False                       # would look exactly like an added closer to unsplit()
    if text[p - 1] != "\n":
        # Mid-line: the rest of the line would become a line of its own in the next chunk. It must
        # not turn into a fence line there ("see ```x```" split before the backticks).
        j = p
        while j < p + 3 and j < len(text) and text[j] == " ":
            j += 1
        if text.startswith(FENCE, j):
            return False
    return True


def _break_at(text: str, sep: str, lo: int, hi: int) -> int | None:
    """The last allowed split point right after `sep`, with lo <= point <= hi."""
    while hi >= lo:
        idx = text.rfind(sep, max(0, lo - len(sep)), hi)
        if idx < 0:
            return None
        p = idx + len(sep)
        if p < lo:
            return None
        if _allowed(text, p):
            return p
        hi = p - 1
    return None


def _split_point(text: str, start: int, end: int) -> int:
    """Where to end a chunk that starts at `start` and may hold text[start:end] (end < len(text))."""
    half = start + (end - start) // 2
    for sep in ("\n\n", "\n", " "):
        p = _break_at(text, sep, max(half, start + 1), end)
        if p is not None:
            return p
    for sep in ("\n", " "):
        p = _break_at(text, sep, start + 1, end)
        if p is not None:
            return p
    for p in range(end, start, -1):        # hard split inside a long word
        if _allowed(text, p):
            return p
    # Nothing but backticks in the window: cut anyway (only the closer rule is essential to unsplit()).
    return end - 1 if text[end - 4:end] == CLOSER else end


def next_chunk(text: str, start: int, limit: int, fence: str | None = None) -> tuple[str, int, str | None]:
    """The chunk that starts at text[start], inside the code block `fence` (or None).

    Returns (chunk, end, fence_after): the chunk as it is sent (with reopener/closer), the index in `text`
    where the next chunk starts (len(text) when this is the last chunk), and the fence still open at `end`.
    """
    if limit < MIN_LIMIT:
        raise ValueError(f"limit must be at least {MIN_LIMIT} characters, got {limit}")
    head = reopener(fence)
    if len(head) + len(text) - start <= limit:
        return head + text[start:], len(text), scan_fences(text[start:], fence)
    # Use the whole limit when the piece ends outside a code block; reserve room for the closer otherwise.
    end = _split_point(text, start, start + limit - len(head))
    after = scan_fences(text[start:end], fence)
    if after is not None:
        end = _split_point(text, start, start + limit - len(head) - len(CLOSER))
        after = scan_fences(text[start:end], fence)
    return head + text[start:end] + (CLOSER if after is not None else ""), end, after


def split_message(text: str, limit: int) -> list[str]:
    """Split `text` into chunks of at most `limit` characters (see the module doc). "" gives []."""
    if limit < MIN_LIMIT:
        raise ValueError(f"limit must be at least {MIN_LIMIT} characters, got {limit}")
    chunks: list[str] = []
    start, fence = 0, None
    while start < len(text):
        chunk, start, fence = next_chunk(text, start, limit, fence)
        chunks.append(chunk)
    return chunks


def unsplit(chunks: list[str]) -> str:
    """Inverse of split_message: drop the added closers and reopeners and join the pieces."""
    pieces: list[str] = []
    fence: str | None = None
    for i, chunk in enumerate(chunks):
        head = reopener(fence)
        if not chunk.startswith(head):
            raise ValueError(f"chunk {i} does not reopen the code block {fence!r}")
        body = chunk[len(head):]
        last = i == len(chunks) - 1
        if not last and body.endswith(CLOSER) and scan_fences(body[:-len(CLOSER)], fence) is not None:
            body = body[:-len(CLOSER)]
        fence = scan_fences(body, fence)
        pieces.append(body)
    return "".join(pieces)
