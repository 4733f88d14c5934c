"""A batch's results handed back to its callers one per turn of the event loop, in order: first come, first served.

A batch of statements (the SQLite connection's job, PostgreSQL's event claims of one moment) comes back at once.
Resolved all at once, every caller woke in the same turn of the event loop, and each one's next steps waited
behind all the others': a request to the model made ready by the first caller is written by aiohttp in a task of
its own, queued behind everything already woken, so a burst's requests left together at its end. One caller per
turn, the first caller's request leaves before the second one goes on.
"""
from __future__ import annotations

import asyncio
from typing import Callable, Sequence


def one_per_turn(steps: Sequence[Callable[[], bool]], start: int = 0) -> None:
    """Runs `steps` in order (each hands one result to its caller; False: nobody waited for it, e.g. a cancelled
    caller), the rest a turn of the event loop after each one that woke a caller."""
    i = start
    while i < len(steps):
        woke = steps[i]()
        i += 1
        if woke and i < len(steps):
            asyncio.get_running_loop().call_soon(one_per_turn, steps, i)
            return
