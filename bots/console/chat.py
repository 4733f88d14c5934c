"""`teambridge chat`: one line on stdin is one message; the reply streams to stdout. Works with pipes and terminals."""
from __future__ import annotations

import asyncio
import getpass
import mimetypes
import os
import stat
import sys
from pathlib import Path
from typing import AsyncIterator, TextIO

from core.chat.commands import CommandSpec, plain_usage
from core.model import Attachment, Author, InboundMessage
from core.chat.service import ChatService
from bots.console.approval import ConsoleApprover, LineSource
from bots.console.target import ConsoleTarget


class ConsoleChat:
    def __init__(self, service: ChatService, *, user: str, assistant: str | None, out: TextIO,
                 files_dir: Path) -> None:
        self._service = service
        self._user = user
        self._assistant = assistant
        self._out = out
        self._target = ConsoleTarget(out, files_dir)
        self._pending: list[Attachment] = []

    def _message(self, text: str) -> InboundMessage:
        return InboundMessage(
            platform="console", workspace="", channel=f"console:{self._user}",
            author=Author(id=self._user, name=self._user), text=text,
            attachments=tuple(self._pending), assistant=self._assistant)

    async def run(self, lines: AsyncIterator[str]) -> None:
        source = LineSource(lines)
        approver = ConsoleApprover(source, self._out, user=self._user)
        try:
            while (raw := await source.next()) is not None:
                await self._line(raw, approver)
        finally:
            source.close()

    async def _line(self, raw: str, approver: ConsoleApprover) -> None:
        line = raw.rstrip("\r\n")
        if not line.strip():
            return
        if line.startswith("/"):
            await self._command(line)
            return
        msg = self._message(line)
        self._pending = []
        await self._service.handle(msg, self._target, approver=approver)

    async def _command(self, line: str) -> None:
        name, _, arg = line[1:].partition(" ")
        name, arg = name.lower(), arg.strip()
        if name == "attach":  # reads a file on this machine: the console's own
            self._say(self._attach(arg))
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
        self._out.write(text.rstrip("\n") + "\n")
        self._out.flush()


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
