"""Slack's thinking status ("is thinking…") waits for a slow answer: it goes out only when the first words have not
come `status_delay` seconds after the message, so it never stands in front of the request to the model, and an
answer that starts at once is its own sign of life (one Web API call less).

Real wire: slack_bolt/slack_sdk against the stand-in Slack; the model is a scripted backend (our own port's fake).
"""
from __future__ import annotations

import asyncio

from core.model import Completed, OutboundFile, TextDelta, Usage
from bots.slack.target import StreamSettings
from bots.standins.slack_server import FakeSlack
from tests.fakes.slack_harness import answered, running_bot
from tests.support.ports import PausingBackend, ScriptedBackend


class GatedBackend(ScriptedBackend):
    """The model says nothing until the test opens the gate."""

    def __init__(self, *scripts) -> None:
        super().__init__(*scripts)
        self.opened = asyncio.Event()

    async def run(self, turn):
        await self.opened.wait()
        async for event in super().run(turn):
            yield event


def answer(*parts: str) -> list:
    return [*(TextDelta(p) for p in parts), Completed(Usage(10, 0, 5))]


async def test_an_answer_that_starts_at_once_costs_no_thinking_status(tmp_path):
    backend = ScriptedBackend(answer("Right ", "away."))
    stream = StreamSettings(flush_interval=0.05, status_delay=1.0)   # the first words come long before
    async with running_bot(tmp_path / "db", backend, stream=stream) as bot:
        ts = await bot.slack.user_says("C1", "<@UBOT> quick one")
        await bot.slack.wait_for(answered(bot.slack, "C1", ts, "Right away."), what="the answer")
        await bot.adapter.wait_idle()
        await asyncio.sleep(1.5)   # past the delay: a status still due would have gone out by now
        assert bot.slack.calls_to("assistant.threads.setStatus") == []
        assert bot.slack.thread_status.get(("C1", ts), "") == ""


async def test_a_slow_answer_shows_thinking_before_its_first_words_and_slack_clears_it(tmp_path):
    backend = GatedBackend(answer("After ", "a while."))
    stream = StreamSettings(flush_interval=0.05, status_delay=0.05)
    async with running_bot(tmp_path / "db", backend, stream=stream) as bot:
        slack = bot.slack
        ts = await slack.user_says("C1", "<@UBOT> a hard one")
        try:   # the model has not said a word yet: the reader sees that the bot is on it
            await slack.wait_for(lambda: slack.thread_status.get(("C1", ts)) == "is thinking…", what="the status")
            assert slack.bot_messages("C1", ts) == []
        finally:
            backend.opened.set()
        await slack.wait_for(answered(slack, "C1", ts, "After a while."), what="the answer")
        await bot.adapter.wait_idle()
        assert [s["status"] for s in slack.statuses] == ["is thinking…"]       # once, never after the answer
        methods = [m for m, _ in slack.calls]
        assert methods.index("assistant.threads.setStatus") < methods.index("chat.startStream")
        assert slack.thread_status[("C1", ts)] == ""                            # cleared by the reply itself


class SlowStatusSlack(FakeSlack):
    """The stand-in Slack, answering "is thinking…" only when the test says (a slow Web API call)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.status_arrived = asyncio.Event()
        self.status_answers = asyncio.Event()

    async def _m_assistant_threads_setStatus(self, a: dict) -> dict:
        if a.get("status"):
            self.status_arrived.set()
            await self.status_answers.wait()
        return await super()._m_assistant_threads_setStatus(a)


async def test_an_answer_does_not_wait_for_a_slow_status_call_and_the_late_status_is_taken_back(tmp_path):
    backend = GatedBackend(answer("Here it ", "is."))
    stream = StreamSettings(flush_interval=0.05, status_delay=0.05)
    async with SlowStatusSlack() as slack:
        async with running_bot(tmp_path / "db", backend, slack=slack, stream=stream) as bot:
            ts = await slack.user_says("C1", "<@UBOT> a hard one")
            try:
                await slack.wait_for(slack.status_arrived.is_set, what="the status call")
                backend.opened.set()    # the first words come while "is thinking…" is still on its way
                await slack.wait_for(answered(slack, "C1", ts, "Here it is."), what="the answer, not held up")
            finally:
                slack.status_answers.set()
            # the status landed after the answer began: the bot takes it back
            await slack.wait_for(lambda: [s["status"] for s in slack.statuses] == ["is thinking…", ""],
                                 what="the late status cleared")
            await bot.adapter.wait_idle()
        assert slack.thread_status[("C1", ts)] == ""


async def test_a_file_posted_before_the_first_words_is_not_followed_by_a_thinking_status(tmp_path):
    later = asyncio.Event()
    backend = PausingBackend([OutboundFile("plot.png", b"\x89PNG..."), later, TextDelta("Here is the plot."),
                              Completed(Usage(10, 0, 5))])
    stream = StreamSettings(flush_interval=0.05, status_delay=1.0)
    async with running_bot(tmp_path / "db", backend, stream=stream) as bot:
        slack = bot.slack
        ts = await slack.user_says("C1", "<@UBOT> plot it")
        await slack.wait_for(lambda: slack.calls_to("files.completeUploadExternal"), what="the file")
        await asyncio.sleep(1.5)   # past the delay, still no words: the file was the sign of life
        later.set()
        await slack.wait_for(lambda: "Here is the plot." in slack.thread_text("C1", ts), what="the answer")
        await bot.adapter.wait_idle()
        assert slack.calls_to("assistant.threads.setStatus") == []


async def test_a_turn_cut_off_before_the_answer_leaves_no_thinking_status_behind(tmp_path):
    backend = HangingSetup()
    stream = StreamSettings(flush_interval=0.05, status_delay=1.0)
    async with running_bot(tmp_path / "db", backend, stream=stream) as bot:
        slack = bot.slack
        await slack.user_says("C1", "<@UBOT> hello")
        await slack.wait_for(backend.entered.is_set, what="the turn's set-up")
        await bot.service.shutdown(grace=0)   # a restart cuts the turn off before the model was asked
        await asyncio.sleep(1.5)               # past the delay
        assert slack.calls_to("assistant.threads.setStatus") == []


class HangingSetup(ScriptedBackend):
    """The conversation is never made: the turn hangs in its set-up."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()

    async def create_conversation(self, metadata):
        self.entered.set()
        await asyncio.Event().wait()


async def test_no_thinking_status_without_room_for_taking_it_back(tmp_path):
    # A delayed status may land after its answer began and then needs a second call to take it back: with only one
    # setStatus left in this minute (other answers' statuses took the rest) the status is not sent at all, rather
    # than shown with its clear queued behind the minute.
    backend = GatedBackend(answer("Done."))
    stream = StreamSettings(flush_interval=0.05, status_delay=0.05)
    async with running_bot(tmp_path / "db", backend, stream=stream) as bot:
        slack = bot.slack
        bucket = bot.adapter.budget.bucket_for("assistant.threads.setStatus")
        held = 0
        while bucket.room() > 1:
            await bucket.acquire()
            held += 1
        try:
            ts = await slack.user_says("C1", "<@UBOT> slow one")
            await asyncio.sleep(0.5)   # past the delay: the status was due
        finally:
            backend.opened.set()
        await slack.wait_for(answered(slack, "C1", ts, "Done."), what="the answer")
        await bot.adapter.wait_idle()
        for _ in range(held):
            bucket.done()
        assert slack.calls_to("assistant.threads.setStatus") == []
