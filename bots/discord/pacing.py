"""Client-side pacing so normal load never provokes a 429.

Discord publishes no per-route numbers; sends and edits in one channel are observed to allow about 5 per
5 s (shared by every reply in that channel), and a bot may make 50 requests/s overall. discord.py only
reacts to the headers of responses it already got (and retries 429s), so many concurrent replies would
still burst; these sliding-window pacers keep us under both limits up front.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable


class Pacer:
    """At most `limit` requests per `period` seconds, counted by when they *finish*, in-flight ones included.

    Counting at completion (not at start) matters: discord.py may hold a request in its own bucket queue
    after we let it go, so start times say little about when Discord sees it. A request arrives somewhere
    between its start and its finish, so if every request, when it starts, sees fewer than `limit` others
    in flight or finished within the period, no window of `period` seconds at Discord ever holds more.
    """

    def __init__(self, limit: int, period: float, *, clock: Callable[[], float] = time.monotonic,
                 margin: float = 0.05) -> None:
        self.limit = limit
        self.period = period * (1 + margin) + 0.01  # a little slack for clock and network jitter
        self._clock = clock
        self._done: deque[float] = deque()
        self._inflight = 0
        self._cond = asyncio.Condition()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self._acquire(wait=True)
        try:
            yield
        finally:
            await self._release()

    @asynccontextmanager
    async def slot_if_free(self) -> AsyncIterator[bool]:
        """Like slot(), but yields False at once (holding nothing) when the budget is used up right now.
        For cosmetic requests (the typing indicator) that must never delay an answer."""
        acquired = await self._acquire(wait=False)
        try:
            yield acquired
        finally:
            if acquired:
                await self._release()

    async def _acquire(self, *, wait: bool) -> bool:
        async with self._cond:
            while True:
                now = self._clock()
                while self._done and self._done[0] <= now - self.period:
                    self._done.popleft()
                if self._inflight + len(self._done) < self.limit:
                    self._inflight += 1
                    return True
                if not wait:
                    return False
                timeout = self._done[0] + self.period - now if self._done else None
                try:
                    await asyncio.wait_for(self._cond.wait(), timeout)
                except TimeoutError:
                    pass

    async def _release(self) -> None:
        async with self._cond:
            self._inflight -= 1
            self._done.append(self._clock())
            self._cond.notify_all()


class Pacers:
    """One global pacer plus one per channel (a Discord thread is a channel of its own)."""

    def __init__(self, *, channel_limit: int = 5, channel_period: float = 5.0,
                 global_limit: int = 45, global_period: float = 1.0) -> None:
        self._channel_args = (channel_limit, channel_period)
        self.global_ = Pacer(global_limit, global_period)
        self._channels: dict[int, Pacer] = {}

    def channel(self, channel_id: int) -> Pacer:
        pacer = self._channels.get(channel_id)
        if pacer is None:
            pacer = self._channels[channel_id] = Pacer(*self._channel_args)
        return pacer

    @asynccontextmanager
    async def for_channel(self, channel_id: int) -> AsyncIterator[None]:
        """A send/edit slot in this channel, then a global slot (always in this order: no deadlock)."""
        async with self.channel(channel_id).slot(), self.global_.slot():
            yield

    def for_global(self):
        return self.global_.slot()
