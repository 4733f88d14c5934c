"""The reply "tail": everything a reply shows besides the model's own words, written once for every stream.

- while streaming: a cursor after the text and one status line for tool progress under it, with an open
  code block closed first so the status is not rendered as code (`decorate`);
- at the end: "(no answer)" when the model wrote nothing, citation footnotes after a blank line, or a
  one-line error notice, again after closing an open code block (`ending`);
- notices the platforms post on their own (a file too big, a reply cut off by a restart) read the same
  way (`notice_line`, `interrupted`).

Platforms render these texts; they never build them from the constants here.
"""
from __future__ import annotations

from typing import Callable, Iterable

from core.model import ToolUpdate
from core.reply.splitting import CLOSER, open_fence

NO_ANSWER = "(no answer)"
WARNING = "⚠️ "
CURSOR = " ▌"
INTERRUPTED_NOTICE = "This answer was cut off — please ask again."
STOPPED_NOTE = "⏹️ stopped"

StatusFormat = Callable[[ToolUpdate], str]
FINISHED = ("done", "failed")


def notice_line(notice: str) -> str:
    """A one-line notice as users see it (⚠️ first)."""
    return WARNING + notice


def default_status_format(update: ToolUpdate) -> str:
    """One italic line (`_..._` renders as italics in Slack mrkdwn, Discord and CommonMark)."""
    title = update.title.strip() or update.tool
    match update.status:
        case "done":
            return f"_✅ {title}_"
        case "failed":
            return f"_{WARNING}{title}_"
        case _:
            ellipsis = "" if title.endswith(("…", "...")) else "…"
            return f"_⚙️ {title}{ellipsis}_"


def status_line(tools: Iterable[ToolUpdate], fmt: StatusFormat = default_status_format) -> str:
    """The line for the tool to show now: the last one still running, else the last one that finished."""
    tools = list(tools)
    if not tools:
        return ""
    running = [u for u in tools if u.status not in FINISHED]
    return fmt(running[-1] if running else tools[-1])


def decorate(content: str, status: str, limit: int, cursor: str = CURSOR) -> str:
    """A message while its reply streams: text, cursor, status line; what does not fit within `limit` is
    left out (status first, then the cursor)."""
    if not content:
        return status
    closer = CLOSER if open_fence(content) is not None else ""   # so the status is not rendered as code
    for view in (content + cursor + closer + ("\n\n" + status if status else ""),
                 content + cursor + closer,
                 content + closer):
        if len(view) <= limit:
            return view
    return content


def ending(text: str, *, footer: str = "", notice: str | None = None) -> str:
    """What follows `text` (everything the reply shows so far) when the reply ends.

    With `notice` (the reply failed): the notice on a line of its own after a blank line, or alone when
    nothing was shown. Otherwise "(no answer)" when nothing was shown, then the footer (citation
    footnotes) set apart by a blank line unless it brings its own. An open code block is closed first.
    """
    closer = CLOSER if open_fence(text) is not None else ""
    if notice is not None:
        return (closer + "\n\n" + notice_line(notice)) if text.strip() else notice_line(notice)
    tail = ""
    if not text.strip():
        tail, closer = NO_ANSWER, ""
    if footer:
        tail += closer + ("" if footer.startswith("\n") else "\n\n") + footer
    return tail


def stopped(text: str) -> str:
    """What follows `text` when a reader stopped the reply: a short note (the text so far stays as it is)."""
    closer = CLOSER if open_fence(text) is not None else ""
    return (closer + "\n\n" + STOPPED_NOTE) if text.strip() else STOPPED_NOTE


def undecorated(shown: str) -> str:
    """A message as it was left mid-stream (by a crash), without the streaming decoration: the cursor and what
    follows it (the open code block's closer, the tool status line)."""
    cut = shown.rfind(CURSOR)
    return (shown[:cut] if cut >= 0 else shown).rstrip()


def interrupted(text: str) -> str:
    """A message whose reply was cut off by a restart: its text (without the cursor), then the notice. Marking a
    message that already carries the notice changes nothing: a crash between recording a reply's new part and
    forgetting the one before leaves two records that lead to the same last part."""
    text = undecorated(text)
    if text.endswith(notice_line(INTERRUPTED_NOTICE)):
        return text
    return text + ending(text, notice=INTERRUPTED_NOTICE)
