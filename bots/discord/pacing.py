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
from typing import Callable


class Pacer:
    """At most `limit` acquisitions in any `period` seconds (sliding window, FIFO)."""

    def __init__(self, limit: int, period: float, *, clock: Callable[[], float] = time.monotonic,
                 margin: float = 0.05) -> None:
        self.limit = limit
        # The server counts arrival times in fixed windows; a small margin absorbs network jitter.
        self.period = period * (1 + margin) + 0.01
        self._clock = clock
        self._stamps: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                while self._stamps and self._stamps[0] <= now - self.period:
                    self._stamps.popleft()
                if len(self._stamps) < self.limit:
                    self._stamps.append(now)
                    return
                await asyncio.sleep(self._stamps[0] + self.period - now)


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

    async def for_channel(self, channel_id: int) -> None:
        """Wait for a send/edit slot in this channel, then for a global slot."""
        await self.channel(channel_id).acquire()
        await self.global_.acquire()

    async def for_global(self) -> None:
        await self.global_.acquire()
