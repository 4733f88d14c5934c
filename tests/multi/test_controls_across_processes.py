"""Controls on answers across processes: two bots on one PostgreSQL database share the stand-in Slack, which spreads
its Socket Mode envelopes over their two connections, so a click may reach the process that is not writing the
answer. Stop is passed on to the one that is; rating and Retry work in either (the answer is in the database)."""
from __future__ import annotations

import contextlib

from openai import AsyncOpenAI

from bots.standins.openai_server import FakeOpenAI, ScriptedResponse
from bots.standins.slack_server import FakeSlack
from core.backends.openai.backend import OpenAIBackend
from core.config.schema import Config
from core.store.postgres import PostgresStore
from core.tools.registry import ToolRegistry
from tests.fakes.slack_harness import running_bot

LONG = "".join(f"word{i} " for i in range(300))   # ~15 s at 8 characters per 0.2 s: ends only if stopped


@contextlib.asynccontextmanager
async def two_processes(tmp_path, postgres_url: str):
    async with FakeOpenAI() as openai, FakeSlack() as slack:
        slack.spread = True
        config = Config.model_validate({
            "default_assistant": "food", "base_dir": tmp_path, "admins": ["U3"],
            "assistants": {"food": {"name": "food", "model": "gpt-test"}}})
        async with contextlib.AsyncExitStack() as stack:
            bots = []
            for name in ("p1", "p2"):
                client = AsyncOpenAI(base_url=openai.base_url, api_key="sk-test", max_retries=0)
                stack.push_async_callback(client.close)
                backend = OpenAIBackend(client, ToolRegistry.from_config(config), max_retries=0)
                store = await stack.enter_async_context(PostgresStore(postgres_url, owner=name))
                bots.append(await stack.enter_async_context(
                    running_bot(tmp_path / name, backend, slack=slack, config=config, store=store)))
            await slack.wait_connected(count=2)
            for bot in bots:   # both processes hear the other's signals before the first click
                await bot.store.signals().start()
            yield slack, openai, bots


async def test_stop_reaches_the_process_writing_the_answer_and_a_stranger_is_refused_by_it(tmp_path, postgres_url):
    async with two_processes(tmp_path, postgres_url) as (slack, openai, bots):
        openai.script(ScriptedResponse(text=LONG, delta_size=8, delay=0.2))
        await slack.user_says("D1", "Tell me everything about bread.", user="U1")
        reply = await slack.wait_for(lambda: next((m for m in slack.bot_messages("D1") if "word2" in m.text), None),
                                     what="the answer being written")
        # consecutive envelopes go to the two connections in turn: one of these clicks reaches the process
        # that writes the answer, the other the process that does not
        await slack.click(reply, "Stop", user="U2")
        await slack.click(reply, "Stop", user="U2")
        await slack.wait_for(lambda: len(slack.ephemerals) == 2, what="two refusals")
        assert all(e["user"] == "U2" and "Only the person who asked or an admin can stop" in e["text"]
                   for e in slack.ephemerals)
        assert openai.stream_ends == []

        await slack.click(reply, "Stop", user="U1")
        await slack.click(reply, "Stop", user="U1")   # one of the two reaches the other process first or second
        await slack.wait_for(lambda: reply.text.endswith("⏹️ stopped"), what="the stopped note")
        await slack.wait_for(lambda: openai.stream_ends == ["closed early"], what="the model's stream closed")
        late = await slack.wait_for(lambda: [e for e in slack.ephemerals if e["user"] == "U1"], what="the late click")
        assert [e["text"] for e in late] in (["This answer is already stopping."],
                                             ["This answer is not being written any more."])
