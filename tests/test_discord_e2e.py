"""End to end on Discord: real discord.py against the stand-in Discord, the real ChatService + SqliteStore +
OpenAIBackend + AttachmentRouter over the real AsyncOpenAI against the stand-in OpenAI.
"""
from __future__ import annotations

import re

import pytest
from openai import AsyncOpenAI

from bots.discord.client import DiscordAdapter
from bots.discord.pacing import Pacers
from core.backends.openai import OpenAIBackend
from core.backends.openai_files import OpenAIFileBackend
from core.config import Config
from core.files import AttachmentRouter
from core.service import ChatService
from core.splitting import unsplit
from core.store import SqliteStore
from core.tools.registry import ToolRegistry
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.openai_files_routes import FakeOpenAIFiles
from tests.fakes.openai_server import CodeRun, GeneratedFile, ScriptedResponse

WINDOW = 0.5
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64


def make_config(tmp_path, **discord) -> Config:
    return Config(default_assistant="food", base_dir=tmp_path, database=str(tmp_path / "tb.db"), assistants={
        "food": {"name": "food", "model": "gpt-test", "instructions": "You are a food expert."},
        "math": {"name": "math", "model": "gpt-test", "tools": [{"type": "code_interpreter"}]},
    }, discord=discord)


class World:
    """Discord + OpenAI stand-ins and the real composition; `restart()` builds a fresh adapter + service."""

    def __init__(self, tmp_path, discord: FakeDiscord, openai: FakeOpenAIFiles, store: SqliteStore, config):
        self.tmp, self.discord, self.openai, self.store, self.config = tmp_path, discord, openai, store, config
        self.client = AsyncOpenAI(base_url=openai.base_url, api_key="sk-test", max_retries=0)
        self.adapter: DiscordAdapter | None = None

    async def start(self) -> DiscordAdapter:
        files = OpenAIFileBackend(self.client)
        backend = OpenAIBackend(self.client, ToolRegistry.from_config(self.config), max_retries=0)
        self.service = ChatService(self.config, self.store, {"openai": backend},
                                   files=AttachmentRouter(files, self.store))
        env = self.discord.env() | {"TEAMBRIDGE_DB": str(self.tmp / "tb.db")}
        self.adapter = DiscordAdapter.from_env(self.service, env, guild_ready_timeout=0.05,
                                               pacers=Pacers(channel_limit=5, channel_period=WINDOW))
        await self.adapter.start()
        return self.adapter

    async def stop(self) -> None:
        if self.adapter is not None:
            await self.adapter.stop()
            self.adapter = None


@pytest.fixture
async def world(tmp_path):
    discord = FakeDiscord(channel_limit=5, channel_period=WINDOW)
    await discord.start()
    discord.guild = discord.add_guild("Team", ("general", "math"))
    discord.alice = discord.add_user("alice")
    async with FakeOpenAIFiles() as openai, SqliteStore(tmp_path / "tb.db") as store:
        w = World(tmp_path, discord, openai, store, make_config(tmp_path))
        await w.start()
        yield w
        await w.stop()
        await w.client.close()
    await discord.stop()


def general(w: World) -> str:
    return w.discord.channel_id(w.discord.guild, "general")


async def final_answer(w: World, channel: str, text: str) -> list:
    """Wait until the bot's messages in `channel` join up to `text` and the status line is gone."""
    def done():
        msgs = w.discord.messages_in(channel, by_bot=True)
        return msgs if msgs and unsplit([m.content for m in msgs]).strip() == text else None
    return await w.discord.wait_for(done, timeout=15)


async def test_mention_gets_the_streamed_model_answer(world):
    w, ch = world, general(world)
    answer = "Basil loves tomatoes, mozzarella and a little olive oil."
    w.openai.script(ScriptedResponse(text=answer, delta_size=5))
    await w.discord.user_message(ch, w.discord.alice, "what goes with basil?", mention_bot=True)
    (msg,) = await final_answer(w, ch, answer)
    assert msg.content == answer
    (body,) = w.openai.response_requests()
    assert "what goes with basil?" in str(body["input"]) and "<@" not in str(body["input"])


async def test_reply_chain_follow_up_stays_in_the_same_conversation(world):
    w, ch = world, general(world)
    w.openai.script(ScriptedResponse(text="Try carbonara."), ScriptedResponse(text="A Frascati."))
    await w.discord.user_message(ch, w.discord.alice, "pick a pasta", mention_bot=True)
    (first,) = await final_answer(w, ch, "Try carbonara.")
    await w.discord.user_message(ch, w.discord.alice, "and a wine?", reply_to=first.id)
    await w.discord.wait_for(lambda: any(m.content == "A Frascati." for m in w.discord.messages_in(ch, by_bot=True)))
    one, two = w.openai.response_requests()
    assert one["conversation"] == two["conversation"]


