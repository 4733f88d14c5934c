"""Shares of the app's rate budgets between processes on one PostgreSQL database (core/store/postgres_shares.py),
against a real server: together they never hold more than the budget, a newcomer gets its part as the others
give theirs up, and a process that stops leaves its calls counted until they are out of the window."""
from __future__ import annotations

from contextlib import AsyncExitStack

from core.store.postgres import PostgresStore
from core.store.shares import WholeBudget
from core.store.sqlite import SqliteStore

WINDOW = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Limiter:
    """What a limiter tells the shares: its calls in the window; and what it learns: its limit."""

    def __init__(self, shares, bucket: str = "chat.update", full: int = 50) -> None:
        self.calls = 0
        self.limit = shares.track(bucket, full, lambda: self.calls)


async def open_stores(stack: AsyncExitStack, url: str, clock: Clock, n: int) -> list[PostgresStore]:
    return [await stack.enter_async_context(PostgresStore(url, owner=f"p{i}", clock=clock)) for i in range(n)]


async def test_alone_a_process_has_the_whole_budget_and_sqlite_always_has(tmp_path, postgres_url):
    clock = Clock()
    async with AsyncExitStack() as stack:
        [store] = await open_stores(stack, postgres_url, clock, 1)
        shares = store.rate_shares("slack:T1:UBOT", window=WINDOW)
        one = Limiter(shares)
        await shares.start()
        assert one.limit() == 50
        await shares.close()
    async with SqliteStore(tmp_path / "tb.db") as store:
        shares = store.rate_shares("slack:T1:UBOT", window=WINDOW)
        assert isinstance(shares, WholeBudget) and Limiter(shares).limit() == 50


async def test_three_processes_split_each_budget_and_never_hold_more_than_it_together(postgres_url):
    clock = Clock()
    async with AsyncExitStack() as stack:
        stores = await open_stores(stack, postgres_url, clock, 3)
        shares = [s.rate_shares("slack:T1:UBOT", window=WINDOW) for s in stores]
        limiters = [Limiter(s) for s in shares]
        seen = []
        for s in shares:   # one after the other, as processes start
            await s.start()
            seen.append([lim.limit() for lim in limiters])
        for _ in range(3):  # a few rounds of refreshes, in every order
            for s in shares:
                await s.refresh()
                seen.append([lim.limit() for lim in limiters])
        assert all(sum(limits) <= 50 for limits in seen), seen
        assert seen[0] == [50, 0, 0]                      # the first one alone: everything
        assert seen[1] == [25, 25, 0]                     # the second's start waits until the first gave half
        assert [lim.limit() for lim in limiters] == [16, 16, 16]
        # another workspace is another budget
        other = stores[0].rate_shares("slack:T2:UBOT", window=WINDOW)
        alone = Limiter(other)
        await other.start()
        assert alone.limit() == 50
        for s in (*shares, other):
            await s.close()


async def test_a_newcomer_waits_while_the_calls_the_others_made_are_still_in_the_window(postgres_url):
    clock = Clock()
    async with AsyncExitStack() as stack:
        first_store, second_store = await open_stores(stack, postgres_url, clock, 2)
        first_shares = first_store.rate_shares("slack:T1:UBOT", window=WINDOW)
        first = Limiter(first_shares)
        await first_shares.start()
        first.calls = 50                                   # a burst used the whole minute
        await first_shares.refresh()
        second_shares = second_store.rate_shares("slack:T1:UBOT", window=WINDOW)
        second = Limiter(second_shares)
        await second_shares.start()
        await first_shares.refresh()
        await second_shares.refresh()
        assert (first.limit(), second.limit()) == (25, 0)  # the first's 50 calls still count at Slack
        first.calls = 20                                   # 30 of them left the window
        await first_shares.refresh()
        await second_shares.refresh()
        assert (first.limit(), second.limit()) == (25, 25)
        assert first.calls + second.limit() <= 50
        for s in (first_shares, second_shares):
            await s.close()


async def test_a_process_that_stops_leaves_its_calls_counted_until_they_left_the_window(postgres_url):
    clock = Clock()
    async with AsyncExitStack() as stack:
        a_store, b_store = await open_stores(stack, postgres_url, clock, 2)
        a_shares = a_store.rate_shares("discord:app", window=1.0)
        b_shares = b_store.rate_shares("discord:app", window=1.0)
        a, b = Limiter(a_shares, "global", 45), Limiter(b_shares, "global", 45)
        await a_shares.start()
        await b_shares.start()
        await a_shares.refresh()
        await b_shares.refresh()
        assert (a.limit(), b.limit()) == (22, 22)
        b.calls = 22
        await b_shares.refresh()
        await b_shares.close()                             # stopped (or died: its rows expire the same way)
        await a_shares.refresh()
        assert a.limit() == 45 - 22                          # the rest is the live one's
        clock.now += 1.5                                   # a window later its calls are gone
        await a_shares.refresh()
        assert a.limit() == 45
        await a_shares.close()
