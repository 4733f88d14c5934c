"""Slack under load: many answers at once share the workspace's per-method budgets (issue 7, issue 3).

chat.startStream/stopStream are Tier 2 (~20/min per workspace) and chat.update Tier 3 (~50/min for every
reply in the workspace), so 50 answers at once cannot all stream, nor all be posted and edited, inside
one minute. Each reply picks its transport from what the budgets have room for: the first ones stream,
the next are posted and edited, the rest are posted whole when ready (chat.postMessage is limited per
channel). These tests run the real slack_bolt/slack_sdk against the stand-in Slack, which enforces the
tiers strictly (429 + Retry-After), with a minute longer than the tests: an answer that waited for a
window to roll over would not arrive before the test gives up. The model is a scripted backend (a fake of
our own port).
"""
from __future__ import annotations

import asyncio

from core.model import BackendError, Completed, TextDelta, ToolUpdate, Usage
from core.reply.splitting import unsplit
from bots.slack.ratelimit import SlidingWindow
from bots.slack.target import StreamSettings
from tests.fakes.slack_harness import answered, make_config, running_bot
from bots.standins.slack_server import FakeSlack
from tests.support.ports import PausingBackend, ScriptedBackend

MINUTE = 30.0  # the stand-in's and the bot's "minute": longer than any test here waits
FAST = StreamSettings(flush_interval=0.05, status_delay=0)   # the thinking status at once (not only when slow)


def answer_text(i: int) -> str:
    return f"Answer {i}: " + " ".join(f"word{i}-{k}" for k in range(40)) + "."


def script(text: str, step: int = 50) -> list:
    return [*(TextDelta(text[k:k + step]) for k in range(0, len(text), step)), Completed(Usage(10, 0, 5))]


def tier_calls(slack: FakeSlack) -> dict[str, int]:
    return {m: len(slack.calls_to(m)) for m in ("chat.startStream", "chat.stopStream", "chat.update",
                                                 "chat.appendStream", "chat.postMessage",
                                                 "assistant.threads.setStatus")}


# ---- a burst -------------------------------------------------------------------------------------------


async def test_fifty_simultaneous_mentions_all_arrive_whole_with_zero_429s_inside_one_minute(tmp_path):
    n = 50
    texts = [answer_text(i) for i in range(n)]
    async with FakeSlack(rate_minute=MINUTE, retry_after=1) as slack:
        backend = ScriptedBackend(*(script(t) for t in texts))
        async with running_bot(tmp_path / "db", backend, slack=slack, rate_minute=MINUTE, stream=FAST) as bot:
            roots = await asyncio.gather(*(slack.user_says(f"C{i:02d}", f"<@UBOT> question {i}",
                                                           user=("U1", "U2")[i % 2]) for i in range(n)))
            await slack.wait_for(lambda: all(answered(slack, f"C{i:02d}", ts)()
                                             for i, ts in enumerate(roots)), 25, "every answer")
            await bot.adapter.wait_idle()
        shown = sorted(slack.thread_text(f"C{i:02d}", ts) for i, ts in enumerate(roots))
        assert shown == sorted(texts)                           # nothing lost, nothing doubled
        assert slack.rate_limited == []                         # zero 429s
        calls = tier_calls(slack)
        # Naively each answer costs 2 Tier 2 calls (start + stop) or 2 Tier 3 calls (post's edits): here
        # the minute's budgets are the ceiling, spread over all answers.
        assert calls["chat.startStream"] <= 20 and calls["chat.stopStream"] <= 20
        assert calls["chat.update"] <= 50
        assert (calls["chat.startStream"] + calls["chat.stopStream"]) / n <= 0.8
        assert calls["chat.update"] / n <= 1.0
        assert calls["chat.startStream"] >= 1                   # the first ones still stream
        assert calls["assistant.threads.setStatus"] <= n       # the thinking status at most once per answer
        # the answers that neither streamed nor were edited were posted whole, as final messages
        streamed = {c["channel"] for c in slack.calls_to("chat.startStream")}
        edited = {c["channel"] for c in slack.calls_to("chat.update")}
        posted = [(f"C{i:02d}", ts) for i, ts in enumerate(roots) if f"C{i:02d}" not in streamed | edited]
        assert posted, "with the budgets spoken for, the rest should have been posted when ready"
        assert all(m.history == [m.text] for c, ts in posted for m in slack.bot_messages(c, ts))


