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
from bots.console.target import AppendOnlyStream, AppendOnlyTarget

REFRESH_SECONDS = 1 / 15  # re-rendering Markdown on every delta would cost more than the terminal shows


class TerminalStream(AppendOnlyStream):
    """core's ReplyStream on a terminal: the text re-rendered as Markdown in place (rich.live) while it streams."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self._console = console
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

    def _finish(self, more: str) -> None:
        self._status = None
        if self._live is not None:
            self._live.update(self._view(), refresh=True)
            self._live.stop()
            self._live = None
        elif self._text:
            self._console.print(Markdown(self._text))


class TerminalTarget(AppendOnlyTarget):
    def __init__(self, console: Console, files_dir: Path) -> None:
        super().__init__(files_dir)
        self._console = console

    def _new_stream(self) -> TerminalStream:
        return TerminalStream(self._console)

    async def post(self, text: str) -> str:
        self._console.print(Markdown(text))
        return "console"

    def _saved(self, file: OutboundFile, path: Path) -> None:
        self._console.print(Text(f"📎 {file.name} saved to {path}", style="cyan"))

    async def notice(self, text: str, *, ephemeral: bool = False) -> None:
        self._console.print(Text(text, style="yellow"))


def terminal_console() -> Console | None:
    """A rich Console when this is an interactive session (stdin and stdout both a terminal), else None."""
    import sys
    if sys.stdin.isatty() and sys.stdout.isatty():
        return Console(highlight=False)
    return None
