"""Controls on answers in Slack: Stop while an answer is written, 👍 / 👎 (Slack's feedback buttons) and Retry once
it has ended — clicked through real block_actions payloads into the real bolt app, answered by the real OpenAI
backend against the stand-in OpenAI (which sees whether its stream was closed early)."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses

from openai import AsyncOpenAI

from core.backends.openai.backend import OpenAIBackend
from core.config.schema import Config
from core.tools.registry import ToolRegistry
from bots.standins.openai_server import FakeOpenAI, ScriptedResponse
from tests.fakes.slack_harness import running_bot
from bots.standins.slack_server import FakeSlack

LONG = "".join(f"word{i} " for i in range(300))   # ~15 s at 8 characters per 0.2 s: ends only if stopped


def config(tmp_path, mode: str = "socket") -> Config:
    return Config.model_validate({
        "default_assistant": "food", "base_dir": tmp_path, "admins": ["U3"],
        "assistants": {"food": {"name": "food", "model": "gpt-test"}}, "slack": {"mode": mode}})


@contextlib.asynccontextmanager
async def world(tmp_path, *, mode: str = "socket", slack: FakeSlack | None = None, openai: FakeOpenAI | None = None):
    async with contextlib.AsyncExitStack() as stack:
        if openai is None:
            openai = await stack.enter_async_context(FakeOpenAI())
        client = AsyncOpenAI(base_url=openai.base_url, api_key="sk-test", max_retries=0)
        stack.push_async_callback(client.close)
        backend = OpenAIBackend(client, ToolRegistry.from_config(config(tmp_path)), max_retries=0)
        bot = await stack.enter_async_context(
            running_bot(tmp_path / "tb.db", backend, config=config(tmp_path, mode), mode=mode, slack=slack))
        yield bot, openai


def notes_for(slack: FakeSlack, user: str) -> list[str]:
    return [e["text"] for e in slack.ephemerals if e["user"] == user]


async def note(slack: FakeSlack, user: str, text: str) -> None:
    await slack.wait_for(lambda: any(text in t for t in notes_for(slack, user)), 10, f"{user} is told {text!r}")


def labels(message) -> list[str]:
    """The controls under a message, as the reader sees them (👍 / 👎 first: their block comes first)."""
    return [b["text"]["text"] for b in message.feedback_buttons() + message.buttons()]


async def test_the_asker_stops_an_answer_in_a_dm_and_nothing_more_arrives(tmp_path):
    async with world(tmp_path) as (bot, openai):
        slack = bot.slack
        openai.script(ScriptedResponse(text=LONG, delta_size=8, delay=0.2))
        await slack.user_says("D1", "Tell me everything about bread.", user="U1")
        reply = await slack.wait_for(lambda: next((m for m in slack.bot_messages("D1") if "word2" in m.text), None),
                                     20, "the answer being written")
        assert labels(reply) == ["Stop"]
        stale = dataclasses.replace(reply)      # a client that has not refreshed still shows Stop

        await slack.click(reply, "Stop", user="U2")                         # not the asker, not an admin
        await note(slack, "U2", "Only the person who asked or an admin can stop this answer.")
        assert "Stop" in labels(reply) and openai.stream_ends == []

        await slack.click(reply, "Stop", user="U1")
        await slack.wait_for(lambda: reply.text.endswith("⏹️ stopped"), 20, "the stopped note")
        await slack.wait_for(lambda: openai.stream_ends == ["closed early"], 10, "the model's stream closed")
        await bot.adapter.wait_idle()
        calls, shown = reply.api_calls, reply.text
        assert reply.text.startswith("word0 word1 word2 ") and "word299" not in reply.text
        # the text so far stays; Stop is gone, the rating and Retry are there
        assert labels(reply) == ["👍", "👎", "Retry"]

        await slack.click(stale, "Stop", user="U1")                         # a second (stale) click
        await note(slack, "U1", "This answer is not being written any more.")
        await asyncio.sleep(0.5)                                             # more than two model deltas
        assert (reply.api_calls, reply.text) == (calls, shown)              # no edit after the stop
        assert len(slack.bot_messages("D1")) == 1


async def test_anyone_rates_once_the_asker_retries_once_in_the_thread(tmp_path):
    async with world(tmp_path) as (bot, openai):
        slack = bot.slack
        openai.script(ScriptedResponse(text="Sourdough needs a starter."),
                      ScriptedResponse(text="Sourdough is bread raised by wild yeast."))
        thread = await slack.user_says("C1", "<@UBOT> what is sourdough?", user="U1")
        await slack.wait_for(lambda: slack.thread_text("C1", thread) == "Sourdough needs a starter.", 20, "answer")
        [answer] = slack.bot_messages("C1", thread)
        # a native stream: the controls came with the chat.stopStream call that ended it, no call of their own
        await slack.wait_for(lambda: labels(answer) == ["👍", "👎", "Retry"], 10, "controls")
        assert [c.get("blocks") is not None for c in slack.calls_to("chat.stopStream")] == [True]
        assert slack.calls_to("chat.update") == []

        await slack.click(answer, "👍", user="U2")
        await note(slack, "U2", "Thanks — you rated this answer 👍.")
        await slack.click(answer, "👎", user="U2")                          # a second click changes it
        await note(slack, "U2", "Changed your rating of this answer to 👎.")
        await slack.click(answer, "👍", user="U1")
        await note(slack, "U1", "Thanks — you rated this answer 👍.")
        rows = await bot.store.feedback_rows(0, 4e9)
        assert sorted((r.user, r.rating, r.assistant, r.model, r.asker, r.message_id) for r in rows) == [
            ("U1", 1, "food", "gpt-test", "U1", answer.ts), ("U2", -1, "food", "gpt-test", "U1", answer.ts)]

        await slack.click(answer, "Retry", user="U2")                       # rating is for anyone; retry is not
        await note(slack, "U2", "Only the person who asked or an admin can ask this again.")
        await asyncio.gather(slack.click(answer, "Retry", user="U1"), slack.click(answer, "Retry", user="U1"))
        await slack.wait_for(lambda: len(slack.bot_messages("C1", thread)) == 2, 20, "the second answer")
        await note(slack, "U1", "This question was asked again already.")   # the double click
        await bot.adapter.wait_idle()
        first, second = slack.bot_messages("C1", thread)
        assert first.text == "Sourdough needs a starter."                   # the old answer stays
        assert second.text == "Sourdough is bread raised by wild yeast."
        requests = openai.response_requests()
        assert len(requests) == 2 and openai.conversation_of(requests[0]) == openai.conversation_of(requests[1])
        assert requests[1]["input"] == requests[0]["input"]


async def test_ratings_outlive_a_restart_and_unknown_answers_are_told_so_in_http_mode(tmp_path):
    async with FakeSlack() as slack, FakeOpenAI() as openai:
        openai.script(ScriptedResponse(text="Rye is a grain."))
        async with world(tmp_path, slack=slack, openai=openai) as (bot, _):
            thread = await slack.user_says("C1", "<@UBOT> what is rye?", user="U1")
            await slack.wait_for(lambda: slack.thread_text("C1", thread) == "Rye is a grain.", 20, "answer")
            [answer] = slack.bot_messages("C1", thread)
            await slack.wait_for(lambda: labels(answer) == ["👍", "👎", "Retry"], 10, "controls")
        # a new process on the same database; the message in Slack still has its buttons
        async with world(tmp_path, mode="http", slack=slack, openai=openai) as (bot, _):
            assert await slack.click(answer, "👎", user="U2") == "200"
            await note(slack, "U2", "Thanks — you rated this answer 👎.")
            [row] = await bot.store.feedback_rows(0, 4e9)
            assert (row.user, row.rating, row.channel, row.thread, row.message_id) == \
                ("U2", -1, "C1", thread, answer.ts)

            forged = dataclasses.replace(answer, blocks=[
                {**b, "elements": [{**e, "value": "retry:no-such-answer"} for e in b["elements"]]}
                if b.get("type") == "actions" else b for b in answer.blocks])
            await slack.click(forged, "Retry", user="U3")                   # an admin, but no such answer
            await note(slack, "U3", "This answer's buttons no longer work")
            garbled = dataclasses.replace(answer, blocks=[
                {**b, "elements": [{**e, "value": "\u0000"} for e in b["elements"]]}
                if b.get("type") == "actions" else b for b in answer.blocks])
            assert await slack.click(garbled, "Retry", user="U1") == "200"   # dropped with one log line
            await bot.adapter.wait_idle()
            assert len(slack.bot_messages("C1", thread)) == 1 and len(openai.response_requests()) == 1


async def test_an_answer_cut_off_by_a_crash_loses_its_stop_button_and_keeps_its_text(tmp_path):
    from bots.slack.answer_blocks import fallback_text, streaming_blocks

    async with FakeSlack() as slack, world(tmp_path, slack=slack) as (bot, _):
        # what a crash leaves of an answer being written in a DM: its text (in a markdown block) and Stop
        posted = await bot.adapter.client.chat_postMessage(
            channel="D1", text=fallback_text("Half an **ans**"), blocks=streaming_blocks("a1", "Half an **ans**"))
        await bot.store.add_inflight("slack", "D1", posted["ts"], None)
        assert await bot.service.recover_interrupted(bot.adapter) == 1
        m = slack.message("D1", posted["ts"])
        assert m.text == "Half an **ans**\n\n⚠️ This answer was cut off — please ask again."
        assert labels(m) == []
