"""Slack and Discord on `type: responses` and `type: chat_completions`: the real adapters, ChatService and
SqliteStore, and the backend from the composition's factory against a stand-in model server.

What a user sees: the assistant remembers the conversation (also after a restart) until /reset, the weather
function works, and a model server that answers 500 gives one clear line.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from bots.slack.app import SlackAdapter
from core.backends.factory import close_client, make_backend, make_client
from core.chat.service import ChatService
from core.config.schema import Config
from bots.slack.target import StreamSettings
from core.store.sqlite import SqliteStore
from core.tools.registry import ToolRegistry
from tests.backends.test_local_backends_e2e import Server
from tests.fakes.discord_world import World as DiscordWorld, world as discord_world
from bots.standins.openai_server import FunctionCall, ScriptedResponse
from bots.standins.slack_server import FakeSlack


def make_config(tmp_path: Path, kind: str, base_url: str) -> Config:
    return Config(default_assistant="helper", base_dir=tmp_path, database=str(tmp_path / "tb.db"),
                  backends={"local": {"type": kind, "base_url": base_url}},
                  # scope channel: on Discord every top-level mention would otherwise start its own conversation
                  assistants={"helper": {"name": "helper", "backend": "local", "model": "llama3.1:8b", "scope": "channel",
                                         "tools": [{"type": "function",
                                                    "function": "core.tools.weather:query_weather"}]}})


def backends_for(config: Config, store: SqliteStore) -> tuple[dict[str, Any], list[Any]]:
    tools = ToolRegistry.from_config(config)
    clients = {name: make_client(name, cfg, {}) for name, cfg in config.backends.items()}
    return ({name: make_backend(name, cfg, clients[name], tools=tools, store=store)
             for name, cfg in config.backends.items()}, list(clients.values()))


@pytest.fixture(params=["responses", "chat_completions"])
async def server(request):
    async with Server(request.param) as s:
        s.fake.api_key = None                       # a local server without a key
        yield s


def remembering(server: Server):
    return lambda body: ScriptedResponse(text="I have read: " + " / ".join(server.user_texts(body)))


# ---- Slack --------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def slack_bot(tmp_path: Path, slack: FakeSlack, server: Server) -> AsyncIterator[Any]:
    config = make_config(tmp_path, server.kind, server.fake.base_url)
    async with SqliteStore(tmp_path / "tb.db") as store:
        backends, clients = backends_for(config, store)
        service = ChatService(config, store, backends)
        adapter = SlackAdapter(service, bot_token="xoxb-test", app_token="xapp-test",
                               signing_secret=slack.signing_secret, api_url=slack.api_url, mode="socket",
                               http_host="127.0.0.1", http_port=0, rate_minute=60.0,
                               stream=StreamSettings(flush_interval=0.05))
        await adapter.start()
        try:
            yield adapter
        finally:
            await adapter.wait_idle()
            await adapter.stop()
            for client in clients:
                await close_client(client)


def dm_answers(slack: FakeSlack) -> list[str]:
    return [m.text for m in slack.bot_messages("D1")]


async def test_slack_dm_remembers_across_a_restart_until_reset(server, tmp_path):
    server.fake.responder = remembering(server)
    slack = await FakeSlack().start()
    try:
        async with slack_bot(tmp_path, slack, server) as adapter:
            await slack.user_says("D1", "My name is Ada.")
            await slack.wait_for(lambda: dm_answers(slack) == ["I have read: My name is Ada."], 15)
            await adapter.wait_idle()
            await slack.user_says("D1", "What is my name?")
            await slack.wait_for(lambda: dm_answers(slack)[-1:] == ["I have read: My name is Ada. / What is my name?"],
                                 15)
        async with slack_bot(tmp_path, slack, server) as adapter:       # a restart: same database
            await slack.user_says("D1", "And now?")
            await slack.wait_for(lambda: dm_answers(slack)[-1:] ==
                                 ["I have read: My name is Ada. / What is my name? / And now?"], 15)
            await adapter.wait_idle()
            env = await slack.slash_command("reset", channel="D1")
            await slack.wait_ack(env)
            await slack.wait_for(lambda: any("new conversation" in (r.get("text") or "") for r in slack.responses), 15)
            await slack.user_says("D1", "Who am I?")
            await slack.wait_for(lambda: dm_answers(slack)[-1:] == ["I have read: Who am I?"], 15)
    finally:
        await slack.close()


async def test_slack_weather_tool_and_a_500_as_one_line(server, tmp_path):
    server.fake.script(ScriptedResponse(function_calls=(FunctionCall("query_weather", '{"city":"北京"}', "c1"),)))
    slack = await FakeSlack().start()
    try:
        async with slack_bot(tmp_path, slack, server) as adapter:
            ts = await slack.user_says("C1", "<@UBOT> 北京天气?")
            await slack.wait_for(lambda: '"temperature": 19' in slack.thread_text("C1", ts), 15)
            assert "Rainy" in slack.thread_text("C1", ts)
            await adapter.wait_idle()
            server.fake.fail_next(500, times=20)
            ts2 = await slack.user_says("C1", "<@UBOT> again?")
            await slack.wait_for(lambda: "server error (500)" in slack.thread_text("C1", ts2), 30)
            text = slack.thread_text("C1", ts2)
            assert "The model server “local” had a server error (500)" in text and text.count("\n") <= 1
    finally:
        await slack.close()


# ---- Discord ------------------------------------------------------------------------------------------


class LocalDiscordWorld(DiscordWorld):
    server: Server

    async def start(self):
        self.config = make_config(self.tmp, self.server.kind, self.server.fake.base_url)
        backends, self.model_clients = backends_for(self.config, self.store)
        from bots.discord.client import DiscordAdapter
        from bots.discord.pacing import Pacers
        self.service = ChatService(self.config, self.store, backends)
        env = self.discord.env() | {"TEAMBRIDGE_DB": str(self.tmp / "tb.db")}
        self.adapter = DiscordAdapter.from_env(self.service, env, guild_ready_timeout=0.05,
                                               pacers=Pacers(**self.pacers), store=self.store, **self.adapter_kwargs)
        await self.adapter.start()
        return self.adapter


@contextlib.asynccontextmanager
async def local_discord(tmp_path: Path, server: Server) -> AsyncIterator[LocalDiscordWorld]:
    async with discord_world(tmp_path) as w:
        await w.stop()
        w.__class__ = LocalDiscordWorld
        w.server = server
        await w.start()
        yield w


async def test_discord_remembers_across_a_restart_until_reset_and_runs_the_weather_tool(server, tmp_path):
    server.fake.responder = remembering(server)
    async with local_discord(tmp_path, server) as w:
        ch = w.channel("general")
        await w.discord.user_message(ch, w.discord.alice, "My name is Ada.", mention_bot=True)
        await w.final_answer(ch, "I have read: My name is Ada.")
        await w.stop()
        await w.start()                                                      # a restart
        await w.discord.user_message(ch, w.discord.alice, "What is my name?", mention_bot=True)
        await w.discord.wait_for(lambda: any(m.content == "I have read: My name is Ada. / What is my name?"
                                             for m in w.discord.messages_in(ch, by_bot=True)))
        rec = await w.discord.slash(ch, w.discord.alice, "reset")
        await w.discord.wait_for(lambda: rec.original_id and w.discord.messages[rec.original_id].content)
        await w.discord.user_message(ch, w.discord.alice, "Who am I?", mention_bot=True)
        await w.discord.wait_for(lambda: any(m.content == "I have read: Who am I?"
                                             for m in w.discord.messages_in(ch, by_bot=True)))
        server.fake.responder = None
        server.fake.script(ScriptedResponse(function_calls=(FunctionCall("query_weather", '{"city":"上海"}', "c1"),)))
        await w.discord.user_message(ch, w.discord.alice, "上海天气?", mention_bot=True)
        await w.discord.wait_for(lambda: any('"temperature": 25' in m.content
                                             for m in w.discord.messages_in(ch, by_bot=True)))
        server.fake.fail_next(500, times=20)
        await w.discord.user_message(ch, w.discord.alice, "again?", mention_bot=True)
        await w.discord.wait_for(lambda: any("The model server “local” had a server error (500)" in m.content
                                             for m in w.discord.messages_in(ch, by_bot=True)), timeout=30)
        for client in w.model_clients:
            await close_client(client)
