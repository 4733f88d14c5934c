"""An answer whose turn for a first message comes shortly before its expected end keeps that slot and waits on it
for its end: one write (its whole text) instead of its beginning now and a final edit that would queue behind
every first message still waiting — and a tool call starting meanwhile ends the wait at once.

The decision on its own (bots/discord/delivery with the real pacers on a clock that only moves when told), then
end to end through discord.py and the Discord stand-in, the bot's budget on that same kind of clock.
"""
from __future__ import annotations

import asyncio

from bots.discord.delivery import Delivery
from bots.discord.pacing import Pacers
from bots.standins.discord_server import FakeDiscord
from core.model import ToolUpdate
from core.reply.tail import CURSOR
from tests.discord.test_discord import make_adapter
from tests.discord.test_discord_delivery import Clock, turns
from tests.fakes.discord_chat import StreamingService
from tests.fakes.discord_world import WINDOW, world
from bots.standins.openai_server import CodeRun, GeneratedFile, ScriptedResponse, last_user_text
from tests.discord.test_discord_e2e import PNG


def budgets(clock: Clock, **kwargs) -> tuple[Pacers, Delivery]:
    pacers = Pacers(**({"global_limit": 4, "global_period": 1.0, "channel_limit": 5, "channel_period": 5.0}
                       | kwargs), clock=clock)
    return pacers, Delivery(pacers, clock=clock)


async def answers_take(clock: Clock, delivery: Delivery, seconds: float) -> None:
    """One answer from its first text to its end, so the delivery knows how long answers take."""
    past = delivery.open(99)
    assert past.may_start()
    (await past.first_slots()).give_back()
    clock.now += seconds
    past.close()
    clock.now += 10.0


async def a_burst(clock: Clock, pacers: Pacers, delivery: Delivery, count: int, *, turn_after: float = 0.0):
    """`count` answers say their first words at once: the budget's 4 slots go to the first four, the rest wait for
    their turns, which come `turn_after` seconds later."""
    plans = [delivery.open(channel) for channel in range(count)]
    ready: list[int] = []
    for i, plan in enumerate(plans):
        plan.on_ready = lambda i=i: ready.append(i)
    shown = [plan.may_start() for plan in plans]
    assert shown == [True] * 4 + [False] * (count - 4)
    clock.now += turn_after
    for plan in plans[:4]:
        (await plan.first_slots()).give_back()     # (given back: the four slots are the next in line's at once)
    await turns()
    return plans, ready


async def test_an_answer_whose_turn_comes_just_before_its_end_keeps_the_slot_and_goes_out_whole_on_it():
    clock = Clock()
    pacers, delivery = budgets(clock)
    await answers_take(clock, delivery, 1.0)
    plans, ready = await a_burst(clock, pacers, delivery, 10, turn_after=0.7)
    # Answers 4..7 got their turns 0.3 s before their expected end, with 6 answers still to show: two windows
    # of 4 slots, 2 of the last window to spare, and at most half of those are kept -> answer 4 keeps its slot.
    assert ready == [5, 6, 7]
    assert not plans[4].may_start()               # more text comes: it still waits for its end on the slot
    assert pacers.global_.free_now() == 0         # the slot is its own, not free for anyone else
    plans[4].end()
    slots = await plans[4].first_slots()          # its whole text goes out on the slot it kept
    assert slots is not None and not plans[4].streaming
    slots.release()
    plans[4].close()
    assert (delivery.kept, delivery.held, delivery.keeping) == (1, 1, 0)


async def test_no_slot_is_kept_when_the_answers_waiting_fit_in_the_window():
    clock = Clock()
    pacers, delivery = budgets(clock)
    await answers_take(clock, delivery, 1.0)
    plans, ready = await a_burst(clock, pacers, delivery, 5, turn_after=0.7)
    assert ready == [4]                           # 1 to show and 4 slots: keeping one would only delay it
    assert delivery.kept == 0


async def test_an_answer_of_unknown_length_shows_its_beginning_when_its_turn_comes():
    clock = Clock()
    pacers, delivery = budgets(clock)
    plans, ready = await a_burst(clock, pacers, delivery, 10, turn_after=0.7)
    assert ready == [4, 5, 6, 7]                  # nothing known yet about how long answers take
    assert delivery.kept == 0


async def test_an_answer_far_from_its_end_shows_its_beginning_when_its_turn_comes():
    clock = Clock()
    pacers, delivery = budgets(clock)
    await answers_take(clock, delivery, 1.0)
    plans, ready = await a_burst(clock, pacers, delivery, 10, turn_after=0.1)
    assert ready == [4, 5, 6, 7]                  # 0.9 s to go: not worth a slot kept waiting
    assert delivery.kept == 0


