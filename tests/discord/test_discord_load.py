"""Many users at once on Discord, end to end: the real ChatService + SqliteStore + OpenAIBackend against the
stand-in OpenAI, the real discord.py against the stand-in Discord with its per-channel and global limits.

What a user would see: every question gets its whole answer, and Discord never had to say "slow down".
"""
from __future__ import annotations

from tests.fakes.discord_world import answers_by_question, ask_everyone, world


async def test_fifty_simultaneous_mentions_all_answered_completely_without_a_429(tmp_path):
    names = ("general", "kitchen", "random", "recipes", "wine")
    async with world(tmp_path, channels=names) as w:
        channels = [w.channel(n) for n in names]
        expected = await ask_everyone(w, channels, 50)

        await w.discord.wait_for(lambda: answers_by_question(w, channels) == expected, timeout=20)
        assert w.discord.rate_limited == []
        assert len(w.openai.response_requests()) == 50
        # each mention roots its own conversation (made right after its answer when no spare was ready)
        await w.discord.wait_for(lambda: len({w.openai.conversation_of(r) for r in w.openai.response_requests()}
                                             - {None}) == 50, timeout=20)
        # One message per answer: posted when the first words arrived, then edited into the whole answer.
        assert sum(len(w.discord.messages_in(c, by_bot=True)) for c in channels) == 50


async def test_two_hundred_mentions_under_the_global_limit_lose_no_answer(tmp_path):
    names = tuple(f"room-{i}" for i in range(20))
    # The stand-in enforces Discord's real global limit (50 requests/s per bot) besides the per-channel one.
    async with world(tmp_path, channels=names, discord_kwargs={"global_limit": 50}) as w:
        channels = [w.channel(n) for n in names]
        # Short answers in one piece: the test is about 200 answers arriving, not about streaming them.
        expected = await ask_everyone(w, channels, 200, deltas=1)

        await w.discord.wait_for(lambda: answers_by_question(w, channels) == expected, timeout=25)
        assert w.discord.rate_limited == []
        assert len(w.openai.response_requests()) == 200
