"""A batch's results handed back to its callers one per turn of the event loop, in order: first come, first served.

A batch of statements (the SQLite connection's job, PostgreSQL's event claims of one moment) comes back at once.
Resolved all at once, every caller woke in the same turn of the event loop, and each one's next steps waited
behind all the others': a request to the model made ready by the first caller is written by aiohttp in a task of
its own, queued behind everything already woken, so a burst's requests left together at its end. One caller per
turn, the first caller's request leaves before the second one goes on. A batch that comes back while an earlier
one is still being handed back waits behind it: the order holds across batches too.
"""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Callable, Iterable

# hands one result to its caller; False: nobody waits for it any more (a cancelled caller)
Step = Callable[[], bool]


class HandBack:
    """One per connection (or batcher): the results of its batches, handed back in the order they were asked."""

    def __init__(self) -> None:
        self._steps: deque[Step] = deque()
        self._handing = False

    def add(self, steps: Iterable[Step]) -> None:
        """A batch came back: its callers hear, in order, after those of the batches before it."""
        self._steps.extend(steps)
        if not self._handing:
            self._handing = True
            self._next()

    def _next(self) -> None:
        steps = self._steps
        while steps:
            if steps.popleft()() and steps:   # a caller woke: the next one in the next turn
                asyncio.get_running_loop().call_soon(self._next)
                return
        self._handing = False
