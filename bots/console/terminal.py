"""The console on a terminal: the answer rendered as Markdown with colour while it streams, tool progress on one
line that updates in place. Used only when standard input and output are both a terminal; a pipe gets the plain
text of bots.console.target, unchanged, because scripts and tests read it.
"""
from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.markdown import Markdown
from rich.text import Text

from core.model import OutboundFile, ToolUpdate
from core.ports import Limits, OnPosted
from core.reply.lifetime import ReplyLifetime
from core.reply.tail import ending, stopped
from bots.console.target import _free_path

REFRESH_SECONDS = 1 / 15  # re-rendering Markdown on every delta would cost more than the terminal shows


class TerminalStream:
    """core's ReplyStream on a terminal: the text re-rendered as Markdown in place (rich.live) while it streams;
    its end (footnotes, a notice, "(no answer)") is core's tail, as on every platform."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self.lifetime = ReplyLifetime()
        self._text = ""
        self._status: Text | None = None
        self._live: Live | None = None
        self._last = 0.0

    def _view(self) -> Group:
        parts = [Markdown(self._text)] if self._text else []
        if self._status is not None:
            parts.append(self._status)
        return Group(*parts)

    def _show(self, *, now: bool = False) -> None:
        if self._live is None:
            # no refresh thread: we refresh as text arrives (the house rule is no threads)
            self._live = Live(self._view(), console=self._console, auto_refresh=False, transient=False,
                              vertical_overflow="visible")
            self._live.start()
        if now or time.monotonic() - self._last >= REFRESH_SECONDS:
            self._live.update(self._view(), refresh=True)
            self._last = time.monotonic()

    async def text(self, delta: str) -> None:
        self.lifetime.check()
        self._text += delta
        self._show()

    async def status(self, update: ToolUpdate | None) -> None:
        """One line under the answer, replaced by each update: which tool, and whether it is done."""
        if update is None:
            self._status = None
        else:
            mark, style = {"done": ("✓", "green"), "failed": ("✗", "red")}.get(update.status, ("⚙", "cyan"))
            ellipsis = "" if update.status in ("done", "failed") else "…"
            self._status = Text(f"{mark} {update.title}{ellipsis}", style=style)
        self._show(now=True)

    async def close(self, footer: str = "") -> None:
        await self._end(footer=footer, notice=None)

    async def fail(self, notice: str) -> None:
        await self._end(footer="", notice=notice)

    async def _end(self, *, footer: str, notice: str | None) -> None:
        with self.lifetime.ending("failed" if notice is not None else "finished"):
            self._status = None
            if self.lifetime.state != "stopped":
                self._text += ending(self._text, footer=footer, notice=notice)
            else:  # stopped by a reader (Ctrl-C): the text so far, and a note
                self._text += stopped(self._text)
            self._stop()

    def _stop(self) -> None:
        if self._live is not None:
            self._live.update(self._view(), refresh=True)
            self._live.stop()
            self._live = None
        elif self._text:
            self._console.print(Markdown(self._text))


class TerminalTarget:
    limits = Limits(max_chars=1_000_000, edit_interval=0.0)

    def __init__(self, console: Console, files_dir: Path) -> None:
        self._console = console
        self._files_dir = files_dir
        self.last: TerminalStream | None = None   # the latest answer (what /stop, /retry and /rate act on)

    def open_stream(self, on_posted: OnPosted) -> TerminalStream:
        self.last = TerminalStream(self._console)
        return self.last

    async def post(self, text: str) -> str:
        self._console.print(Markdown(text))
        return "console"

    async def edit(self, message_id: str, text: str, *, final: bool = False) -> bool:
        raise NotImplementedError("the console streams append-only")

    async def upload(self, file: OutboundFile) -> str | None:
        self._files_dir.mkdir(parents=True, exist_ok=True)
        path = _free_path(self._files_dir / Path(file.name).name)
        path.write_bytes(file.data)
        self._console.print(Text(f"📎 {file.name} saved to {path}", style="cyan"))
        return str(path)

    async def notice(self, text: str, *, ephemeral: bool = False) -> None:
        self._console.print(Text(text, style="yellow"))

    async def typing(self) -> None:
        return None


def terminal_console() -> Console | None:
    """A rich Console when this is an interactive session (stdin and stdout both a terminal), else None."""
    import sys
    if sys.stdin.isatty() and sys.stdout.isatty():
        return Console(highlight=False)
    return None