async def test_a_single_answer_still_streams_natively_with_one_thinking_status(tmp_path):
    gate = asyncio.Event()
    text = answer_text(7)
    backend = PausingBackend([TextDelta(text[:30]), gate, *script(text[30:])])
    async with FakeSlack(rate_minute=MINUTE, retry_after=1) as slack:
        async with running_bot(tmp_path / "db", backend, slack=slack, rate_minute=MINUTE, stream=FAST) as bot:
            ts = await slack.user_says("C1", "<@UBOT> hi")
            # the reader sees the first words while the model is still writing
            await slack.wait_for(lambda: slack.thread_text("C1", ts) == text[:30], what="first words")
            [reply] = slack.bot_messages("C1", ts)
            assert reply.streaming
            gate.set()
            await slack.wait_for(answered(slack, "C1", ts, text), what="the answer")
            await bot.adapter.wait_idle()
        calls = tier_calls(slack)
        assert calls["chat.startStream"] == 1 and calls["chat.stopStream"] == 1
        assert calls["chat.postMessage"] == 0 and calls["chat.update"] == 0
        assert [s["status"] for s in slack.statuses] == ["is thinking…"]
        assert slack.thread_status[("C1", ts)] == ""           # cleared by the reply itself
        assert slack.rate_limited == []


# ---- post when ready -----------------------------------------------------------------------------------


def budgets_spoken_for(bot, *methods_and_counts: tuple[str, int]):
    """Other replies of this workspace have reserved these calls (as a burst of answers would)."""
    reservation = bot.adapter.budget.reservation()
    for method, count in methods_and_counts:
        reservation.add(method, count)
    return reservation


def long_answer_with_code(n: int) -> str:
    parts, i = [], 0
    while sum(map(len, parts)) < n:
        parts.append(f"Step {i}: what happens next, with *emphasis*.\n\n"
                     f"```python\nfor x in range({i}):\n    print(x * {i})\n```\n\n")
        i += 1
    return "".join(parts)  # whole steps: the model's own code blocks are closed


async def test_with_no_stream_or_edit_budget_a_long_answer_is_posted_in_parts_with_balanced_code(tmp_path):
    text = long_answer_with_code(5000)
    backend = ScriptedBackend(script(text, step=37))
    settings = StreamSettings(flush_interval=0.05, post_max_chars=1200)
    async with FakeSlack(rate_minute=MINUTE, retry_after=1) as slack:
        async with running_bot(tmp_path / "db", backend, slack=slack, rate_minute=MINUTE, stream=settings) as bot:
            held = budgets_spoken_for(bot, ("chat.startStream", 20), ("chat.update", 50))
            ts = await slack.user_says("C1", "<@UBOT> explain loops")
            await slack.wait_for(lambda: slack.bot_messages("C1", ts) and unsplit(
                [m.text for m in slack.bot_messages("C1", ts)]) == text, 10, "the whole answer")
            await bot.adapter.wait_idle()
            held.release()
        msgs = slack.bot_messages("C1", ts)
        assert len(msgs) >= 4 and all(len(m.text) <= 1200 for m in msgs)
        assert all(m.text.count("```") % 2 == 0 for m in msgs)   # every message renders its code whole
        assert all(m.history == [m.text] for m in msgs)          # posted final, never edited
        calls = tier_calls(slack)
        assert calls["chat.startStream"] == calls["chat.update"] == 0
        assert slack.rate_limited == []