async def test_a_kept_answer_whose_model_starts_a_tool_shows_what_it_has_at_once_on_its_slot():
    clock = Clock()
    pacers, delivery = budgets(clock)
    await answers_take(clock, delivery, 1.0)
    plans, ready = await a_burst(clock, pacers, delivery, 10, turn_after=0.7)
    tool = False
    plans[4].busy = lambda: tool
    assert not plans[4].may_start()               # kept for its end
    tool = True                                   # the model calls a tool: its end is anyone's guess now
    assert plans[4].may_start()                   # the kept slot shows its beginning and the tool's status now
    slots = await plans[4].first_slots()
    assert slots is not None and plans[4].streaming
    slots.release()
    plans[4].close()
    assert delivery.keeping == 0


async def test_a_kept_answer_that_does_not_end_within_a_window_shows_what_it_has():
    clock = Clock()
    pacers, delivery = budgets(clock, global_period=0.02)   # a short window: the wait below is a real one
    await answers_take(clock, delivery, 0.02)
    plans, ready = await a_burst(clock, pacers, delivery, 10, turn_after=0.014)
    assert ready == [5, 6, 7] and delivery.keeping == 1
    while 4 not in ready:                         # a window later it still writes: its turn shows what it has
        await asyncio.sleep(0.01)
    assert plans[4].may_start() and delivery.keeping == 0
    (await plans[4].first_slots()).release()


async def test_a_kept_answer_counts_once_when_a_streaming_answer_asks_for_a_progress_edit():
    clock = Clock()
    # A window of 10 s (the keep timer is a real one: nothing here waits for it).
    pacers, delivery = budgets(clock, global_period=10.0)
    await answers_take(clock, delivery, 10.0)           # answers take 10 s; the clock is at 20 s now
    early = [delivery.open(channel) for channel in range(4)]
    assert all(plan.may_start() for plan in early)      # four answers stream from 20 s on, holding the 4 slots
    clock.now += 5.0
    late = [delivery.open(channel) for channel in range(4, 8)]
    for plan in late:
        plan.on_ready = lambda: None
    assert not any(plan.may_start() for plan in late)   # four more say their first words at 25 s and queue
    delivery.open(8), delivery.open(9)                  # two more asked their model, wait for its first word
    clock.now += 7.0
    for plan in early:
        (await plan.first_slots()).give_back()          # 32 s: the four slots go to the four waiting
    await turns()
    kept = late[0]                                      # 3 s before its expected end, 6 not showing: it keeps
    assert delivery.keeping == 1 and not kept.may_start()
    for plan in late[1:]:
        assert plan.may_start()
        (await plan.first_slots()).release()
    clock.now += 3.0
    for plan in late[1:]:
        plan.close()                                    # they end at 35 s, 10 s after their first words
    clock.now += 7.5                                    # 42.5 s: their writes have left the window
    # Three of the four slots are free. The kept answer needs none of them (it holds its own for its whole text),
    # the two answers not writing yet need one each: a progress edit of an early answer takes the third.
    assert pacers.global_.free_now() == 3
    assert delivery.room(0)
    kept.end()
    (await kept.first_slots()).release()
    kept.close()
    assert (delivery.kept, delivery.held, delivery.keeping, delivery.holding) == (1, 1, 0, 0)


async def test_answers_that_start_showing_no_longer_count_as_holding_slots_for_the_ones_still_waiting():
    # Four answers were given their first message's slots and start to show (their first write is on its way);
    # four more do not show yet: those four still need first-message slots, and a progress edit or a typing
    # request must not take them.
    clock = Clock()
    pacers, delivery = budgets(clock, global_limit=4, global_period=1.0)
    showing = [delivery.open(channel) for channel in range(4)]
    waiting = [delivery.open(channel) for channel in range(4, 8)]
    assert all(plan.may_start() for plan in showing)
    assert (delivery.unshown, delivery._needing_slots()) == (4, 4)
    assert not delivery.room(0) and delivery.spare() == 0
    for plan in showing:
        (await plan.first_slots()).release()
    assert (delivery.unshown, delivery.holding, delivery._needing_slots()) == (4, 0, 4)
    for plan in showing + waiting:
        plan.close()


# ---- end to end: what the channels show ------------------------------------------------------------------


