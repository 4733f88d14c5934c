"""The retention sweep as `teambridge run` runs it (bots/runtime.sweep_retention on the real runtime, against the
stand-in OpenAI): conversations idle past `retention.conversations_days` are deleted at OpenAI and here, each run is
logged, and /metrics counts the runs (ok / failed) and the conversations deleted."""
from __future__ import annotations

import asyncio
import logging
import time

from openai import AsyncOpenAI

from bots.runtime import open_runtime, sweep_retention
from bots.standins.openai_server import FakeOpenAI
from core.config.load import load_config
from core.model import ConversationKey
from core.store.sqlite import SqliteStore
from tests.console_harness import openai_env

CONFIG = """\
default_assistant: food
assistants:
  food:
    model: gpt-test
retention: {conversations_days: 30}
slack: {enabled: false}
discord: {enabled: false}
"""


async def old_conversation(fake, tmp_path, user: str, days_ago: float) -> str:
    """A conversation last used `days_ago` days ago (its record written with a clock set back that far)."""
    client = AsyncOpenAI(api_key="sk-test", base_url=fake.base_url)
    try:
        conv = await client.conversations.create(metadata={"user_id": user})
    finally:
        await client.close()
    async with SqliteStore(tmp_path / "teambridge.db", clock=lambda: time.time() - days_ago * 86400) as store:
        await store.save_conversation(ConversationKey("console", "", f"console:{user}", "", user), "food", conv.id,
                                      {"platform": "console", "channel": f"console:{user}", "user_id": user})
    return conv.id


def sample(runtime, name: str, **labels) -> float:
    return runtime.metrics.registry.get_sample_value(name, labels) or 0.0


async def until(check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met"
        await asyncio.sleep(0.02)


async def test_the_sweep_deletes_idle_conversations_and_is_logged_and_counted(tmp_path, caplog, monkeypatch):
    (tmp_path / "config.yaml").write_text(CONFIG)
    async with FakeOpenAI() as fake:
        for name, value in openai_env(fake, tmp_path).items():   # the OpenAI client reads the process environment
            monkeypatch.setenv(name, value)
        idle = await old_conversation(fake, tmp_path, "old", days_ago=40)
        recent = await old_conversation(fake, tmp_path, "new", days_ago=2)
        runtime = await open_runtime(load_config(tmp_path / "config.yaml"), openai_env(fake, tmp_path))
        caplog.set_level(logging.INFO, logger="teambridge")   # whatever an earlier test left the level at
        sweeper = asyncio.create_task(sweep_retention(runtime, every=3600))
        try:
            await until(lambda: sample(runtime, "teambridge_retention_sweeps_total", outcome="ok") == 1)
            assert sample(runtime, "teambridge_retention_deleted_conversations_total") == 1
            assert idle not in fake.conversations and recent in fake.conversations
            assert [r.backend_id for r in await runtime.store.list_conversations()] == [recent]
            assert any("retention: conversations idle for more than 30 days: Deleted 1 conversation." in r.message
                       for r in caplog.records)
            exposition = runtime.metrics.exposition().decode()
            assert 'teambridge_retention_sweeps_total{outcome="ok"} 1.0' in exposition

            # A sweep that fails (the database is gone) is logged and counted as failed, and tried again later
            await runtime.store.close()
            sweeper.cancel()
            sweeper = asyncio.create_task(sweep_retention(runtime, every=3600))
            await until(lambda: sample(runtime, "teambridge_retention_sweeps_total", outcome="failed") == 1)
            assert any("retention sweep failed" in r.message for r in caplog.records)
            await runtime.store.open()
        finally:
            sweeper.cancel()
            await runtime.aclose()