async def test_a_slow_answer_shows_its_finished_paragraphs_before_the_rest(tmp_path):
    gate = asyncio.Event()
    backend = PausingBackend([TextDelta("Risotto needs arborio rice.\n\n"), TextDelta("Toast it first, then"),
                              gate, TextDelta(" add stock slowly."), Completed(Usage(1, 0, 1))])
    settings = StreamSettings(flush_interval=0.05, first_post_after=0.05)
    async with FakeSlack(rate_minute=MINUTE, retry_after=1) as slack:
        async with running_bot(tmp_path / "db", backend, slack=slack, rate_minute=MINUTE, stream=settings) as bot:
            held = budgets_spoken_for(bot, ("chat.startStream", 20), ("chat.update", 50))
            ts = await slack.user_says("C1", "<@UBOT> risotto?")
            try:
                # the model is still writing: the finished paragraph is there, the unfinished sentence is not
                await slack.wait_for(lambda: slack.thread_text("C1", ts) == "Risotto needs arborio rice.\n\n",
                                     5, "the first paragraph")
            finally:
                gate.set()
            full = "Risotto needs arborio rice.\n\nToast it first, then add stock slowly."
            await slack.wait_for(answered(slack, "C1", ts, full), what="the rest")
            await bot.adapter.wait_idle()
            held.release()
        assert [m.text for m in slack.bot_messages("C1", ts)] == ["Risotto needs arborio rice.\n\n",
                                                                  "Toast it first, then add stock slowly."]
        assert tier_calls(slack)["chat.update"] == 0


async def test_an_answer_posted_when_ready_counts_its_first_post_from_the_first_words_not_the_mention(tmp_path):
    # The model takes longer than `first_post_after` (2 s) to say its first word, then writes the answer in a
    # moment: the reader sees the thinking status meanwhile and then the answer as ONE message, not its first
    # paragraph and the rest a moment later (the wait before the first word says nothing about its length).
    backend = PausingBackend([2.5, TextDelta("Risotto needs arborio rice.\n\n"), 0.1,
                              TextDelta("Toast it first, then add stock slowly."), Completed(Usage(1, 0, 1))])
    settings = StreamSettings(flush_interval=0.05, status_delay=0.05)   # first_post_after: the default 2 s
    full = "Risotto needs arborio rice.\n\nToast it first, then add stock slowly."
    async with FakeSlack(rate_minute=MINUTE, retry_after=1) as slack:
        async with running_bot(tmp_path / "db", backend, slack=slack, rate_minute=MINUTE, stream=settings) as bot:
            held = budgets_spoken_for(bot, ("chat.startStream", 20), ("chat.update", 50))
            ts = await slack.user_says("C1", "<@UBOT> risotto?")
            await slack.wait_for(lambda: slack.thread_status.get(("C1", ts)) == "is thinking…", what="the status")
            assert slack.bot_messages("C1", ts) == []
            await slack.wait_for(answered(slack, "C1", ts, full), what="the answer")
            await bot.adapter.wait_idle()
            held.release()
        assert [m.history for m in slack.bot_messages("C1", ts)] == [[full]]   # one message, never edited
        assert slack.thread_status.get(("C1", ts), "") == ""                  # the status went with the reply
        assert tier_calls(slack)["chat.update"] == 0 and slack.rate_limited == []


async def test_a_quick_answer_posted_when_ready_is_one_message_and_tool_progress_costs_nothing(tmp_path):
    backend = ScriptedBackend([ToolUpdate("ci_1", "code_interpreter", "running", "Running code", "print(6*7)"),
                               ToolUpdate("ci_1", "code_interpreter", "done", "Running code"),
                               TextDelta("It is "), TextDelta("42."), Completed(Usage(1, 0, 1))])
    async with FakeSlack(rate_minute=MINUTE, retry_after=1) as slack:
        async with running_bot(tmp_path / "db", backend, slack=slack, rate_minute=MINUTE, stream=FAST) as bot:
            held = budgets_spoken_for(bot, ("chat.startStream", 20), ("chat.update", 50))
            ts = await slack.user_says("C1", "<@UBOT> 6*7?")
            await slack.wait_for(answered(slack, "C1", ts, "It is 42."), what="the answer")
            await bot.adapter.wait_idle()
            held.release()
        [reply] = slack.bot_messages("C1", ts)
        assert reply.history == ["It is 42."]
        assert tier_calls(slack)["chat.postMessage"] == 1