async def test_through_the_stand_in_the_answer_that_kept_its_slot_shows_once_whole_while_later_ones_stream(tmp_path):
    clock = Clock()
    # The stand-in's own limits stay Discord's: the bot's budget of 3 per second runs on `clock`, which moves
    # only when told, so the stand-in's real-time windows are not what is tested here.
    discord = FakeDiscord(channel_limit=5, channel_period=WINDOW)
    await discord.start()
    service = StreamingService()
    names = tuple(f"room-{i}" for i in range(8))
    try:
        discord.guild = discord.add_guild("Team", names)
        alice = discord.add_user("alice")
        rooms = [discord.channel_id(discord.guild, name) for name in names]
        pacers = Pacers(channel_limit=5, channel_period=WINDOW, global_limit=3, global_period=1.0, clock=clock)
        adapter = make_adapter(discord, service, tmp_path, pacers=pacers)
        await adapter.start()
        try:
            clock.now += 10.0                                   # start-up's requests have left the window
            await discord.user_message(rooms[0], alice, "q0", mention_bot=True)
            warm = await service.stream_for("q0")
            await warm.text("Warm-up")
            await discord.wait_for(lambda: discord.messages_in(rooms[0], by_bot=True))
            clock.now += 1.4                                    # answers take 1.4 s from first words to end
            await warm.close()
            await discord.wait_for(lambda: discord.bot_text(rooms[0]) == "Warm-up")
            clock.now += 10.0

            for i in range(1, 8):
                await discord.user_message(rooms[i], alice, f"q{i}", mention_bot=True)
            streams = {i: await service.stream_for(f"q{i}") for i in range(1, 8)}
            for i, stream in streams.items():
                await stream.text(f"Answer {i} begins")
            await discord.wait_for(lambda: all(discord.messages_in(r, by_bot=True) for r in rooms[1:4]))
            clock.now += 1.1            # the window passes 0.3 s before answers 4..7 are expected to end
            # 4, 5 and 6 get their turns (in that order); 4 waits on its slot for its end, 5 and 6 stream.
            await discord.wait_for(lambda: discord.messages_in(rooms[5], by_bot=True)
                                   and discord.messages_in(rooms[6], by_bot=True))
            assert discord.messages_in(rooms[4], by_bot=True) == []
            await streams[4].text(" and ends.")
            await streams[4].close()
            whole = await discord.wait_for(lambda: discord.messages_in(rooms[4], by_bot=True))
            assert [m.history for m in whole] == [["Answer 4 begins and ends."]]     # one write, never edited
            for i in (1, 2, 3, 5, 6, 7):
                clock.now += 2.0                                # (a window passes before each: room for it)
                await streams[i].text(" and ends.")
                await streams[i].close()
            for i in (1, 2, 3, 5, 6):
                await discord.wait_for(lambda i=i: discord.bot_text(rooms[i]) == f"Answer {i} begins and ends.")
                assert discord.messages_in(rooms[i], by_bot=True)[0].history[0] == f"Answer {i} begins{CURSOR}"
            await discord.wait_for(lambda: discord.bot_text(rooms[7]) == "Answer 7 begins and ends.")
            assert discord.rate_limited == []
        finally:
            for i in range(8):
                fut = service.stream_for(f"q{i}")
                if fut.done() and f"q{i}" not in service.closed:
                    clock.now += 2.0
                    await fut.result().close()
            await adapter.stop()
    finally:
        await discord.stop()


async def test_a_kept_answer_shows_what_it_has_at_once_when_one_of_its_files_is_being_posted():
    clock = Clock()
    pacers, delivery = budgets(clock)
    await answers_take(clock, delivery, 1.0)
    plans, ready = await a_burst(clock, pacers, delivery, 10, turn_after=0.7)
    plans[4].on_ready = lambda: ready.append(4)
    assert not plans[4].may_start()               # kept for its end
    plans[4].posting_file()                       # an upload begins: it may queue behind every first message
    assert ready == [5, 6, 7, 4] and delivery.keeping == 0
    assert plans[4].may_start()                   # the kept slot shows its beginning now
    (await plans[4].first_slots()).release()
    plans[4].close()


