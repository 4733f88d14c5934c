"""Approval of a tool call in the console: a y/N prompt answered by the next line of input.

The answer is read from the same input as the messages (a terminal or a pipe), so a piped script answers
with its next line. A prompt left unanswered past the timeout counts as "no"; the line typed later is then
read as the next message, not lost.
"""
from __future__ import annotations

import asyncio
from typing import AsyncIterator, Callable, TextIO

from core.tools.approval import APPROVED, DENIED, TIMEOUT, ApprovalRequest, Decision


class LineSource:
    """The console's input lines, shared by the chat loop and the approval prompt.

    Lines are read ahead by one reader task into a queue, so a line typed while an answer streams is seen at
    once: `intercept` (set by the chat loop while it waits for an answer) may take it (`/stop`); any other line
    waits in the queue for whoever reads next (the approval prompt, then the chat loop)."""

    def __init__(self, lines: AsyncIterator[str]) -> None:
        self._lines = lines.__aiter__()
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._reader: asyncio.Task | None = None
        self._ended = False
        self.intercept: Callable[[str], bool] | None = None

    async def next(self, timeout: float | None = None) -> str | None:
        """The next line, None at the end of input. On timeout raises TimeoutError; the line is then read
        by the next caller."""
        if self._ended and self._queue.empty():
            return None
        if self._reader is None:
            self._reader = asyncio.ensure_future(self._read_all())
        line = await asyncio.wait_for(self._queue.get(), timeout)
        if line is None:
            self._ended = True
        return line

    async def _read_all(self) -> None:
        try:
            async for line in self._lines:
                intercept = self.intercept
                if intercept is not None and intercept(line):
                    continue
                await self._queue.put(line)
        finally:
            await self._queue.put(None)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()


class ConsoleApprover:
    """core.tools.approval.Approver for the console: whoever types at this terminal is the asker."""

    def __init__(self, lines: LineSource, out: TextIO, *, user: str) -> None:
        self._lines = lines
        self._out = out
        self._user = user

    async def decide(self, request: ApprovalRequest) -> Decision:
        where = f" ({request.server})" if request.server else ""
        arguments = "\n".join("    " + line for line in request.arguments.splitlines())
        self._write(f"\n🔐 {request.tool}{where} needs your approval to run with:\n{arguments}\n"
                    f"Approve? [y/N] ")
        try:
            line = await self._lines.next(timeout=request.timeout)
        except TimeoutError:
            self._write(f"\n⏱️ No answer in {request.timeout:g}s — {request.tool} was not run.\n")
            return Decision(False, TIMEOUT)
        answer = (line or "").strip().lower()
        if answer in ("y", "yes"):
            self._write("✅ approved\n")
            return Decision(True, APPROVED, by=self._user)
        self._write(f"🚫 {request.tool} was not run.\n")
        return Decision(False, DENIED, by=self._user if line is not None else "")

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()
