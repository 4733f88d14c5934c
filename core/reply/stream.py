"""EditStream: a streamed answer rendered as a message that is posted once and then edited.

Chat platforms have no "append" for ordinary messages and rate-limit edits (Discord: ~5 edits per 5 s
per channel; Slack chat.update: ~50/min), so deltas from the model are never sent one by one:

- the first text (or the first tool status) is posted at once, so the user sees the bot answering;
- after that a single flusher task edits the message at most once per `limits.edit_interval` seconds,
  always with the latest text (coalescing, latest wins);
- while streaming the message shows the text, a cursor and a status line for tool progress;
- when the text outgrows `limits.max_chars`, the message is finished with its final part (split by
  core.reply.splitting, code fences closed and reopened) and the rest continues in a new message;
- close() sends the final edit(s) at once, without cursor and status, plus an optional footer
  (after a blank line, unless the footer starts with a newline itself);
  fail() does the same with a one-line error notice at the end (core.reply.tail writes both);
- every edit tells the target whether it is the message's final text (`final=`); a target may skip a
  progress edit (e.g. when the final text is ready anyway) and says so, and the stream then still
  counts the message as showing its older text, so the final render sends what is missing;
- the reply's lifetime (core.reply.lifetime) tells watchers when the final text is about to go out and
  when the reply has ended;
- `may_start` (optional) is asked before the first post: while it says no, the text is kept and it is asked
  again with each change (and at `resume()`: the platform says it would now say yes); a reply it never lets
  start is posted whole when it closes (one post per part, no edits) — for a platform whose shared budget has
  no room for a post and edits right now.

Nothing the model wrote is lost: a failed post/edit is retried once; an edit that keeps failing makes
the stream post the text of that message again as a new message; if even that fails, close()/fail()
raise so the caller can log it.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Awaitable, Callable

from core.model import ToolUpdate
from core.ports import OnPosted, ReplyTarget
from core.reply.lifetime import ReplyLifetime
from core.reply.retry import twice
from core.reply.splitting import LOOKAHEAD, MIN_LIMIT, next_chunk
from core.reply.tail import (CURSOR, FINISHED, StatusFormat, decorate, default_status_format, ending, status_line,
                             stopped)

log = logging.getLogger(__name__)

SKIPPED_RETRY = 0.25  # seconds before a progress edit the target skipped is tried again

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class EditStream:
    """The default ReplyStream (core.ports) over a ReplyTarget's post/edit.

    `message_ids` lists every message posted for this reply, in order; `text_so_far` is the answer text
    received so far; `errors` collects the exceptions that were logged and recovered from.
    """

    def __init__(
        self,
        target: ReplyTarget,
        *,
        on_posted: OnPosted | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        cursor: str = CURSOR,
        status_format: StatusFormat | None = None,
        may_start: Callable[[], bool] | None = None,
    ) -> None:
        if target.limits.max_chars < MIN_LIMIT:
            raise ValueError(f"limits.max_chars must be at least {MIN_LIMIT}, got {target.limits.max_chars}")
        self._target = target
        self._limit = target.limits.max_chars
        self._on_posted = on_posted
        self._clock = clock
        self._sleep = sleep
        self._cursor = cursor
        self._status_format = status_format or default_status_format
        self._may_start = may_start

        self.message_ids: list[str] = []
        self.errors: list[BaseException] = []
        self.lifetime = ReplyLifetime()

        self._text = ""                        # the answer as the model wrote it
        self._tail = ""                        # "(no answer)", footer and/or error notice, added at the end
        self._sealed = 0                       # index into text+tail where the current message begins
        self._fence: str | None = None         # code block open at that index
        self._current: str | None = None       # id of the message being edited (None: post a new one)
        self._shown: str | None = None         # what that message shows now
        self._last_sent = -math.inf            # clock() of the last post/edit attempt on the current message
        self._tools: dict[str, ToolUpdate] = {}

        self._started = False
        self._skipped = False                  # the target skipped the last progress edit
        self._closing = False
        self._done = False
        self._dirty = asyncio.Event()
        self._lock = asyncio.Lock()            # one request in flight per reply
        self._flusher: asyncio.Task[None] | None = None
        self._resumer: asyncio.Task[None] | None = None

    # ---- ReplyStream ---------------------------------------------------------------------------

    @property
    def text_so_far(self) -> str:
        return self._text

    @property
    def tool_running(self) -> bool:
        """A tool call of this reply is under way (started, not finished): its end is not near."""
        return any(u.status not in FINISHED for u in self._tools.values())

    async def text(self, delta: str) -> None:
        self._check_open()
        self.lifetime.check()
        if not delta:
            return
        self._text += delta
        # A finished tool's ✅/⚠️ line stays only until the model goes on writing.
        if self._tools:
            for item_id in [k for k, u in self._tools.items() if u.status in FINISHED]:
                del self._tools[item_id]
        await self._changed()

    async def status(self, update: ToolUpdate | None) -> None:
        self._check_open()
        if update is None:
            self._tools.clear()
        else:
            self._tools.pop(update.item_id, None)
            self._tools[update.item_id] = update
        if not self._started and not self._status_line():
            return
        await self._changed()

    async def close(self, footer: str = "") -> None:
        await self._finish(footer=footer, notice=None)

    def resume(self) -> None:
        """`may_start` would say yes now: show what is held without waiting for the model's next change (which
        may be seconds away, e.g. during a tool call). Nothing happens once the reply shows or is closing."""
        if self._started or self._closing or self._resumer is not None or not (self._text or self._status_line()):
            return
        self._resumer = asyncio.get_running_loop().create_task(self._resume(), name="EditStream.resume")

    async def _resume(self) -> None:
        async with self._lock:
            self._resumer = None
            if self._started or self._closing or (self._may_start is not None and not self._may_start()):
                return
            self._started = True
            await self._try_render()

    async def fail(self, notice: str) -> None:
        await self._finish(footer="", notice=notice)

    # ---- internals -----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closing:
            raise RuntimeError("the reply stream is already closed")

    async def _changed(self) -> None:
        if not self._started:
            if self._may_start is not None and not self._may_start():
                return  # held: shown once there is room, or whole when the reply closes
            # First sign of life goes out immediately; everything after it is throttled.
            self._started = True
            async with self._lock:
                await self._try_render()
            return
        self._dirty.set()
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop(), name="EditStream.flusher")

    async def _flush_loop(self) -> None:
        while True:
            await self._dirty.wait()
            # Read each time: a target may stretch its interval while many replies share one budget.
            delay = self._last_sent + self._target.limits.edit_interval - self._clock()
            if delay > 0:
                await self._sleep(delay)
            async with self._lock:
                if self._closing:
                    return
                self._dirty.clear()
                await self._try_render()
            if self._skipped:
                self._skipped = False
                self._dirty.set()
                await self._sleep(max(self._target.limits.edit_interval, SKIPPED_RETRY))

    async def _try_render(self) -> None:
        try:
            await self._render(final=False)
        except Exception as exc:  # noqa: BLE001 - kept, logged; close() tries again and raises if it fails
            log.warning("streamed reply: update failed, the text is kept for the next one: %r", exc, exc_info=True)
            self.errors.append(exc)

    async def _finish(self, *, footer: str, notice: str | None) -> None:
        if self._done:
            log.warning("streamed reply: %s after the reply was finished (ignored): %r",
                        "fail()" if notice is not None else "close()", notice or footer)
            return
        self._closing = True
        with self.lifetime.ending("failed" if notice is not None else "finished"):
            async with self._lock:                 # an edit in flight completes first
                if self._flusher is not None:
                    # The flusher is now waiting (for changes, the interval, or the lock): no request in
                    # flight, so it can go. The final edit is not delayed by the interval; the adapter's
                    # rate limiter decides when it is sent.
                    flusher, self._flusher = self._flusher, None
                    flusher.cancel()
                    await asyncio.wait([flusher])
                    if not flusher.cancelled() and flusher.exception() is not None:
                        log.error("streamed reply: the flusher died", exc_info=flusher.exception())
                        self.errors.append(flusher.exception())
                if self.lifetime.state != "stopped":
                    self._tail += ending(self._text + self._tail, footer=footer, notice=notice)
                else:                                    # stopped by a reader: the text so far, and a note
                    self._tail += stopped(self._text + self._tail)
                await self._render(final=True)     # raises when the reply could not be delivered
                self._done = True

    def _status_line(self) -> str:
        return status_line(self._tools.values(), self._status_format)

    def _decorate(self, content: str) -> str:
        """The message while streaming: text, cursor, status line; what does not fit is left out."""
        return decorate(content, self._status_line(), self._limit, self._cursor)

    async def _render(self, *, final: bool) -> None:
        full = self._text + self._tail if final else self._text
        while True:
            chunk, end, fence_after = next_chunk(full, self._sealed, self._limit, self._fence)
            if end >= len(full):
                break
            if not final and len(full) - self._sealed < self._limit + LOOKAHEAD:
                # Where exactly this message ends depends on a few characters still to come: show
                # what it will hold so far, and finish it on a later update.
                await self._show(chunk, final=False)
                return
            await self._show(chunk, final=True)   # this message is complete: its final text
            self._sealed, self._fence = end, fence_after
            self._current = self._shown = None
        view = chunk if final else self._decorate(chunk)
        if view:
            await self._show(view, final=final)

    async def _show(self, text: str, *, final: bool) -> None:
        """Make the current message show `text`, posting a new message when there is none."""
        if self._current is not None:
            if text == self._shown:
                return
            try:
                self._last_sent = self._clock()
                shown = await twice(self._target.edit, self._current, text, final=final)
            except Exception as exc:  # noqa: BLE001 - logged; the text goes out as a new message instead
                log.warning("streamed reply: editing message %s failed twice; posting its text as a new message",
                            self._current, exc_info=True)
                self.errors.append(exc)
                self._current = self._shown = None
            else:
                if shown is False:
                    # The target skipped this progress edit: the message still shows what it showed.
                    if final:  # a target must not skip a final edit; if it does, the text goes out anew
                        log.warning("streamed reply: the final edit of %s was skipped; posting it anew",
                                    self._current)
                        self._current = self._shown = None
                    else:
                        self._skipped = True  # the flusher tries again a little later (or the final text does)
                        return
                else:
                    self._shown = text
                    return
        self._last_sent = self._clock()
        message_id = await twice(self._target.post, text)
        self._current, self._shown = message_id, text
        self.message_ids.append(message_id)
        if self._on_posted is not None:
            try:
                await self._on_posted(message_id)
            except Exception as exc:  # noqa: BLE001 - the message is out; tracking it failed: log, go on
                log.exception("streamed reply: on_posted(%s) failed", message_id)
                self.errors.append(exc)
