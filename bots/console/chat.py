"""`teambridge chat`: one line on stdin is one message; the reply streams to stdout. Works with pipes and terminals."""
from __future__ import annotations

import asyncio
import getpass
import mimetypes
import os
import signal
import stat
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, AsyncIterator, Callable, Iterator, TextIO

from core.chat.commands import CommandSpec, plain_usage
from core.reply.controls import Click
from core.model import Attachment, Author, InboundMessage
from core.chat.service import ChatService
from bots.console.approval import ConsoleApprover, LineSource
from bots.console.target import ConsoleTarget

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console


class ConsoleChat:
    """`terminal`: a rich Console when stdin and stdout are a terminal (banner, prompt, Markdown in colour);
    None for pipes, whose plain output scripts rely on."""

    def __init__(self, service: ChatService, *, user: str, assistant: str | None, out: TextIO,
                 files_dir: Path, terminal: "Console | None" = None) -> None:
        self._service = service
        self._user = user
        self._assistant = assistant
        self._out = out
        self._terminal = terminal
        if terminal is not None:
            from bots.console.terminal import TerminalTarget
            self._target = TerminalTarget(terminal, files_dir)
        else:
            self._target = ConsoleTarget(out, files_dir)
        self._pending: list[Attachment] = []
        self._answering = False     # an answer is being written: /stop and Ctrl-C stop it
        self._source: LineSource | None = None
        self._approver: ConsoleApprover | None = None

    def _message(self, text: str) -> InboundMessage:
        # The person at the keyboard runs this process: with no admins configured, they are the admin.
        local_admin = not self._service.config.admins
        return InboundMessage(
            platform="console", workspace="", channel=f"console:{self._user}",
            author=Author(id=self._user, name=self._user, is_admin=local_admin), text=text,
            attachments=tuple(self._pending), assistant=self._assistant)

    async def run(self, lines: AsyncIterator[str]) -> None:
        source = LineSource(lines)
        self._source = source
        approver = self._approver = ConsoleApprover(source, self._out, user=self._user)
        if self._terminal is not None:
            await self._banner()
            await self._prompt()
        try:
            while (raw := await source.next()) is not None:
                await self._line(raw, approver)
                if self._terminal is not None:
                    await self._prompt()
        finally:
            source.close()
        if self._terminal is not None:
            self._terminal.print()  # Ctrl-D leaves the cursor after the prompt

    async def _current(self):
        """The assistant the next message goes to (an explicit choice, the saved /assistant, or the default)."""
        from core.chat.routing import pick_assistant, preference_scope
        msg = self._message("")
        preference = await self._service.store.get_preference(preference_scope(msg))
        config = self._service.config
        return config.assistants.get(pick_assistant(config, msg, preference=preference))

    async def _banner(self) -> None:
        from rich.text import Text
        assistant = await self._current()
        banner = Text("teambridge", style="bold")
        if assistant is not None:
            tools = ", ".join(t.type.replace("_", " ") for t in assistant.tools) or "none"
            banner.append(f" · {assistant.name}", style="bold cyan")
            banner.append(f" ({assistant.model}) · tools: {tools}")
        banner.append("\n/help lists the commands, Ctrl-D quits.", style="dim")
        self._terminal.print(banner)

    async def _prompt(self) -> None:
        from rich.text import Text
        assistant = await self._current()
        self._terminal.print(Text(f"{assistant.name if assistant else 'teambridge'} › ", style="bold cyan"), end="")

    async def _line(self, raw: str, approver: ConsoleApprover) -> None:
        line = raw.rstrip("\r\n")
        if not line.strip():
            return
        if line.startswith("/"):
            await self._command(line)
            return
        msg = self._message(line)
        self._pending = []
        await self._answer(msg, approver)

    async def _answer(self, msg: InboundMessage, approver: ConsoleApprover | None = None) -> None:
        """Answer `msg`; meanwhile a `/stop` line (or Ctrl-C) stops the answer, other lines wait their turn."""
        source = self._source
        self._answering = True
        if source is not None:
            source.intercept = self._intercept
        with _ctrl_c_stops(self._stop_now):
            try:
                await self._service.handle(msg, self._target, approver=approver)
            finally:
                self._answering = False
                if source is not None:
                    source.intercept = None

    def _intercept(self, line: str) -> bool:
        if self._answering and line.strip().lower() == "/stop":
            self._stop_now()
            return True
        return False

    def _stop_now(self) -> None:
        asyncio.ensure_future(self._control("stop"))

    def _last_answer(self) -> str:
        stream = self._target.last
        return stream.lifetime.answer_id if stream is not None else ""

    async def _control(self, action: str) -> str:
        """A control on the last answer, as a button click would be; its note is said here (if any)."""
        answer = self._last_answer()
        if not answer:
            note = "There is no answer here yet."
            self._say(note)
            return note
        result = await self._service.controls.click(
            Click(action, answer, self._message("").author, "console"))  # type: ignore[arg-type]
        if result.note:
            self._say(result.note)
        if result.retry is not None:
            await self._answer(result.retry, self._approver)
        return result.note

    async def _command(self, line: str) -> None:
        name, _, arg = line[1:].partition(" ")
        name, arg = name.lower(), arg.strip()
        if name == "attach":  # reads a file on this machine: the console's own
            self._say(self._attach(arg))
            return
        if name in ("stop", "retry"):   # the console's buttons (a /stop typed while an answer streams is taken
            await self._control(name)   # at once by _intercept; here nothing is being written)
            return
        if name == "rate":
            rating = {"up": "up", "down": "down", "+1": "up", "-1": "down", "👍": "up", "👎": "down"}.get(arg.lower())
            if rating is None:
                self._say("Usage: /rate up|down")
                return
            await self._control(rating)
            return
        reply = await self._service.commands.run(self._message(""), name, arg, style=console_usage)
        if name == "assistant" and arg in self._service.config.assistants:
            self._assistant = arg  # the console names its assistant on every message
        self._say(reply.text)

    def _attach(self, arg: str) -> str:
        if not arg:
            return "Usage: /attach PATH"
        path = Path(arg).expanduser()
        if not path.is_file():
            return f"No such file: {path}"
        content_type = mimetypes.guess_type(path.name)[0]

        async def read(path: Path = path) -> bytes:
            return path.read_bytes()

        self._pending.append(Attachment(name=path.name, size=path.stat().st_size, content_type=content_type,
                                        read=read))
        return f"📎 {path.name} will be sent with your next message."

    def _say(self, text: str) -> None:
        if self._terminal is not None:
            from rich.text import Text
            self._terminal.print(Text(text.rstrip("\n")))
            return
        self._out.write(text.rstrip("\n") + "\n")
        self._out.flush()


@contextmanager
def _ctrl_c_stops(stop: Callable[[], None]) -> Iterator[None]:
    """While an answer is written, Ctrl-C (SIGINT) stops it instead of ending the session. Between answers the
    handler from before (asyncio.run's: Ctrl-C ends the session) is back."""
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGINT)
    try:
        loop.add_signal_handler(signal.SIGINT, stop)
    except (ValueError, RuntimeError, NotImplementedError):  # not the main thread, or no signals here
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


async def stdin_lines(stream: TextIO = sys.stdin) -> AsyncIterator[str]:
    """Lines from stdin without blocking the loop where possible (pipes, ttys); files are read directly."""
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        mode = stat.S_IFREG
    if stat.S_ISREG(mode):
        for line in stream:  # a regular file never blocks
            yield line
        return
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stream)
    while line := await reader.readline():
        yield line.decode("utf-8", errors="replace")


def console_usage(spec: CommandSpec) -> str:
    """How a command is typed here: `/reset [USER]`, `/assistant NAME`."""
    return plain_usage(spec)


def login_name() -> str:
    """The console's default user id."""
    try:
        return getpass.getuser()
    except Exception:  # no login name (e.g. a container without a passwd entry)
        return "console-user"
