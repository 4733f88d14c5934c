"""A reply posted when ready: chat.postMessage only, final messages that are never edited (the transport a
reply gets when the workspace's chat.update and Tier 2 stream budgets are spoken for: bots/slack/transport.py)."""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from core.model import ToolUpdate
from core.ports import OnPosted
from core.reply.lifetime import ReplyLifetime
from core.reply.retry import twice
from core.reply.splitting import CLOSER, LOOKAHEAD, MIN_LIMIT, next_chunk
from core.reply.tail import ending, stopped

log = logging.getLogger(__name__)


class PostWhenReady:
    """ReplyStream that spends no chat.update and no Tier 2 call: the answer goes out with chat.postMessage
    (limited per *channel*, ~1/s, not per workspace) as final messages that are never edited.

    For when the workspace's chat.update (Tier 3, ~50/min for every reply) and chat.startStream/stopStream
    (Tier 2, ~20/min) budgets are spoken for: a reader waits for the whole answer rather than minutes for
    an edit slot.
    - A message is posted as soon as it is full (split at `max_chars` by core.reply.splitting, code fences closed
      at its end and reopened in the next), the rest when the answer is complete.
    - An answer still being written `first_post_after` seconds after its first words shows what is ready up
      to the last paragraph break (else line break, else sentence end), then again every `post_interval`
      seconds: the reader sees it begin, and the pieces joined are exactly the model's text (no placeholder to
      replace). Counted from the first words, not from when the reply opened: the wait for the model's first
      word (the thinking status shows meanwhile, where set) says nothing about how long the answer is, and an
      answer the model writes within the first `first_post_after` seconds arrives as one message instead of
      a piece and the rest a moment later.
    - Tool progress is not shown (it would need edits); the thinking status, where set, covers the wait.
    The tail (footnotes, the one-line error notice, "(no answer)") is core's.
    """

    def __init__(self, post: Callable[[str], Awaitable[str]], *, on_posted: OnPosted, max_chars: int,
                 first_post_after: float = 2.0, post_interval: float = 10.0) -> None:
        if max_chars < MIN_LIMIT + len(CLOSER):
            raise ValueError(f"max_chars must be at least {MIN_LIMIT + len(CLOSER)}")
        self._post, self._on_posted = post, on_posted
        self._limit = max_chars
        self._first_after, self._interval = first_post_after, post_interval
        self._text = ""                 # the answer as the model wrote it
        self._sealed = 0                # index into the answer (and tail) up to which it is posted
        self._fence: str | None = None  # code block open at that index
        self._posted = 0                # messages posted
        self._closing = False
        self._done = False
        self._lock = asyncio.Lock()     # one post in flight, in order
        self._timer: asyncio.Task | None = None   # started by the first words: posts what is ready from then on
        self._failure: BaseException | None = None
        self.message_ids: list[str] = []
        self.lifetime = ReplyLifetime()

    # ---- ReplyStream ------------------------------------------------------------------------

    async def text(self, delta: str) -> None:
        if self._closing:
            raise RuntimeError("the reply stream is already closed")
        self._raise_failure()
        self.lifetime.check()
        if not delta:
            return
        self._text += delta
        if self._timer is None and self._first_after >= 0:
            self._timer = asyncio.create_task(self._timer_loop(), name="slack-post-when-ready")
        if len(self._text) - self._sealed >= self._limit + LOOKAHEAD:
            async with self._lock:
                # Full messages: where each one ends no longer depends on what is still to come.
                while len(self._text) - self._sealed >= self._limit + LOOKAHEAD:
                    chunk, end, fence = next_chunk(self._text, self._sealed, self._limit, self._fence)
                    await self._send(chunk, end, fence)

    async def status(self, update: ToolUpdate | None) -> None:
        self._raise_failure()  # tool progress would need edits: not shown in this mode

    async def close(self, footer: str = "") -> None:
        await self._finish(footer=footer, notice=None)

    async def fail(self, notice: str) -> None:
        await self._finish(footer="", notice=notice)

    # ---- internals --------------------------------------------------------------------------

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    async def _timer_loop(self) -> None:
        wait = self._first_after   # from the first words (the timer starts with them)
        try:
            while not self._closing:
                await asyncio.sleep(wait)
                async with self._lock:
                    if self._closing:
                        return
                    cut = _ready_until(self._text, self._sealed)
                    if cut > self._sealed:
                        await self._post_upto(cut)
                wait = self._interval
        except asyncio.CancelledError:
            raise
        except Exception as e:  # surfaced to core on the next text()/close()
            log.exception("posting a finished part of the answer failed")
            self._failure = e

    async def _finish(self, *, footer: str, notice: str | None) -> None:
        if self._done:
            log.warning("post-when-ready reply: finished twice (ignored): %r", notice or footer)
            return
        self._closing = True
        with self.lifetime.ending("failed" if notice is not None else "finished"):
            async with self._lock:  # a post in flight completes first
                if self._timer is not None:
                    timer, self._timer = self._timer, None
                    timer.cancel()
                    await asyncio.wait({timer})
                failure, self._failure = self._failure, None
                if failure is not None and notice is None:
                    raise failure  # the service answers with fail(); the text not posted is still here
                if self.lifetime.state != "stopped":
                    self._text += ending(self._text, footer=footer, notice=notice)
                else:  # stopped by a reader (a Stop button): the text so far, and a note
                    self._text += stopped(self._text)
                while self._sealed < len(self._text):
                    chunk, end, fence = next_chunk(self._text, self._sealed, self._limit, self._fence)
                    await self._send(chunk, end, fence)
                self._done = True

    async def _post_upto(self, stop: int) -> None:
        """Post the answer up to `stop` (a break the model has written past) as final messages."""
        part = self._text[:stop]
        while self._sealed < stop:
            chunk, end, fence = next_chunk(part, self._sealed, self._limit - len(CLOSER), self._fence)
            if end >= stop and fence is not None:
                chunk += CLOSER  # a code block goes on in the next message: close it here, reopen it there
            await self._send(chunk, end, fence)

    async def _send(self, chunk: str, end: int, fence: str | None) -> None:
        message_id = await twice(self._post, chunk)  # a second failure leaves the text unposted and raises
        self._sealed, self._fence = end, fence
        self._posted += 1
        self.message_ids.append(message_id)
        try:
            await self._on_posted(message_id)
        except Exception:  # the message is out; tracking it failed: log, go on
            log.exception("on_posted(%s) failed", message_id)


def _ready_until(text: str, start: int) -> int:
    """Where the part of `text` after `start` that reads as finished ends: after the last paragraph break,
    else the last line break, else the last sentence end. `start` when there is none yet."""
    for sep in ("\n\n", "\n"):
        i = text.rfind(sep, start)
        if i >= 0:
            return i + len(sep)
    for sep in (". ", "! ", "? "):
        i = text.rfind(sep, start, len(text) - LOOKAHEAD)
        # Mid-line: what follows must not start with backticks, or it would become a fence line of its own.
        if i >= 0 and not text[i + len(sep):].lstrip(" ").startswith("`"):
            return i + len(sep)
    return start
