"""The console as a reply target: the answer streams straight to a text stream (stdout), append-only.

What every console target shares (this one and the terminal's, bots/console/terminal.py) is here too: a stream
that only appends and ends with core's tail, and a target with no edits and no typing indicator that saves files
under a name not taken yet."""
from __future__ import annotations

from pathlib import Path
from typing import TextIO

from core.model import OutboundFile, ToolUpdate
from core.ports import Limits, OnPosted
from core.reply.lifetime import ReplyLifetime
from core.reply.tail import ending, stopped


class AppendOnlyStream:
    """A ReplyStream that only appends (stdout, a terminal). Its end (footnotes, a notice, "(no answer)"; after
    a reader's /stop or Ctrl-C the text so far and a note) is core's tail, like on every platform;
    `_finish(more)` shows that tail and ends the output."""

    def __init__(self) -> None:
        self.lifetime = ReplyLifetime()
        self._text = ""

    async def close(self, footer: str = "") -> None:
        await self._end(footer=footer, notice=None)

    async def fail(self, notice: str) -> None:
        await self._end(footer="", notice=notice)

    async def _end(self, *, footer: str, notice: str | None) -> None:
        with self.lifetime.ending("failed" if notice is not None else "finished"):
            more = ending(self._text, footer=footer, notice=notice) if self.lifetime.state != "stopped" \
                else stopped(self._text)
            self._text += more
            self._finish(more)

    def _finish(self, more: str) -> None:
        raise NotImplementedError


class AppendOnlyTarget:
    """A console ReplyTarget: no edits (the stream appends), no typing indicator, files saved to a folder under
    a name not taken yet. `last` is the latest answer (what /stop, /retry and /rate act on)."""

    limits = Limits(max_chars=1_000_000, edit_interval=0.0)

    def __init__(self, files_dir: Path) -> None:
        self._files_dir = files_dir
        self.last: AppendOnlyStream | None = None

    def open_stream(self, on_posted: OnPosted) -> AppendOnlyStream:
        self.last = self._new_stream()
        return self.last

    def _new_stream(self) -> AppendOnlyStream:
        raise NotImplementedError

    async def edit(self, message_id: str, text: str, *, final: bool = False) -> bool:
        raise NotImplementedError("the console streams append-only")

    async def typing(self) -> None:
        return None

    async def upload(self, file: OutboundFile) -> str | None:
        self._files_dir.mkdir(parents=True, exist_ok=True)
        path = _free_path(self._files_dir / Path(file.name).name)
        path.write_bytes(file.data)
        self._saved(file, path)
        return str(path)

    def _saved(self, file: OutboundFile, path: Path) -> None:
        raise NotImplementedError


class ConsoleStream(AppendOnlyStream):
    """Writes deltas as they come. A terminal can't edit what it printed, so tool progress gets lines of its own."""

    def __init__(self, out: TextIO) -> None:
        super().__init__()
        self._out = out
        self._at_line_start = True
        self._started: set[str] = set()
        self._finished: set[str] = set()
        self._details: set[tuple[str, str]] = set()

    def _write(self, text: str) -> None:
        if text:
            self._out.write(text)
            self._out.flush()
            self._at_line_start = text.endswith("\n")

    def _line(self, text: str) -> None:
        self._write(("" if self._at_line_start else "\n") + text + "\n")

    async def text(self, delta: str) -> None:
        self.lifetime.check()
        self._text += delta
        self._write(delta)

    async def status(self, update: ToolUpdate | None) -> None:
        """A line when a tool starts, its input (code, arguments) as it is known, its output when it is done."""
        if update is None:
            return
        if update.item_id not in self._started:
            self._started.add(update.item_id)
            self._line(f"⚙️ {update.title}…")
        if update.status in ("done", "failed") and update.item_id not in self._finished:
            self._finished.add(update.item_id)
            self._line(f"{'✅' if update.status == 'done' else '⚠️'} {update.title}")
        if update.detail and (update.item_id, update.detail) not in self._details:
            self._details.add((update.item_id, update.detail))
            self._line(_indent(update.detail))

    def _finish(self, more: str) -> None:
        self._write(more)
        if not self._at_line_start:
            self._write("\n")


class ConsoleTarget(AppendOnlyTarget):
    def __init__(self, out: TextIO, files_dir: Path) -> None:
        super().__init__(files_dir)
        self._out = out

    def _new_stream(self) -> ConsoleStream:
        return ConsoleStream(self._out)

    async def post(self, text: str) -> str:
        self._out.write(text + "\n")
        self._out.flush()
        return "console"

    def _saved(self, file: OutboundFile, path: Path) -> None:
        self._out.write(f"📎 {file.name} saved to {path}\n")
        self._out.flush()

    async def notice(self, text: str, *, ephemeral: bool = False) -> None:
        self._out.write(text + "\n")
        self._out.flush()


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.rstrip("\n").splitlines())


def _free_path(path: Path) -> Path:
    candidate, n = path, 1
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        n += 1
    return candidate
