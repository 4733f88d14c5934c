"""Nothing left behind at OpenAI: spare conversations do not pile up over restarts, and what teambridge stored
there is listed (`files list --remote`) and pruned (`files prune`, `knowledge prune`) through the real CLI."""
from __future__ import annotations

import json

import pytest

from tests.console_harness import REPO, openai_env, teambridge
from bots.standins.openai_server import FakeOpenAI, ScriptedResponse

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
    return {fake.conversation_of(r) for r in fake.response_requests()}


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


FILES_CONFIG = """
default_assistant: docs
assistants:
  docs:
    model: gpt-4.1-mini
    tools:
      - type: file_search
        files: [handbook.md]
  math:
    model: gpt-4.1-mini
    tools: [{type: code_interpreter}]
"""


async def cli(fake, tmp_path, *args: str, stdin: str = ""):
    return await teambridge(*args, "--config", str(tmp_path / "config.yaml"), cwd=tmp_path, stdin=stdin,
                            env=openai_env(fake, tmp_path))


async def test_remote_listing_and_prune_delete_only_what_teambridge_made_and_nothing_uses(fake, tmp_path):
    (tmp_path / "config.yaml").write_text(FILES_CONFIG)
    (tmp_path / "handbook.md").write_text("# Handbook\nCoffee is free on Fridays.\n")
    (tmp_path / "sales.csv").write_text("month,sales\njan,10\n")
    (tmp_path / "notes.md").write_text("# Notes\nThe espresso machine is on floor 2.\n")
    assert (await cli(fake, tmp_path, "knowledge", "sync")).code == 0
    fake.script(*(ScriptedResponse(text="ok") for _ in range(3)))
    chat = await cli(fake, tmp_path, "chat", "--user", "ann", "--assistant", "math",
                     stdin=f"/attach {tmp_path / 'sales.csv'}\nchart it\n")
    assert chat.code == 0, chat.err
    chat = await cli(fake, tmp_path, "chat", "--user", "ann", "--assistant", "docs",
                     stdin=f"/attach {tmp_path / 'notes.md'}\nwhere is the espresso machine?\n/reset\n")
    assert chat.code == 0, chat.err
    from openai import AsyncOpenAI
    async with AsyncOpenAI(base_url=fake.base_url, api_key="sk-other-app") as other:
        foreign = (await other.files.create(file=("theirs.md", b"not ours"), purpose="assistants")).id

    by_name = {f.obj["filename"]: fid for fid, f in fake.files.items()}
    knowledge_vs = next(v for v, s in fake.vector_stores.items() if s["metadata"].get("teambridge") == "knowledge")
    conversation_vs = next(v for v, s in fake.vector_stores.items()
                           if s["metadata"].get("teambridge") == "conversation")

    listed = await cli(fake, tmp_path, "files", "list", "--remote")
    assert listed.code == 0, listed.err
    rows = {line.split()[1]: line for line in listed.out.splitlines() if line.startswith(("file ", "vector_store "))}
    assert "knowledge of docs" in rows[by_name["handbook.md"]]
    assert rows[by_name["sales.csv"]].endswith("unused")
    assert rows[by_name["notes.md"]].endswith("unused")            # its conversation was reset
    assert rows[foreign].endswith("unused; not in teambridge's database")
    assert "knowledge of docs" in rows[knowledge_vs] and rows[conversation_vs].endswith("unused")

    dry = await cli(fake, tmp_path, "files", "prune")
    assert dry.code == 0 and "dry run" in dry.out
    assert f"would delete {by_name['sales.csv']}" in dry.out and f"would delete {by_name['notes.md']}" in dry.out
    assert len(fake.files) == 4                                     # nothing deleted yet

    pruned = await cli(fake, tmp_path, "files", "prune", "--yes")
    assert pruned.code == 0, pruned.err
    assert set(fake.files) == {by_name["handbook.md"], foreign}    # in use, and not ours: both stay

    dry = await cli(fake, tmp_path, "knowledge", "prune")
    assert dry.code == 0 and f"would delete {conversation_vs}" in dry.out and knowledge_vs not in dry.out
    assert (await cli(fake, tmp_path, "knowledge", "prune", "--yes")).code == 0
    assert set(fake.vector_stores) == {knowledge_vs}
    assert "Nothing teambridge" not in (await cli(fake, tmp_path, "files", "list", "--remote")).out

