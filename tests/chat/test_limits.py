"""Message rate and daily token budgets: user sends N messages / spends N tokens -> the reply they read."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from core.chat.limits import UsageLimiter
from core.model import Author, InboundMessage, Usage
from core.config.policy import LimitsConfig, effective_limits
from core.store.sqlite import SqliteStore


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


class CountingStore(SqliteStore):
    """The real store, counting how often the limiter reads it."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.reads = 0

    async def usage_rows(self, since: float, until: float) -> list[dict]:
        self.reads += 1
        return await super().usage_rows(since, until)


def msg(user: str = "U1", channel: str = "C1", direct: bool = False) -> InboundMessage:
    return InboundMessage(platform="slack", workspace="T1", channel=channel, author=Author(id=user), text="hi",
                          is_direct=direct)


@pytest.fixture
async def setup(tmp_path):
    clock = Clock(ts("2026-11-20T22:00:00"))
    store = CountingStore(tmp_path / "t.db", clock=clock)
    await store.open()
    yield clock, store, UsageLimiter(store, clock=clock)
    await store.close()


async def turn(store, limiter, *, user="U1", channel="C1", input_tokens=0, output_tokens=0, cached=0):
    """What the service does after a turn: record the usage row, then tell the limiter."""
    await store.record_usage(assistant="math", platform="slack", workspace="T1", channel=channel, user=user,
                             model="gpt-4.1-mini",
                             usage=Usage(input_tokens=input_tokens, cached_tokens=cached,
                                         output_tokens=output_tokens))
    limiter.add_tokens(user, channel, input_tokens + output_tokens)


async def send(limiter, limits, m) -> str | None:
    refusal = await limiter.check(limits, m)
    if refusal is None:
        limiter.note_message(m)
    return refusal


async def test_rate_limit_hit_and_window_slides(setup):
    clock, _, limiter = setup
    limits = LimitsConfig(messages_per_minute=3)
    start = clock.now
    for offset in (0, 10, 20):
        clock.now = start + offset
        assert await send(limiter, limits, msg()) is None
    clock.now = start + 30
    assert await send(limiter, limits, msg()) == "You've reached 3 messages per minute — try again in 30 s."
    # someone else is not affected
    assert await send(limiter, limits, msg("U2")) is None
    clock.now = start + 59.5
    assert await send(limiter, limits, msg()) == "You've reached 3 messages per minute — try again in 1 s."
    # the first message leaves the window at +60
    clock.now = start + 60
    assert await send(limiter, limits, msg()) is None
    # window now holds +10, +20, +60: the next slot opens when +10 leaves, at +70
    clock.now = start + 65
    assert await send(limiter, limits, msg()) == "You've reached 3 messages per minute — try again in 5 s."
    clock.now = start + 70
    assert await send(limiter, limits, msg()) is None


async def test_refused_messages_do_not_extend_the_window(setup):
    clock, _, limiter = setup
    limits = LimitsConfig(messages_per_minute=1)
    start = clock.now
    assert await send(limiter, limits, msg()) is None
    for offset in (5, 30, 59):
        clock.now = start + offset
        assert await send(limiter, limits, msg()) is not None
    clock.now = start + 60
    assert await send(limiter, limits, msg()) is None


async def test_daily_user_budget_hit_and_reset_next_day(setup):
    clock, store, limiter = setup
    limits = LimitsConfig(tokens_per_user_per_day=1000)
    # yesterday's heavy use does not count today
    clock.now = ts("2026-11-19T12:00:00")
    await turn(store, limiter, input_tokens=4000, output_tokens=1000)
    # earlier today, before the limiter was asked (e.g. before a restart): read from the store
    clock.now = ts("2026-11-20T08:00:00")
    await store.record_usage(assistant="math", platform="slack", workspace="T1", channel="C1", user="U1",
                             model="gpt-4.1-mini", usage=Usage(input_tokens=300, cached_tokens=100,
                                                               output_tokens=200))
    clock.now = ts("2026-11-20T22:00:00")
    assert await send(limiter, limits, msg()) is None
    assert limiter.tokens_today(user="U1") == 500          # cached tokens are part of input_tokens
    await turn(store, limiter, input_tokens=350, output_tokens=100)   # 950 now
    assert await send(limiter, limits, msg()) is None
    await turn(store, limiter, input_tokens=40, output_tokens=10)     # 1000: budget used up
    refusal = await send(limiter, limits, msg())
    assert refusal == "You've used your daily budget of 1,000 tokens — it resets at midnight UTC (in 2 h)."
    # another user still has their budget
    assert await send(limiter, limits, msg("U2")) is None
    clock.now = ts("2026-11-20T23:59:30")
    assert "(in 1 min)" in await send(limiter, limits, msg())
    # next UTC day
    clock.now = ts("2026-11-21T00:00:00")
    assert await send(limiter, limits, msg()) is None
    assert limiter.tokens_today(user="U1") == 0


async def test_daily_channel_budget(setup):
    clock, store, limiter = setup
    limits = LimitsConfig(tokens_per_channel_per_day=500)
    assert await send(limiter, limits, msg("U1", "C1")) is None
    await turn(store, limiter, user="U1", channel="C1", input_tokens=200, output_tokens=100)
    await turn(store, limiter, user="U2", channel="C1", input_tokens=150, output_tokens=50)
    refusal = await send(limiter, limits, msg("U3", "C1"))
    assert refusal == ("This channel has used its daily budget of 500 tokens — it resets at midnight UTC "
                       "(in 2 h).")
    assert await send(limiter, limits, msg("U3", "C2")) is None


