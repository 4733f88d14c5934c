"""Many answers at once under Discord's limits: an answer queues for its first message with its first text and,
when its turn comes, shows what it has — its beginning while the model still writes, else the whole answer in
one write instead of a post and edits — and nothing is lost.

The decision on its own first (bots/discord/delivery with the real pacers on a clock that only moves when told),
then end to end: the stand-in enforces a global budget of 3 requests per second (Discord's is 50; small here so
that a few answers saturate it) and per-channel buckets, and answers 429 above them; the bot's pacers are told
the same budgets.
"""
from __future__ import annotations

import asyncio

from bots.discord.delivery import Delivery
from bots.discord.pacing import Pacer, Pacers
from core.reply.tail import CURSOR
from tests.discord.test_discord import make_adapter
from tests.fakes.discord_chat import StreamingService
from tests.fakes.discord_world import WINDOW, world
from bots.standins.discord_server import FakeDiscord
from bots.standins.openai_server import ScriptedResponse, last_user_text

BUDGET = 3
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
        await asyncio.gather(*(w.discord.user_message(c, w.discord.alice, q, mention_bot=True)
                               for c, q in zip(channels, answer)))

        shown = {c: await w.final_answer(c, answer[q]) for c, q in zip(channels, answer)}

        assert w.discord.rate_limited == []
        # At least one answer found no room at all: its three parts were posted complete, none of them edited.
        assert any(len(msgs) == 3 and all(m.edits == 0 for m in msgs) for msgs in shown.values())


async def test_discord_py_s_own_start_up_requests_share_the_budget_with_answers_that_come_at_once(tmp_path):
    names = tuple(f"room-{i}" for i in range(6))
    async with world(tmp_path, channels=names, discord_kwargs={"global_limit": BUDGET}, pacers=PACERS) as w:
        # Who the bot is, the application, the slash-command sync: as many requests as the budget allows in one
        # second, made by discord.py itself while the bot starts...
        startup = [r for r in w.discord.requests if r["method"] == "GET" or "/commands" in r["path"]]
        assert len(startup) >= BUDGET
        channels = [w.channel(n) for n in names]
        answer = {f"question {i}": f"Answer to question {i}." for i in range(6)}
        w.openai.responder = lambda body: ScriptedResponse(text=answer[last_user_text(body)], deltas=2)
        # ...and the first messages arrive the moment it is up (they waited while it was down, say)
        await asyncio.gather(*(w.discord.user_message(c, w.discord.alice, q, mention_bot=True)
                               for c, q in zip(channels, answer)))
        for c, q in zip(channels, answer):
            await w.final_answer(c, answer[q])

        assert w.discord.rate_limited == []


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


# ---- the decision, on a clock that stands still ----------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def turns(n: int = 10) -> None:
    """Let the loop run the tasks woken so far (a slot handed on, the waiter that gets it)."""
    for _ in range(n):
        await asyncio.sleep(0)


def budgets(clock: Clock, **kwargs) -> tuple[Pacers, Delivery]:
    pacers = Pacers(**({"global_limit": 2, "global_period": 1.0, "channel_limit": 5, "channel_period": 5.0}
                       | kwargs), clock=clock)
    return pacers, Delivery(pacers, clock=clock)


async def test_an_answer_waits_in_line_and_shows_its_beginning_or_if_it_ended_meanwhile_its_whole_text():
    clock = Clock()
    pacers, delivery = budgets(clock, global_limit=2)
    a, b, c, d = (delivery.open(channel) for channel in (1, 2, 3, 4))
    ready: list[str] = []
    for name, plan in zip("abcd", (a, b, c, d)):
        plan.on_ready = lambda name=name: ready.append(name)

    assert a.may_start() and b.may_start()            # room now: their first posts go out at once
    assert not c.may_start() and not d.may_start()    # no room: in line behind them, in the order they came
    d.end()                                           # d's model finished while it waited

    (await a.first_slots()).give_back()               # a slot comes free: the first in line gets it
    await turns()
    assert ready == ["c"] and c.may_start()           # c is still being written: it shows its beginning now
    (await b.first_slots()).give_back()
    await turns()
    assert ready == ["c"]                             # d has nothing more to wait for...
    slots = await d.first_slots()                     # ...its whole text goes out on the slot it queued for
    assert slots is not None and not d.streaming
    slots.release()
    d.close()
    assert (delivery.held, delivery.streamed) == (1, 3)


async def test_an_answer_that_ends_before_its_turn_keeps_its_place_in_line():
    clock = Clock()
    pacers, delivery = budgets(clock, global_limit=1)
    first, early, late = (delivery.open(channel) for channel in (1, 2, 3))
    assert first.may_start()
    assert not early.may_start() and not late.may_start()
    early.end()                                       # done before its turn: it will be posted whole...
    whole = asyncio.create_task(early.first_slots())
    await turns()
    assert not whole.done()                           # ...when its turn comes, not before
    (await first.first_slots()).give_back()
    await turns()
    assert whole.done() and whole.result() is not None    # ahead of `late`, which came after it
    assert not late.may_start()
    whole.result().give_back()
    early.close()
    await turns()
    assert late.may_start()
    late.close()                                      # never posted (its reply failed, say): the slot goes back
    assert pacers.global_.free_now() == 1