async def test_through_the_stand_ins_a_kept_answer_shows_its_text_while_the_code_interpreters_file_is_posted(
        tmp_path):
    """A code-interpreter answer keeps its slot for its end; then its file is fetched from the sandbox and posted,
    which may take longer than the answer had left (the upload queues behind every first message). Its text
    shows on the kept slot at once, with what it waits for, instead of the slot idling until a window is over."""
    clock = Clock()
    # The bot's budget runs on `clock`: a window of 50 s (so a slot kept for its end is kept for 50 real seconds,
    # longer than any wait below) and 3 requests; the stand-in keeps Discord's own limits.
    names = tuple(f"room-{i}" for i in range(8))
    pacers = {"channel_limit": 5, "channel_period": WINDOW, "global_limit": 3, "global_period": 50.0,
              "clock": clock}
    warm, chart, early, late = (asyncio.Event() for _ in range(4))
    script = {"warm up": ScriptedResponse(text="Warm-up answer.", deltas=2, hold=warm),
              "plot it": ScriptedResponse(text="Here is the chart.", deltas=2, hold=chart,
                                          code=CodeRun("df.plot()", file=GeneratedFile("chart.png", PNG))),
              **{f"q{i}": ScriptedResponse(text=f"Answer {i}.", deltas=2, hold=early) for i in (1, 2, 3)},
              **{f"q{i}": ScriptedResponse(text=f"Answer {i}.", deltas=2, hold=late, hold_after=0) for i in (5, 6, 7)}}
    ticker: list[asyncio.Task] = []
    try:
        async with world(tmp_path, channels=names, pacers=pacers, routes={"room-4": "math"}) as w:
            rooms = [w.channel(name) for name in names]
            w.openai.responder = lambda body: script[last_user_text(body)]
            budget = w.budgets.global_

            def tick(seconds: float) -> None:
                clock.now += seconds
                budget.set_limit(budget.limit)    # wake the budget's waiters (its own timer runs on real time)

            async def ticking() -> None:          # from here on, windows pass as fast as the loop turns
                while True:
                    tick(60.0)
                    await asyncio.sleep(0.01)

            def bot(room: int):
                return w.discord.messages_in(rooms[room], by_bot=True)

            try:
                tick(100.0)                                           # start-up's requests have left the window
                await w.discord.user_message(rooms[0], w.discord.alice, "warm up", mention_bot=True)
                await w.discord.wait_for(lambda: bot(0))
                tick(60.0)                                            # answers take 60 s from first words to end
                warm.set()
                await w.final_answer(rooms[0], "Warm-up answer.")
                tick(100.0)

                for i in (1, 2, 3):                                   # three answers take the budget's 3 slots
                    await w.discord.user_message(rooms[i], w.discord.alice, f"q{i}", mention_bot=True)
                await w.discord.wait_for(lambda: all(bot(i) for i in (1, 2, 3)))
                await w.discord.user_message(rooms[4], w.discord.alice, "plot it", mention_bot=True)
                await w.discord.wait_for(lambda: budget.waiting == 1)   # the chart's answer queues for its first message
                for i in (5, 6, 7):                                   # three more ask, their model not writing yet
                    await w.discord.user_message(rooms[i], w.discord.alice, f"q{i}", mention_bot=True)
                await w.discord.wait_for(lambda: len(w.openai.response_requests()) == 8)
                tick(50.5)  # the chart's turn, 9.5 s before its expected end, 4 answers not showing: it keeps the slot
                late.set()  # the last three say their first words: two take the window's free slots, one waits
                await w.discord.wait_for(lambda: bot(5) and bot(6))   # the window is full now
                assert bot(4) == []

                chart.set()  # the chart's text ends; its file is fetched from the sandbox and posted
                shown = await w.discord.wait_for(lambda: bot(4))
                # Its text shows at once on the slot it kept, saying what it waits for; the file waits for the budget.
                assert shown[0].history[0].startswith("Here is the chart.")
                assert "Posting chart.png" in shown[0].history[0] and shown[0].attachments == []

                ticker.append(asyncio.get_running_loop().create_task(ticking()))
                early.set()
                for i in (1, 2, 3, 5, 6, 7):
                    await w.final_answer(rooms[i], f"Answer {i}.")
                await w.discord.wait_for(lambda: [m.content for m in bot(4) if not m.attachments] == ["Here is the chart."])
                assert [m.files() for m in bot(4) if m.attachments] == [{"chart.png": PNG}]
                assert w.discord.rate_limited == []
            finally:                              # whatever happened: every answer can end, the bot can stop
                for hold in (warm, chart, early, late):
                    hold.set()
                if not ticker:
                    ticker.append(asyncio.get_running_loop().create_task(ticking()))
    finally:
        # (after a failure, answers cut off by the stop may still be writing their notice: windows keep passing)
        rest = asyncio.all_tasks() - {asyncio.current_task(), *ticker}
        if rest and ticker:
            await asyncio.wait(rest, timeout=10)
        for task in ticker:
            task.cancel()
