"""Nothing left behind at OpenAI: spare conversations do not pile up over restarts, and what teambridge stored
there is listed (`files list --remote`) and pruned (`files prune`, `knowledge prune`) through the real CLI."""
from __future__ import annotations

import json

import pytest

from tests.console_harness import REPO, openai_env, teambridge
from tests.fakes.openai_server import FakeOpenAI, ScriptedResponse

CONFIG = """
default_assistant: food
backends:
  openai: {{type: openai, spare_conversations: {spares}}}
assistants:
  food:
    model: gpt-4.1-mini
    instructions: You are a food expert.
  chef:
    model: gpt-4.1-mini
    instructions: You are a chef.
"""


@pytest.fixture
async def fake():
    async with FakeOpenAI() as fake:
        yield fake


def used_conversations(fake) -> set[str]:
    return {r["conversation"] for r in fake.response_requests()}


async def test_three_start_stop_cycles_leave_no_unused_conversation(fake, tmp_path):
    (tmp_path / "config.yaml").write_text(CONFIG.format(spares=4))
    env = openai_env(fake, tmp_path)
    for n, assistant in enumerate(("food", "chef", "food")):
        fake.script(ScriptedResponse(text=f"answer {n}"))
        # a new user each time: every run starts a conversation, so the spare pool is filled every run
        run = await teambridge("chat", "--config", str(tmp_path / "config.yaml"), "--user", f"user{n}",
                               "--assistant", assistant, cwd=tmp_path, stdin="hello\nanother one\n", env=env)
        assert run.code == 0, run.err
    created = [r for r in fake.requests if r.method == "POST" and r.path == "/v1/conversations"]
    assert len(created) > 3  # spares were made…
    assert set(fake.conversations) == used_conversations(fake), fake.conversations  # …and none is left unused
    assert len(fake.conversations) == 3


async def test_spares_let_later_conversations_start_from_the_pool(fake, tmp_path):
    (tmp_path / "config.yaml").write_text(CONFIG.format(spares=2))
    env = openai_env(fake, tmp_path)
    fake.script(*(ScriptedResponse(text="ok") for _ in range(3)))
    run = await teambridge("chat", "--config", str(tmp_path / "config.yaml"), "--user", "ann", "--assistant", "food",
                           cwd=tmp_path, stdin="hello\n/reset\nagain\n/reset\nonce more\n", env=env)
    assert run.code == 0, run.err
    conversations = [fake.conversations[c] for c in used_conversations(fake)]
    assert len(conversations) == 3
    assert all(c["metadata"].get("user_id") == "ann" for c in conversations)  # spares carry their real labels
    assert set(fake.conversations) == used_conversations(fake)


async def test_spares_a_crash_left_behind_are_used_by_the_next_start(fake, tmp_path):
    (tmp_path / "config.yaml").write_text(CONFIG.format(spares=2))
    from core.store.sqlite import SqliteStore
    from openai import AsyncOpenAI
    async with AsyncOpenAI(base_url=fake.base_url, api_key="sk-test") as client:
        left = [(await client.conversations.create(metadata={"teambridge": "spare"})).id for _ in range(2)]
    async with SqliteStore(tmp_path / "teambridge.db") as store:  # as a killed process left them
        for cid in left:
            await store.add_spare(fake.base_url.rstrip("/"), cid)
    fake.script(ScriptedResponse(text="ok"))
    run = await teambridge("chat", "--config", str(tmp_path / "config.yaml"), "--user", "bo", "--assistant", "food",
                           cwd=tmp_path, stdin="hello\n", env=openai_env(fake, tmp_path))
    assert run.code == 0, run.err
    assert used_conversations(fake) == {left[0]}                  # the oldest leftover, not a new one
    assert fake.conversations[left[0]]["metadata"]["user_id"] == "bo"
    assert set(fake.conversations) == {left[0]}                   # the other deleted at the clean stop