async def test_a_first_message_waits_for_its_channel_even_when_the_global_budget_has_room():
    clock = Clock()
    pacers, delivery = budgets(clock, global_limit=10, channel_limit=1)
    a, b, elsewhere = delivery.open(7), delivery.open(7), delivery.open(8)
    assert a.may_start()
    assert not b.may_start()                          # the channel's one slot is a's; 9 global slots are free
    assert elsewhere.may_start()                      # another channel is not held up
    b.end()                                           # b ended while its channel was busy
    (await a.first_slots()).give_back()
    slots = await b.first_slots()
    assert slots is not None and not b.streaming      # posted whole: one write in the busy channel
    slots.release()
    b.close()
    assert delivery.held == 1


async def test_progress_edits_leave_each_answer_streaming_in_a_channel_a_slot_for_its_final_edit():
    clock = Clock()
    pacers, delivery = budgets(clock, global_limit=50, channel_limit=4)
    a, b = delivery.open(1), delivery.open(1)
    assert a.may_start() and b.may_start()
    for plan in (a, b):
        (await plan.first_slots()).release()         # both first posts are out: 2 of the channel's 4 left
    assert not a.progress() and not b.progress()      # each of the 2 left is owed to a final edit
    a.end()
    a.close()                                         # a's final edit is out...
    async with pacers.for_channel(1, urgent=True):
        pass
    assert not b.progress()                           # ...1 left, and it is b's
    other = delivery.open(2)
    assert other.may_start()
    (await other.first_slots()).release()
    assert other.progress()                           # another channel has its own bucket


async def test_progress_edits_leave_the_global_budget_to_answers_expected_to_end_within_its_window():
    clock = Clock()
    pacers, delivery = budgets(clock, global_limit=2, global_period=1.0)
    past = delivery.open(1)
    assert past.may_start()
    (await past.first_slots()).give_back()
    clock.now += 2.0
    past.close()                                      # answers take about 2 s from their first text
    clock.now += 10.0
    a, b = delivery.open(2), delivery.open(3)
    assert a.may_start() and b.may_start()
    for plan in (a, b):
        (await plan.first_slots()).give_back()        # (slots given back: the budget is all free again)
    assert a.progress()                               # neither is expected to end within the next second
    clock.now += 1.5
    assert not a.progress()                           # both are: the 2 free slots are for their final edits
    assert pacers.global_.free_now() == 2


async def test_answers_that_do_not_show_yet_keep_the_free_slots_from_typing_and_progress_edits():
    clock = Clock()
    pacers, delivery = budgets(clock, global_limit=2)
    a = delivery.open(1)
    assert delivery.spare()                           # one answer to show, two slots: "is typing…" may go
    b, c = delivery.open(2), delivery.open(3)         # two more asked their model: no word yet
    assert not delivery.spare()                       # every free slot is a first message's soon
    assert a.may_start()
    (await a.first_slots()).release()
    clock.now += 5.0                                  # (a's post has left the window: 2 slots free again)
    assert not a.progress()                           # a shows; b's and c's first messages come first
    b.close()
    c.close()                                         # (their replies failed before a word)
    assert a.progress() and delivery.spare()


# ---- end to end: what the channels show ------------------------------------------------------------------


async def test_answers_in_line_show_their_beginnings_in_turn_and_one_that_ended_shows_whole_in_its_place(tmp_path):
    discord = FakeDiscord(channel_limit=5, channel_period=WINDOW, global_limit=BUDGET)
    await discord.start()
    service = StreamingService()
    try:
        discord.guild = discord.add_guild("Team", tuple(f"room-{i}" for i in range(6)))
        alice = discord.add_user("alice")
        channels = [discord.channel_id(discord.guild, f"room-{i}") for i in range(6)]
        adapter = make_adapter(discord, service, tmp_path, pacers=Pacers(**PACERS))
        await adapter.start()
        try:
            for i, channel in enumerate(channels):
                await discord.user_message(channel, alice, f"q{i}", mention_bot=True)
            streams = [await service.stream_for(f"q{i}") for i in range(6)]
            for i, stream in enumerate(streams):
                await stream.text(f"Answer {i} begins")
            await streams[5].close()                  # the model finished q5 before its turn could come
            # Nobody else is done: each answer shows its beginning when its turn comes, none waits for its end.
            shown = await discord.wait_for(lambda: all(discord.messages_in(c, by_bot=True) for c in channels)
                                           and [discord.messages_in(c, by_bot=True)[0] for c in channels])
            for i, stream in enumerate(streams[:5]):
                await stream.text(" and ends.")
                await stream.close()
            for i, channel in enumerate(channels[:5]):
                await discord.wait_for(lambda c=channel, i=i: discord.bot_text(c) == f"Answer {i} begins and ends.")

            assert all(m.history[0] == f"Answer {i} begins{CURSOR}" for i, m in enumerate(shown[:5]))
            assert shown[5].history == ["Answer 5 begins"] and shown[5].edits == 0    # whole, in one write
            assert discord.rate_limited == []
        finally:
            for i in range(6):
                fut = service.stream_for(f"q{i}")
                if fut.done() and f"q{i}" not in service.closed:
                    await fut.result().close()
            await adapter.stop()
    finally:
        await discord.stop()