async def test_totals_are_read_once_per_day(setup):
    clock, store, limiter = setup
    limits = LimitsConfig(tokens_per_user_per_day=10_000, tokens_per_channel_per_day=10_000)
    for _ in range(5):
        assert await send(limiter, limits, msg()) is None
        await turn(store, limiter, input_tokens=10, output_tokens=10)
    assert store.reads == 1
    assert limiter.tokens_today(user="U1") == 100
    clock.now += 86400
    assert await send(limiter, limits, msg()) is None
    assert store.reads == 2


async def test_unlimited_never_refuses_nor_reads(setup):
    clock, store, limiter = setup
    for _ in range(50):
        assert await send(limiter, LimitsConfig(), msg()) is None
        await turn(store, limiter, input_tokens=10_000, output_tokens=10_000)
    assert store.reads == 0


def test_assistant_override_replaces_only_written_keys():
    base = LimitsConfig(messages_per_minute=5, tokens_per_user_per_day=1000)
    override = LimitsConfig.model_validate({"tokens_per_user_per_day": None, "tokens_per_channel_per_day": 50})
    merged = effective_limits(base, override)
    assert merged == LimitsConfig(messages_per_minute=5, tokens_per_user_per_day=None,
                                  tokens_per_channel_per_day=50)
    assert effective_limits(base, None) == base


async def test_concurrent_messages_cannot_slip_past_the_rate_limit(tmp_path):
    class SlowStore(SqliteStore):
        """The day's totals arrive only after every message has been checked once."""
        gate = asyncio.Event()

        async def usage_rows(self, since, until):
            await self.gate.wait()
            return await super().usage_rows(since, until)

    clock = Clock(ts("2026-11-20T22:00:00"))
    async with SlowStore(tmp_path / "s.db", clock=clock) as store:
        limiter = UsageLimiter(store, clock=clock)
        limits = LimitsConfig(messages_per_minute=2, tokens_per_user_per_day=10_000)
        pending = [asyncio.create_task(limiter.admit(limits, msg())) for _ in range(5)]
        await asyncio.sleep(0)
        SlowStore.gate.set()
        replies = await asyncio.gather(*pending)
    assert replies.count(None) == 2
    assert replies.count("You've reached 2 messages per minute — try again in 60 s.") == 3


async def test_direct_messages_count_for_the_user_not_a_channel_budget(setup):
    clock, store, limiter = setup
    limits = LimitsConfig(tokens_per_channel_per_day=100, tokens_per_user_per_day=1000)
    assert await limiter.admit(limits, msg(channel="D1", direct=True)) is None
    await turn(store, limiter, channel="D1", input_tokens=150, output_tokens=50)
    assert await limiter.admit(limits, msg(channel="D1", direct=True)) is None
    assert limiter.tokens_today(user="U1") == 200


async def test_budgets_count_the_turns_of_other_processes_on_a_shared_store(tmp_path):
    """Two processes, one database: each limiter re-reads the day's totals (refresh) and sees the other's turns."""
    clock = Clock(ts("2026-11-20T10:00:00"))
    limits = LimitsConfig(tokens_per_user_per_day=1000)
    async with SqliteStore(tmp_path / "shared.db", clock=clock) as store:
        here = UsageLimiter(store, clock=clock, refresh=10)
        there = UsageLimiter(store, clock=clock, refresh=10)
        assert await here.admit(limits, msg()) is None
        await turn(store, there, input_tokens=900, output_tokens=200)   # answered by the other process
        assert await here.admit(limits, msg()) is None                   # not re-read yet
        clock.now += 10
        refusal = await here.admit(limits, msg())
        assert refusal is not None and "daily budget of 1,000 tokens" in refusal


async def test_with_several_processes_on_postgresql_a_users_messages_count_on_every_process(postgres_url):
    from core.store.postgres import PostgresStore

    clock = Clock(ts("2026-11-20T22:00:00"))
    start = clock.now
    async with PostgresStore(postgres_url, owner="p0", clock=clock) as one, \
            PostgresStore(postgres_url, owner="p1", clock=clock) as other:
        first = UsageLimiter(one, clock=clock, refresh=10, rates=one.message_rates())
        second = UsageLimiter(other, clock=clock, refresh=10, rates=other.message_rates())
        limits = LimitsConfig(messages_per_minute=2)
        assert await first.admit(limits, msg()) is None
        clock.now = start + 10
        assert await second.admit(limits, msg()) is None           # the other process, the same person
        clock.now = start + 20
        assert await first.admit(limits, msg()) == "You've reached 2 messages per minute — try again in 40 s."
        assert await second.admit(limits, msg("U2")) is None       # someone else is not affected
        # two at once on two processes: only one of them fits
        clock.now = start + 60
        results = await asyncio.gather(first.admit(limits, msg()), second.admit(limits, msg()))
        assert sorted(r is None for r in results) == [False, True], results
        clock.now = start + 71
        assert await second.admit(limits, msg()) is None            # +10 left the window at +70