async def test_direct_message(world):
    w = world
    dm = w.discord.dm_channel(w.discord.alice)
    w.openai.script(ScriptedResponse(text="Hello Alice!"))
    await w.discord.user_message(dm, w.discord.alice, "hi")
    await final_answer(w, dm, "Hello Alice!")


async def test_slash_ask_is_deferred_and_completed(world):
    w, ch = world, general(world)
    w.openai.script(ScriptedResponse(text="A leek and potato soup.", delta_size=4))
    rec = await w.discord.slash(ch, w.discord.alice, "ask", {"prompt": "a soup for winter"})
    await w.discord.wait_for(lambda: rec.original_id
                             and w.discord.messages[rec.original_id].content == "A leek and potato soup.")
    assert rec.callbacks[0]["type"] == 5 and rec.deferred_after < 3.0


async def test_slash_reset_starts_a_new_conversation(world):
    w, ch = world, general(world)
    rec = await w.discord.slash(ch, w.discord.alice, "reset")
    await w.discord.wait_for(lambda: rec.original_id and w.discord.messages[rec.original_id].content)
    assert "conversation" in w.discord.messages[rec.original_id].content
    assert w.discord.messages[rec.original_id].ephemeral


async def test_five_thousand_characters_with_code_split_into_valid_messages(world):
    w, ch = world, general(world)
    block = "```python\n" + "\n".join(f"print('line {i}')  # {'x' * 20}" for i in range(60)) + "\n```"
    answer = "\n\n".join(["Here is the plan.", block, "Some prose " * 40, block])[:5000].rstrip()
    answer = answer if answer.count("```") % 2 == 0 else answer + "\n```"
    assert len(answer) > 4000
    w.openai.script(ScriptedResponse(text=answer, delta_size=200))
    await w.discord.user_message(ch, w.discord.alice, "write code", mention_bot=True)
    msgs = await final_answer(w, ch, answer)
    assert len(msgs) >= 3
    for m in msgs:
        assert len(m.content) <= 2000
        assert m.content.count("```") % 2 == 0, m.content[-80:]
    assert w.discord.rate_limited == []


async def test_attachment_goes_to_the_code_interpreter_and_the_chart_comes_back(world):
    w = world
    ch = w.discord.channel_id(w.discord.guild, "math")
    w.config = make_config(w.tmp, channels={ch: {"assistant": "math"}})
    await w.stop()
    await w.start()
    w.openai.script(ScriptedResponse(text="Here is the chart.",
                                     code=CodeRun("df.plot()", file=GeneratedFile("chart.png", PNG))))
    await w.discord.user_message(ch, w.discord.alice, "plot this", mention_bot=True,
                                 files=[("temps.csv", b"city,temp\nShanghai,25\n", "text/csv")])
    msgs = await w.discord.wait_for(lambda: [m for m in w.discord.messages_in(ch, by_bot=True) if m.attachments])
    assert msgs[0].files() == {"chart.png": PNG}
    (body,) = w.openai.response_requests()
    ci = next(t for t in body["tools"] if t["type"] == "code_interpreter")
    assert ci["container"]["file_ids"] == [next(iter(w.openai.files))]
    assert any("Here is the chart." in m.content for m in w.discord.messages_in(ch, by_bot=True))


async def test_a_message_is_answered_once_across_a_restart(world):
    w, ch = world, general(world)
    w.openai.script(ScriptedResponse(text="Once."))
    mid = await w.discord.user_message(ch, w.discord.alice, "answer once", mention_bot=True)
    await final_answer(w, ch, "Once.")
    await w.stop()
    await w.start()
    # Discord delivers the same message again to the new process (e.g. a replay after a resume).
    await w.discord.dispatch("MESSAGE_CREATE", w.discord.messages[mid].payload)
    w.openai.script(ScriptedResponse(text="Next."))
    await w.discord.user_message(ch, w.discord.alice, "next one", mention_bot=True)
    await w.discord.wait_for(lambda: any(m.content == "Next." for m in w.discord.messages_in(ch, by_bot=True)))
    assert [m.content for m in w.discord.messages_in(ch, by_bot=True)] == ["Once.", "Next."]
    assert len(w.openai.response_requests()) == 2
