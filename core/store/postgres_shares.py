"""RateShares across the processes on one PostgreSQL database: each budget split evenly between the live ones.

No round trip per call: each process keeps limiting in memory against its share, and once per `refresh`
(1 s for Slack, 0.25 s for Discord) it runs one short transaction per budget scope (a Slack workspace, a
Discord bot) that publishes, per bucket, its share and how many calls it has in its window, and recomputes its
share from what the others published:

    share = min(full // live processes,  full - Σ over the others of max(their share, their calls in window))

All under an advisory lock on the scope, so every share is computed from a consistent view. Why this keeps the
sum inside the budget: a process only makes a call while its calls in window are under its share, so what it
can have in the window is at most max(its published share, its published count); each process takes only what
the others' published values leave; a process lowering its share applies the lower one before publishing it
(and the others still count its calls in window); raising happens only after the higher one is published. A
process that joins starts at 0 and grows as the others shrink and their windows drain: exact, at the price of a
window's wait when the others had used everything. A process that stops (or dies) keeps its rows counted until
one window after its last refresh's expiry, because its calls are still in Slack's (or Discord's) window.

A process that could not refresh for ten seconds (its database away, or the process stalled) makes no budgeted
call until a refresh succeeds; the others keep counting its share that long and one window more.

Why not one shared token bucket: a bucket refilled at full/window lets 2 × full through in a sliding window,
and a round trip per call (or a batch handed out ahead) both cost the hot path; dividing the limit keeps every
call local and the limiter's reservations and transport choices exact within the share.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

import asyncpg

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Bucket:
    full: int
    used: Callable[[], int]
    on_change: Callable[[], None] | None
    share: int = 0
    fair: int = 0        # full // live processes, at the last refresh


class PgRateShares:
    """RateShares on PostgreSQL (table `rate_shares`). `pool`: returns the store's open pool; `owner`: this
    process's id (the store's); `window`: the limiter's window in seconds (how long a call stays counted)."""

    def __init__(self, pool: Callable[[], asyncpg.Pool], *, owner: str, scope: str, window: float,
                 refresh: float = 1.0, clock: Callable[[], float] = time.time,
                 lock_key: Callable[[str], int]) -> None:
        self._pool, self.owner, self.scope = pool, owner, scope
        self._window, self._refresh, self._clock = window, refresh, clock
        self._ttl = max(10 * refresh, 10.0)   # a process silent this long is no longer counted as live
        # A process that could not publish for this long stops calling. Safe up to here and beyond: the others
        # count its published share until its rows expire (ttl) and a window more.
        self._stale = self._ttl
        self._lock = lock_key("rate:" + scope)
        self._buckets: dict[str, _Bucket] = {}
        self._last_ok = -float("inf")         # time.monotonic() of the last successful refresh
        self._task: asyncio.Task | None = None
        self._refreshing = asyncio.Lock()
        self._kicks: set[asyncio.Future] = set()

    # ---- RateShares ------------------------------------------------------------------------------

    def track(self, bucket: str, full: int, used: Callable[[], int],
              on_change: Callable[[], None] | None = None) -> Callable[[], int]:
        entry = self._buckets.get(bucket)
        if entry is None:
            entry = self._buckets[bucket] = _Bucket(full, used, on_change)
            if self._task is not None:   # a bucket first used now: its share comes with the next refresh, soon
                self._kick()
        return lambda: entry.share if time.monotonic() - self._last_ok < self._stale else 0

    async def start(self) -> None:
        await self.refresh()
        # A newcomer's part frees up as the others lower theirs at their next refresh: wait for that (a few
        # refreshes at most), so that the first answers see the share this process will have, not 0.
        deadline = time.monotonic() + 3 * self._refresh
        while any(b.share < b.fair for b in self._buckets.values()) and time.monotonic() < deadline:
            await asyncio.sleep(self._refresh / 2)
            await self.refresh()
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=f"teambridge-rate-shares-{self.scope}")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        try:   # gone now: the others count our calls until they leave the window, and share the rest
            await self._pool().execute(
                "UPDATE rate_shares SET expires_at = $3 WHERE scope = $1 AND owner = $2",
                self.scope, self.owner, self._clock())
        except (OSError, asyncpg.PostgresError, RuntimeError) as exc:
            log.warning("could not give up this process's rate shares (they expire by themselves): %s", exc)

    # ---- the refresh -------------------------------------------------------------------------------

    def _kick(self) -> None:
        kick = asyncio.ensure_future(self._quietly(self.refresh))
        self._kicks.add(kick)
        kick.add_done_callback(self._kicks.discard)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._refresh)
            await self._quietly(self.refresh)

    @staticmethod
    async def _quietly(step: Callable[[], Awaitable[None]]) -> None:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception as exc:   # the database is away for a moment: keep the shares, try again next round
            log.warning("could not refresh the shared rate budgets: %s", exc)

    async def refresh(self) -> None:
        """One transaction: read what the others published, recompute and publish ours."""
        if not self._buckets:
            self._last_ok = time.monotonic()
            return
        async with self._refreshing, self._pool().acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", self._lock)
            now = self._clock()
            rows = await conn.fetch(
                "SELECT owner, bucket, share, used, expires_at FROM rate_shares WHERE scope = $1 AND owner <> $2"
                " AND expires_at > $3", self.scope, self.owner, now - self._window)
            live = {r["owner"] for r in rows if r["expires_at"] > now}
            taken: dict[str, int] = {}
            for r in rows:
                taken[r["bucket"]] = taken.get(r["bucket"], 0) + max(r["share"], r["used"])
            # No await between reading our counts and applying a lower share: nothing slips in between.
            rises: list[tuple[_Bucket, int]] = []
            publish = []
            for name, b in self._buckets.items():
                b.fair = b.full // (len(live) + 1)
                share = max(0, min(b.fair, b.full - taken.get(name, 0)))
                if share < b.share:
                    b.share = share
                    self._changed(b)
                elif share > b.share:
                    rises.append((b, share))
                publish.append((self.scope, self.owner, name, share, int(b.used()), now + self._ttl))
            await conn.executemany(
                "INSERT INTO rate_shares (scope, owner, bucket, share, used, expires_at)"
                " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (scope, owner, bucket) DO UPDATE SET"
                " share = excluded.share, used = excluded.used, expires_at = excluded.expires_at", publish)
            await conn.execute("DELETE FROM rate_shares WHERE scope = $1 AND expires_at <= $2",
                               self.scope, now - self._window)
        for b, share in rises:   # a higher share is used only once the others can see it (committed)
            b.share = share
            self._changed(b)
        self._last_ok = time.monotonic()

    @staticmethod
    def _changed(bucket: _Bucket) -> None:
        if bucket.on_change is not None:
            try:
                bucket.on_change()
            except Exception:   # a limiter's wake-up must not break the refresh of the others
                log.exception("a rate limiter failed to take its new share")

    def shares(self) -> dict[str, int]:
        """This process's share of each tracked bucket now (for tests and metrics)."""
        return {name: b.share for name, b in self._buckets.items()}
