"""The Discord pacers on their own: who gets the next request slot, and that the budget always holds.

Short windows (a few tenths of a second) keep this fast; nothing here asserts how long anything took.
The budget check replays what the pacer saw: at every moment a slot was handed out, the requests in
flight plus those finished within the window must stay under the limit.
"""
from __future__ import annotations

import asyncio
import time

import pytest

from bots.discord.pacing import HOLDING, Pacer, Pacers, Ticket


class Log:
    """Start and finish times of every request made through a pacer, on the pacer's own clock."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.spans: list[tuple[float, float]] = []

    async def request(self, pacer: Pacer, name: str, *, urgent: bool = False, hold: float = 0.0) -> None:
        async with pacer.slot(urgent=urgent):
            start = time.monotonic()
            self.order.append(name)
            await asyncio.sleep(hold)
            self.spans.append((start, time.monotonic()))

    def worst_window(self, period: float) -> int:
        """The most requests one pacer let overlap a window: in flight at a start, or finished within
        `period` before it, counting the starting one."""
        worst = 0
        for start, _ in self.spans:
            busy = sum(1 for s, f in self.spans if s <= start and f > start - period)
            worst = max(worst, busy)
        return worst


async def test_waiters_get_their_slots_in_arrival_order_and_the_budget_holds():
    pacer = Pacer(3, 0.15, margin=0)
    log = Log()
    tasks = []
    for i in range(12):
        tasks.append(asyncio.create_task(log.request(pacer, f"r{i}", hold=0.01)))
        await asyncio.sleep(0)  # each one queues before the next arrives
    await asyncio.gather(*tasks)

    assert log.order == [f"r{i}" for i in range(12)]
    assert log.worst_window(pacer.period) <= 3


async def test_a_freed_slot_wakes_exactly_one_waiter():
    pacer = Pacer(2, 0.1, margin=0)
    for _ in range(2):
        assert pacer.try_acquire()
    waiters = [asyncio.create_task(pacer.acquire()) for _ in range(20)]
    await asyncio.sleep(0)
    assert pacer.waiting == 20

    pacer.release()               # a finish counts for the window: nobody may go yet
    await asyncio.sleep(0)
    assert pacer.waiting == 20 and not any(t.done() for t in waiters)

    pacer.give_back()             # a slot that was never used: exactly one waiter gets it
    await asyncio.sleep(0)
    assert pacer.waiting == 19 and [t.done() for t in waiters] == [True] + [False] * 19

    for t in waiters:
        t.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    assert pacer.waiting == 0


async def test_urgent_requests_go_before_ordinary_ones_already_waiting():
    pacer = Pacer(1, 0.05, margin=0)
    log = Log()
    assert pacer.try_acquire()
    tasks = [asyncio.create_task(log.request(pacer, "edit a")),
             asyncio.create_task(log.request(pacer, "edit b"))]
    await asyncio.sleep(0)
    tasks += [asyncio.create_task(log.request(pacer, "final c", urgent=True)),
              asyncio.create_task(log.request(pacer, "final d", urgent=True))]
    await asyncio.sleep(0)
    pacer.release()
    await asyncio.gather(*tasks)

    assert log.order == ["final c", "final d", "edit a", "edit b"]
    assert log.worst_window(pacer.period) <= 1


async def test_a_withdrawn_ticket_leaves_the_queue_and_its_turn_goes_to_the_next():
    pacer = Pacer(1, 0.05, margin=0)
    log = Log()
    assert pacer.try_acquire()
    ticket = Ticket()
    moot = asyncio.create_task(pacer.acquire(ticket=ticket))
    nxt = asyncio.create_task(log.request(pacer, "next"))
    await asyncio.sleep(0)

    ticket.withdraw()
    assert await moot is False           # holds nothing
    pacer.release()
    await nxt
    assert log.order == ["next"] and pacer.waiting == 0
    # A ticket withdrawn before it queues never queues.
    assert await pacer.acquire(ticket=ticket) is False


async def test_a_cancelled_waiter_passes_its_slot_on():
    pacer = Pacer(1, 0.05, margin=0)
    log = Log()
    assert pacer.try_acquire()
    first = asyncio.create_task(pacer.acquire())
    second = asyncio.create_task(log.request(pacer, "second"))
    await asyncio.sleep(0)
    pacer.give_back()                    # the slot is handed to `first`...
    first.cancel()                       # ...which is cancelled before it runs: `second` gets it
    with pytest.raises(asyncio.CancelledError):
        await first
    await second
    assert log.order == ["second"]


async def test_typing_never_takes_a_slot_someone_is_waiting_for():
    pacer = Pacer(1, 0.05, margin=0)
    assert pacer.try_acquire()
    waiter = asyncio.create_task(pacer.acquire())
    await asyncio.sleep(0)
    async with pacer.slot_if_free() as free:
        assert not free
    pacer.release()
    assert await waiter is True


async def test_channel_and_global_budgets_hold_together_with_many_replies():
    pacers = Pacers(channel_limit=2, channel_period=0.2, global_limit=4, global_period=0.1)
    per_channel: dict[int, Log] = {c: Log() for c in range(3)}
    overall = Log()

    async def request(channel: int, i: int) -> None:
        async with pacers.for_channel(channel, urgent=i % 2 == 0):
            start = time.monotonic()
            await asyncio.sleep(0.005)
            per_channel[channel].spans.append((start, time.monotonic()))
            overall.spans.append((start, time.monotonic()))

    await asyncio.gather(*(request(i % 3, i) for i in range(15)))

    assert len(overall.spans) == 15
    assert overall.worst_window(pacers.global_.period) <= 4
    for log in per_channel.values():
        assert log.worst_window(pacers.channel(0).period) <= 2


async def test_idle_channel_pacers_are_forgotten_busy_ones_kept():
    now = [100.0]
    pacers = Pacers(channel_limit=5, channel_period=5.0, clock=lambda: now[0])
    for channel in range(1000):
        async with pacers.channel(channel).slot():
            pass
    busy = pacers.channel(5000)
    assert busy.try_acquire()            # in flight while the others' windows run out
    assert pacers.channel_count == 1001

    now[0] += 6.0                        # every finished window is empty now
    pacers.channel(7)
    assert pacers.channel_count == 2     # the busy one and the one just asked for
    assert pacers.channel(5000) is busy  # its budget is still the one in force
    busy.release()


async def test_only_a_global_slot_lets_discord_py_s_own_requests_through_unpaced():
    """bots/discord/paced_http paces every request made without a global slot (HOLDING): a slot of another
    pacer — an interaction's, a channel's on its own — must not count as one, or its request skips the budget."""
    pacers = Pacers(channel_limit=5, channel_period=1.0, global_limit=5, global_period=1.0)
    interaction_only = Pacer(5, 2.0)
    async with interaction_only.slot():
        assert HOLDING.get() is False
    async with interaction_only.slot_if_free() as got:
        assert got and HOLDING.get() is False
    async with pacers.for_global():
        assert HOLDING.get() is True
    async with pacers.global_.slot_if_free() as got:
        assert got and HOLDING.get() is True
    async with pacers.for_channel(1) as got:   # a channel's slot comes with a global one
        assert got and HOLDING.get() is True
    assert HOLDING.get() is False
