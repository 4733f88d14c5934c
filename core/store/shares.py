"""Rate budgets that belong to the app, not to the process: how much of each one this process may use.

Slack counts its per-method tiers per app per workspace, and Discord its global 50 requests/s per bot; with
several `teambridge run` processes, each process's own limiter (bots/slack/ratelimit.py, bots/discord/pacing.py)
must stay inside its *share* of the budget so that together they stay inside the whole. The limiters keep doing
their precise work in memory (queueing, reservations, counting calls until a window after their response); this
seam only tells them the size of their part:

    limit = shares.track(bucket, full=50, used=lambda: calls_in_my_window)   # once per bucket
    limit()                                                                   # before each decision; no I/O

`WholeBudget` is one process (SQLite, or a PostgreSQL database this process has to itself): the share is the whole.
`core.store.postgres_shares.PgRateShares` splits each budget between the processes on one database.
"""
from __future__ import annotations

from typing import Callable, Protocol


class RateShares(Protocol):
    """This process's part of app-wide rate budgets (calls per window).

    `track` names a budget (`bucket`, e.g. "chat.update"), its size for the whole app (`full`) and how to read
    how many calls this process has in its window right now (`used`: calls made within the window plus calls in
    flight); it returns the function the limiter calls for its current limit. `on_change` (optional) is called
    whenever a limit changed, so a limiter with waiters can hand out the slots that just became free."""

    def track(self, bucket: str, full: int, used: Callable[[], int],
              on_change: Callable[[], None] | None = None) -> Callable[[], int]: ...
    async def start(self) -> None: ...   # before the first call: the limits are known when it returns
    async def close(self) -> None: ...   # what this process used stays counted until its window has passed


class WholeBudget:
    """RateShares for a process that has the app to itself: every limit is the whole budget."""

    def track(self, bucket: str, full: int, used: Callable[[], int],
              on_change: Callable[[], None] | None = None) -> Callable[[], int]:
        return lambda: full

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None
