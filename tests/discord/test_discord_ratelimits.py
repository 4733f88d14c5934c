"""Discord's rate limits from the bot's side, end to end (real service, store, backend, discord.py):
the stand-in without rate-limit headers, with a channel limit tighter than the bot assumes, and with a
global 429. Whatever Discord says, every answer reaches the user whole.
"""
from __future__ import annotations

from tests.fakes.discord_world import answers_by_question, ask_everyone, world


async def test_without_rate_limit_headers_our_own_pacing_still_avoids_every_429(tmp_path):
    names = ("general", "kitchen", "random")
    # Discord may leave out X-RateLimit-*: discord.py then can't pace itself, only our pacers keep us under.
    async with world(tmp_path, channels=names, discord_kwargs={"rate_limit_headers": False}) as w:
        channels = [w.channel(n) for n in names]
        expected = await ask_everyone(w, channels, 24)

        await w.discord.wait_for(lambda: answers_by_question(w, channels) == expected, timeout=20)
        assert w.discord.rate_limited == []
        assert not any(k.startswith("X-RateLimit") for k in w.discord.last_headers)


async def test_channel_429s_without_headers_are_retried_and_nothing_is_lost(tmp_path):
    names = ("general", "kitchen")
    # Discord's channel limit turns out tighter than the bot's pacers assume, and no headers say so:
    # Discord answers 429 (JSON retry_after, Via); discord.py waits and retries; every answer arrives whole.
    async with world(tmp_path, channels=names, discord_kwargs={"rate_limit_headers": False, "channel_limit": 3}) as w:
        channels = [w.channel(n) for n in names]
        expected = await ask_everyone(w, channels, 12)

        await w.discord.wait_for(lambda: answers_by_question(w, channels) == expected, timeout=20)
        assert w.discord.rate_limited and {r["scope"] for r in w.discord.rate_limited} == {"user"}
        assert sum(len(w.discord.messages_in(c, by_bot=True)) for c in channels) == 12


async def test_a_global_429_is_waited_out_and_nothing_is_lost(tmp_path):
    names = tuple(f"room-{i}" for i in range(6))
    # Another process with the same token uses most of the global budget: Discord answers 429 with
    # "global": true; discord.py holds every request until it passes; every answer arrives whole.
    async with world(tmp_path, channels=names, discord_kwargs={"global_limit": 12}) as w:
        channels = [w.channel(n) for n in names]
        expected = await ask_everyone(w, channels, 12, deltas=1)

        await w.discord.wait_for(lambda: answers_by_question(w, channels) == expected, timeout=20)
        assert any(r["scope"] == "global" for r in w.discord.rate_limited)
        assert sum(len(w.discord.messages_in(c, by_bot=True)) for c in channels) == 12