async def test_a_model_error_when_posting_when_ready_keeps_the_text_and_adds_one_notice(tmp_path):
    backend = ScriptedBackend([TextDelta("Let me see. "), BackendError("OpenAI had a server error (500)")])
    async with FakeSlack(rate_minute=MINUTE, retry_after=1) as slack:
        async with running_bot(tmp_path / "db", backend, slack=slack, rate_minute=MINUTE, stream=FAST) as bot:
            held = budgets_spoken_for(bot, ("chat.startStream", 20), ("chat.update", 50))
            ts = await slack.user_says("C1", "<@UBOT> hi")
            await slack.wait_for(answered(slack, "C1", ts, "Let me see. \n\n⚠️ OpenAI had a server error (500)"))
            await bot.adapter.wait_idle()
            held.release()


async def test_the_thinking_status_is_skipped_when_its_budget_is_busy(tmp_path):
    async with FakeSlack(rate_minute=MINUTE, retry_after=1) as slack:
        async with running_bot(tmp_path / "db", ScriptedBackend(), slack=slack, rate_minute=MINUTE,
                               stream=FAST) as bot:
            held = budgets_spoken_for(bot, ("assistant.threads.setStatus", 100))
            ts = await slack.user_says("C1", "<@UBOT> hi")
            await slack.wait_for(answered(slack, "C1", ts, "You said: hi"), what="the answer")
            await bot.adapter.wait_idle()
            held.release()
        assert slack.statuses == []          # cosmetic: not worth waiting a minute for
        assert slack.rate_limited == []


async def test_a_dm_without_edit_budget_is_posted_when_ready(tmp_path):
    async with FakeSlack(rate_minute=MINUTE, retry_after=1) as slack:
        backend = ScriptedBackend(script(answer_text(3), step=9))
        async with running_bot(tmp_path / "db", backend, slack=slack, rate_minute=MINUTE, stream=FAST,
                               config=make_config()) as bot:
            held = budgets_spoken_for(bot, ("chat.update", 50))
            await slack.user_says("D1", "hello")
            await slack.wait_for(lambda: [m.text for m in slack.bot_messages("D1")] == [answer_text(3)])
            await bot.adapter.wait_idle()
            held.release()
        assert tier_calls(slack)["chat.update"] == 0


# ---- the budget's view of "now" ------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_window_counts_calls_made_queued_and_reserved():
    clock = Clock()
    window = SlidingWindow(3, 60.0, clock)
    assert window.delay() == 0.0
    await window.acquire()
    window.done()                           # a call counts from when its response came back
    clock.now += 10
    await window.acquire()
    window.done()
    assert window.delay() == 0.0            # one slot left
    window.reserve()
    assert window.delay() == 60.0 - 10      # the reserved call takes it: wait for the oldest to expire
    window.release()
    assert window.delay() == 0.0 and window.delay(2) == 50.0


async def test_a_stream_that_opens_with_a_tool_clears_the_thinking_status_itself(tmp_path):
    # Slack clears the status when the app replies, but not reliably for a stream whose first chunk is
    # only a task update: that one case costs a second call.
    gate = asyncio.Event()
    backend = PausingBackend([ToolUpdate("ci_1", "code_interpreter", "running", "Running code", "print(6*7)"),
                              gate, ToolUpdate("ci_1", "code_interpreter", "done", "Running code"),
                              TextDelta("It is 42."), Completed(Usage(1, 0, 1))])
    async with running_bot(tmp_path / "db", backend, stream=FAST) as bot:
        slack = bot.slack
        ts = await slack.user_says("C1", "<@UBOT> 6*7?")
        try:
            await slack.wait_for(lambda: slack.bot_messages("C1", ts), what="the task update")
            await slack.wait_for(lambda: slack.thread_status.get(("C1", ts)) == "", what="status cleared")
        finally:
            gate.set()
        await slack.wait_for(answered(slack, "C1", ts, "It is 42."), what="the answer")
        await bot.adapter.wait_idle()
        assert [s["status"] for s in slack.statuses] == ["is thinking…", ""]
