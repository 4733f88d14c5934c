"""Many answers at once under Discord's global limit: an answer streams only when the bot's budget has room for
it, otherwise it is posted whole when done — one write instead of a post and edits — and nothing is lost.

The stand-in enforces a global budget of 3 requests per second (Discord's is 50; small here so that a few
answers saturate it) and answers 429 above it; the bot's pacers are told the same budget.
"""
from __future__ import annotations

import asyncio

from bots.discord.pacing import Pacer
from tests.fakes.discord_world import WINDOW, world
from bots.standins.openai_server import ScriptedResponse, last_user_text

BUDGET = 3
# discord.py's own start-up requests (who am I, the slash commands) are not paced: let them leave the window
SETTLE = 1.1
PACERS = {"channel_limit": 5, "channel_period": WINDOW, "global_limit": BUDGET, "global_period": 1.0}


def long_answer(question: str) -> str:
    paragraph = f"About {question}: basil, tomato, olive oil and a pinch of salt, then bake it slowly. "
    return "\n\n".join(paragraph * 6 + f"(part {i})" for i in range(9))   # ~4,600 characters: three messages


async def test_with_the_budget_saturated_answers_are_posted_whole_complete_and_without_a_429(tmp_path):
    names = tuple(f"room-{i}" for i in range(8))
    async with world(tmp_path, channels=names, discord_kwargs={"global_limit": BUDGET}, pacers=PACERS) as w:
        channels = [w.channel(n) for n in names]
        answer = {f"question {i}": f"Answer to question {i}: basil, tomato and a pinch of salt." for i in range(8)}
        w.openai.responder = lambda body: ScriptedResponse(text=answer[last_user_text(body)], deltas=4, delay=0.02)
        await asyncio.sleep(SETTLE)
        await asyncio.gather(*(w.discord.user_message(c, w.discord.alice, q, mention_bot=True)
                               for c, q in zip(channels, answer)))

        for c, q in zip(channels, answer):
            await w.final_answer(c, answer[q])

        assert w.discord.rate_limited == []
        replies = [m for c in channels for m in w.discord.messages_in(c, by_bot=True)]
        assert len(replies) == 8
        # The budget had room for the first posts of three answers; the others were posted whole when done:
        # their message never changed, and it shows the whole answer.
        whole = [m for m in replies if m.edits == 0]
        assert len(whole) >= 8 - BUDGET
        assert all(m.history == [m.content] for m in whole)
        writes = [r for r in w.discord.requests if r["method"] in ("POST", "PATCH") and "/messages" in r["path"]]
        assert len(writes) < 2 * 8  # fewer writes than a post and a final edit for each answer


async def test_a_long_answer_held_back_arrives_whole_in_parts_without_losing_a_character(tmp_path):
    names = tuple(f"room-{i}" for i in range(5))
    async with world(tmp_path, channels=names, discord_kwargs={"global_limit": BUDGET}, pacers=PACERS) as w:
        channels = [w.channel(n) for n in names]
        answer = {f"question {i}": long_answer(f"question {i}") for i in range(5)}
        w.openai.responder = lambda body: ScriptedResponse(text=answer[last_user_text(body)], delta_size=400,
                                                           delay=0.01)
        await asyncio.sleep(SETTLE)
        await asyncio.gather(*(w.discord.user_message(c, w.discord.alice, q, mention_bot=True)
                               for c, q in zip(channels, answer)))

        shown = {c: await w.final_answer(c, answer[q]) for c, q in zip(channels, answer)}

        assert w.discord.rate_limited == []
        # At least one answer found no room at all: its three parts were posted complete, none of them edited.
        assert any(len(msgs) == 3 and all(m.edits == 0 for m in msgs) for msgs in shown.values())


async def test_an_answer_nobody_sees_yet_goes_before_final_edits_and_those_before_progress():
    """The queue order in the pacer: the first message of a reply, then final edits, then progress edits."""
    pacer = Pacer(1, 0.05, margin=0)
    order: list[str] = []

    async def request(name: str, **kind) -> None:
        async with pacer.slot(**kind):
            order.append(name)

    assert pacer.try_acquire()      # the budget is in use: everyone below queues
    tasks = [asyncio.create_task(request("progress a")),
             asyncio.create_task(request("final b", urgent=True)),
             asyncio.create_task(request("whole c", first=True)),
             asyncio.create_task(request("final d", urgent=True)),
             asyncio.create_task(request("whole e", first=True))]
    await asyncio.sleep(0)
    assert pacer.free_now() == 0
    pacer.release()
    await asyncio.gather(*tasks)

    assert order == ["whole c", "whole e", "final b", "final d", "progress a"]
