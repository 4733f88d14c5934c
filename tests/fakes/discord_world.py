"""The real composition for Discord end-to-end tests: stand-in Discord + stand-in OpenAI + the real ChatService,
SqliteStore, OpenAIBackend and AttachmentRouter over the real AsyncOpenAI, and the real DiscordAdapter.

`World.restart()`-style tests call stop() then start(): a fresh adapter and service on the same database,
like a process restart.
"""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

from openai import AsyncOpenAI

from bots.discord.client import DiscordAdapter
from bots.discord.pacing import Pacers
from core.backends.openai.backend import OpenAIBackend
from core.backends.openai.files import OpenAIFileBackend
from core.config.schema import Config
from core.files.attachments import AttachmentRouter
from core.chat.service import ChatService
from core.reply.splitting import unsplit
from core.store.sqlite import SqliteStore
from core.tools.registry import ToolRegistry
from bots.standins.discord_server import FakeDiscord, StoredMessage
from bots.standins.openai_files_routes import FakeOpenAIFiles
from bots.standins.openai_server import ScriptedResponse, last_user_text

# Short rate windows keep the tests fast; the bot's pacers are told the same budget as the stand-in.
WINDOW = 0.5


def make_config(tmp_path: Path, **discord) -> Config:
    return Config(default_assistant="food", base_dir=tmp_path, database=str(tmp_path / "tb.db"), assistants={
        "food": {"name": "food", "model": "gpt-test", "instructions": "You are a food expert."},
        "math": {"name": "math", "model": "gpt-test", "tools": [{"type": "code_interpreter"}]},
        "docs": {"name": "docs", "model": "gpt-test", "tools": [{"type": "file_search"}]},
    }, discord=discord)


class World:
    """Discord + OpenAI stand-ins and the real composition; stop() + start() is a process restart."""

    def __init__(self, tmp_path: Path, discord: FakeDiscord, openai: FakeOpenAIFiles, store: SqliteStore,
                 config: Config, pacers: dict | None = None, adapter_kwargs: dict | None = None) -> None:
        self.tmp, self.discord, self.openai, self.store, self.config = tmp_path, discord, openai, store, config
        self.pacers = pacers or {"channel_limit": 5, "channel_period": WINDOW}
        self.adapter: DiscordAdapter | None = None
        self.adapter_kwargs = adapter_kwargs or {}

    async def start(self) -> DiscordAdapter:
        # a client per start, closed with its backend by stop(), as a process does
        self.client = AsyncOpenAI(base_url=self.openai.base_url, api_key="sk-test", max_retries=0)
        files = OpenAIFileBackend(self.client)
        self.backend = backend = OpenAIBackend(self.client, ToolRegistry.from_config(self.config), max_retries=0)
        self.service = ChatService(self.config, self.store, {"openai": backend},
                                   files=AttachmentRouter(files, self.store))
        env = self.discord.env() | {"TEAMBRIDGE_DB": str(self.tmp / "tb.db")}
        self.budgets = Pacers(**self.pacers)   # the bot's budgets (a test may run them on a clock of its own)
        self.adapter = DiscordAdapter.from_env(self.service, env, guild_ready_timeout=0.05,
                                               pacers=self.budgets, store=self.store, **self.adapter_kwargs)
        await self.adapter.start()
        return self.adapter

    async def stop(self) -> None:
        if self.adapter is not None:
            await self.adapter.stop()
            self.adapter = None
            await self.backend.aclose()   # its HTTP sessions (direct requests, spares) and the client

    # ---- what a user sees --------------------------------------------------------------------------

    def channel(self, name: str) -> str:
        return self.discord.channel_id(self.discord.guild, name)

    async def final_answer(self, channel: str, text: str, *, timeout: float = 30) -> list[StoredMessage]:
        """Wait until the bot's messages in `channel` join up to `text` (cursor and status line gone)."""
        def done():
            msgs = self.discord.messages_in(channel, by_bot=True)
            return msgs if msgs and unsplit([m.content for m in msgs]).strip() == text else None
        return await self.discord.wait_for(done, timeout=timeout)


@asynccontextmanager
async def world(tmp_path: Path, *, channels: tuple[str, ...] = ("general", "math"), discord_kwargs: dict | None = None,
                pacers: dict | None = None, routes: dict[str, str] | None = None,
                adapter_kwargs: dict | None = None, **discord_config) -> AsyncIterator[World]:
    """`routes`: channel name -> assistant answering there (ids exist only once the guild does)."""
    discord = FakeDiscord(**({"channel_limit": 5, "channel_period": WINDOW} | (discord_kwargs or {})))
    await discord.start()
    try:
        discord.guild = discord.add_guild("Team", channels)
        discord.alice = discord.add_user("alice")
        if routes:
            discord_config["channels"] = {discord.channel_id(discord.guild, name): {"assistant": assistant}
                                          for name, assistant in routes.items()}
        async with FakeOpenAIFiles() as openai, SqliteStore(tmp_path / "tb.db") as store:
            w = World(tmp_path, discord, openai, store, make_config(tmp_path, **discord_config), pacers,
                      adapter_kwargs)
            await w.start()
            try:
                yield w
            finally:
                await w.stop()
    finally:
        await discord.stop()


# ---- many users at once ------------------------------------------------------------------------------


def answer_for(question: str) -> str:
    return f"Answer to {question}: basil, tomato and a pinch of salt."


async def ask_everyone(w, channels: list[str], n: int, *, deltas: int = 3) -> dict[str, str]:
    """n users' mentions arrive at the same moment, spread over the channels; returns message id -> answer.
    The model answers each in `deltas` pieces (several: the bot streams, i.e. posts and then edits)."""
    w.openai.responder = lambda body: ScriptedResponse(text=answer_for(last_user_text(body)), deltas=deltas)
    asks = [(channels[i % len(channels)], f"question {i}") for i in range(n)]
    ids = await asyncio.gather(*(w.discord.user_message(c, w.discord.alice, q, mention_bot=True) for c, q in asks))
    return {mid: answer_for(q) for mid, (_, q) in zip(ids, asks)}


def answers_by_question(w, channels: list[str]) -> dict[str, str]:
    """The bot's reply to each user message (replies quote the message they answer), final content."""
    return {m.reference_id: m.content for c in channels for m in w.discord.messages_in(c, by_bot=True)}
