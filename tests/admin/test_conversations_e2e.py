"""Conversations for admins, end to end: the real `teambridge` CLI (a subprocess, not a terminal) against the
stand-in OpenAI — list with filters, show in order, delete by id and by user (DELETE reaching the stand-in,
other people untouched, the next message starting afresh), the confirmation rule, `--forget-user`; the admins'
`/forget` in chat; the retention sweep with a clock the test moves."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from openai import AsyncOpenAI

from core.admin.conversations import ConversationAdmin, user_digest
from core.backends.openai.conversations import OpenAIConversations
from core.backends.openai.files import OpenAIFileBackend
from core.config.load import load_config
from core.model import Usage
from core.store.sqlite import SqliteStore
from tests.console_harness import openai_env, teambridge
from bots.standins.openai_server import FakeOpenAI

CONFIG = """\
default_assistant: food
admins: [root]
assistants:
  food:
    model: gpt-test
    instructions: You are a food expert.
  math:
    model: gpt-test
slack: {enabled: false}
discord: {enabled: false}
"""


def real(fake) -> set[str]:
    """The stand-in's conversations minus the empty spares the backend makes ahead of time."""
    return {cid for cid, c in fake.conversations.items() if c.get("metadata") != {"teambridge": "spare"}}


@pytest.fixture
async def fake():
    async with FakeOpenAI() as fake:
        yield fake


async def cli(fake, tmp_path: Path, *args: str, stdin: str = ""):
    config = tmp_path / "config.yaml"
    if not config.exists():
        config.write_text(CONFIG)
    run = await teambridge(*args, "--config", str(config), cwd=tmp_path, stdin=stdin, env=openai_env(fake, tmp_path))
    assert "Traceback" not in run.err, run.err
    return run


async def say(fake, tmp_path: Path, user: str, lines: str, assistant: str = "food") -> str:
    run = await cli(fake, tmp_path, "chat", "--user", user, "--assistant", assistant, stdin=lines)
    assert run.code == 0, run.err
    return run.out


async def listed(fake, tmp_path: Path, *filters: str) -> list[dict]:
    run = await cli(fake, tmp_path, "conversations", "list", "--json", *filters)
    assert run.code == 0, run.err
    return json.loads(run.out)


async def test_list_filters_and_show_reads_the_messages_in_order(fake, tmp_path):
    await say(fake, tmp_path, "alice", "Basil?\nAnd mint?\n")
    await say(fake, tmp_path, "bob", "Seven squared?\n", assistant="math")

    table = await cli(fake, tmp_path, "conversations", "list")
    assert table.code == 0 and "alice" in table.out and "bob" in table.out and "last used (UTC)" in table.out
    rows = await listed(fake, tmp_path)
    assert sorted((r["user_id"], r["assistant"], r["platform"]) for r in rows) == [
        ("alice", "food", "console"), ("bob", "math", "console")]
    assert [r["user_id"] for r in await listed(fake, tmp_path, "--user", "alice")] == ["alice"]
    assert [r["user_id"] for r in await listed(fake, tmp_path, "--assistant", "math")] == ["bob"]
    assert [r["user_id"] for r in await listed(fake, tmp_path, "--channel", "console:bob")] == ["bob"]
    assert await listed(fake, tmp_path, "--user", "nobody") == []

    alice = (await listed(fake, tmp_path, "--user", "alice"))[0]
    shown = await cli(fake, tmp_path, "conversations", "show", alice["id"])
    assert shown.code == 0, shown.err
    assert shown.out.splitlines()[1:] == ["[user] Basil?", "[assistant] You said: Basil?",
                                          "[user] And mint?", "[assistant] You said: And mint?"]
    as_json = json.loads((await cli(fake, tmp_path, "conversations", "show", alice["id"], "--json")).out)
    assert [i["role"] for i in as_json["items"]] == ["user", "assistant", "user", "assistant"]
    missing = await cli(fake, tmp_path, "conversations", "show", "conv_nope")
    assert missing.code == 1 and "no conversation 'conv_nope'" in missing.err


async def test_delete_needs_yes_off_a_terminal_and_then_deletes_at_openai_and_here(fake, tmp_path):
    await say(fake, tmp_path, "alice", "Basil?\n")
    await say(fake, tmp_path, "bob", "Thyme?\n")
    alice = (await listed(fake, tmp_path, "--user", "alice"))[0]

    refused = await cli(fake, tmp_path, "conversations", "delete", alice["id"])
    assert refused.code == 2 and "add --yes" in refused.err
    assert alice["id"] in fake.conversations and len(await listed(fake, tmp_path)) == 2

    done = await cli(fake, tmp_path, "conversations", "delete", alice["id"], "--yes")
    assert done.code == 0, done.err
    assert done.out.strip() == "Deleted 1 conversation."
    assert alice["id"] not in fake.conversations                      # DELETE /v1/conversations/{id}
    assert any(r.method == "DELETE" and r.path == f"/v1/conversations/{alice['id']}" for r in fake.requests)
    assert [r["user_id"] for r in await listed(fake, tmp_path)] == ["bob"]   # bob untouched
    bob = (await listed(fake, tmp_path))[0]
    assert bob["id"] in fake.conversations

    # alice's next message starts a new conversation
    assert await say(fake, tmp_path, "alice", "Basil again?\n") == "You said: Basil again?\n"
    again = (await listed(fake, tmp_path, "--user", "alice"))[0]
    assert again["id"] != alice["id"] and [i["role"] for i in fake.conversation_items[again["id"]]] == \
        ["user", "assistant"]


async def feedback(fake, tmp_path: Path) -> dict:
    run = await cli(fake, tmp_path, "feedback", "--period", "24h", "--json")
    assert run.code == 0, run.err
    return json.loads(run.out)


async def test_delete_by_user_with_forget_user_keeps_the_cost_under_a_digest(fake, tmp_path):
    await say(fake, tmp_path, "alice", "Basil?\n")
    await say(fake, tmp_path, "alice", "Seven squared?\n", assistant="math")
    await say(fake, tmp_path, "bob", "Thyme?\n")
    async with SqliteStore(tmp_path / "teambridge.db") as store:   # each rates the other's answer (👍 / 👎)
        asked = {tuple(r) for r in await store._fetch('SELECT "user", id FROM answers ORDER BY at')}
        [bobs] = [a for u, a in asked if u == "bob"]
        alices = sorted(a for u, a in asked if u == "alice")
        await store.rate_answer(bobs, "alice", 1)
        await store.rate_answer(alices[0], "bob", -1)
    assert (await feedback(fake, tmp_path))["total"] == {"up": 1, "down": 1}

    done = await cli(fake, tmp_path, "conversations", "delete", "--user", "alice", "--yes", "--forget-user")
    assert done.code == 0, done.err
    assert done.out.splitlines() == ["Deleted 2 conversations.",
                                     "Replaced the user id in 2 usage rows with a digest."]
    assert [r["user_id"] for r in await listed(fake, tmp_path)] == ["bob"]
    assert len(real(fake)) == 1

    usage = await cli(fake, tmp_path, "usage", "--by", "user", "--period", "24h", "--json")
    users = {row["key"] for row in json.loads(usage.out)["rows"]}
    assert users == {"bob", user_digest("alice")}
    # the answers alice got went with her conversations, and bob's rating of one with them; her rating of bob's
    # answer stays, counted, under the digest
    async with SqliteStore(tmp_path / "teambridge.db") as store:
        rows = await store._fetch('SELECT "user", user_name, question FROM answers ORDER BY at')
    assert [tuple(r) for r in rows] == [("bob", "bob", "Thyme?")]
    report = await feedback(fake, tmp_path)
    assert report["total"] == {"up": 1, "down": 0}
    assert [(r["user"], r["rating"], r["asked_by"]) for r in report["ratings"]] == [(user_digest("alice"), "up", "bob")]

    without = await cli(fake, tmp_path, "conversations", "delete", "--user", "bob", "--yes")
    assert without.code == 0 and without.out.strip() == "Deleted 1 conversation."
    usage = await cli(fake, tmp_path, "usage", "--by", "user", "--period", "24h", "--json")
    assert "bob" in {row["key"] for row in json.loads(usage.out)["rows"]}   # usage rows stay without the flag


async def test_forget_in_chat_is_for_admins_and_asks_first(fake, tmp_path):
    await say(fake, tmp_path, "alice", "Basil?\n")
    assert await say(fake, tmp_path, "bob", "/forget alice\n") == "Only admins can use “forget”.\n"
    assert len(real(fake)) == 1

    out = await say(fake, tmp_path, "root", "/forget alice\n/forget alice\n")
    first, second = out.splitlines()
    assert first.startswith("This deletes 1 conversation of alice") and "again within two minutes" in first
    assert second == "Deleted 1 conversation. Replaced the user id in 1 usage rows with a digest."
    assert real(fake) == set() and await listed(fake, tmp_path) == []


async def test_retention_sweep_deletes_only_conversations_idle_past_the_limit(fake, tmp_path):
    config_path = tmp_path / "config.yaml"
    config_path.write_text(CONFIG + "retention: {conversations_days: 30}\n")
    config = load_config(config_path)
    await say(fake, tmp_path, "old", "Basil?\n")
    await say(fake, tmp_path, "new", "Thyme?\n")
    client = AsyncOpenAI(api_key="sk-test", base_url=fake.base_url)
    now = [0.0]
    async with SqliteStore(tmp_path / "teambridge.db", clock=lambda: now[0]) as store:
        # the "new" user talks again 40 days later
        rows = {r.metadata["user_id"]: r for r in await store.list_conversations()}
        now[0] = rows["new"].created_at + 40 * 86400
        await store.record_usage(assistant="food", platform="console", workspace="", channel="console:new",
                                 user="new", model="gpt-test", usage=Usage(1, 0, 1))
        answers = {tuple(r) for r in await store._fetch('SELECT "user", id FROM answers')}
        for _, answer_id in answers:
            await store.rate_answer(answer_id, "root", 1)
        admin = ConversationAdmin(config, store, {"openai": OpenAIConversations(client)},
                                  OpenAIFileBackend(client), clock=lambda: now[0])
        assert (await admin.sweep(config.retention.conversations_days)).deleted == (rows["old"].backend_id,)
        assert [r.user_id for r in await admin.list()] == ["new"]
        # the idle conversation's answer and its rating went with it: `teambridge feedback` counts the rest
        assert [(r.asker, r.user) for r in await store.feedback_rows(0, now[0] + 1)] == [("new", "root")]
        assert [u for u, a in answers if await store.get_answer(a) is not None] == ["new"]
        assert rows["old"].backend_id not in fake.conversations and rows["new"].backend_id in fake.conversations
        now[0] += 29 * 86400
        assert (await admin.sweep(30)).deleted == ()
        now[0] += 2 * 86400
        assert (await admin.sweep(30)).deleted == (rows["new"].backend_id,)
    await client.close()


async def test_reset_deletes_the_old_conversation_at_openai_only_where_the_assistant_says_so(fake, tmp_path):
    (tmp_path / "config.yaml").write_text(CONFIG.replace(
        "    instructions: You are a food expert.\n",
        "    instructions: You are a food expert.\n    reset_deletes: true\n"))
    await say(fake, tmp_path, "alice", "Basil?\n")
    await say(fake, tmp_path, "alice", "Seven squared?\n", assistant="math")
    food = (await listed(fake, tmp_path, "--assistant", "food"))[0]
    math = (await listed(fake, tmp_path, "--assistant", "math"))[0]

    assert await say(fake, tmp_path, "alice", "/reset\n") == "Started a new conversation with food.\n"
    assert food["id"] not in fake.conversations                  # reset_deletes: gone at OpenAI too
    assert await say(fake, tmp_path, "alice", "/reset\n", assistant="math") == \
        "Started a new conversation with math.\n"
    assert math["id"] in fake.conversations                      # the default: only a new conversation
    assert await listed(fake, tmp_path, "--user", "alice") == []
    # the answers of the deleted conversation went with it; those of the one only left behind stay
    async with SqliteStore(tmp_path / "teambridge.db") as store:
        rows = await store._fetch("SELECT assistant, conversation_id FROM answers")
    assert [tuple(r) for r in rows] == [("math", math["id"])]


async def test_delete_removes_the_conversations_vector_store_and_files_no_one_else_uses(fake, tmp_path):
    (tmp_path / "config.yaml").write_text(CONFIG.replace("assistants:\n", textwrap.dedent("""\
        assistants:
          docs:
            model: gpt-test
            tools:
              - type: file_search
        """)))
    (tmp_path / "shared.md").write_text("# Menu\nBasil soup on Mondays.\n")
    (tmp_path / "own.md").write_text("# Alice's notes\nNo coriander.\n")
    await say(fake, tmp_path, "alice", f"/attach {tmp_path / 'shared.md'}\n/attach {tmp_path / 'own.md'}\nRead these\n",
              assistant="docs")
    await say(fake, tmp_path, "bob", f"/attach {tmp_path / 'shared.md'}\nRead this\n", assistant="docs")
    before = set(fake.vector_stores)   # the assistant's knowledge store and one per conversation
    shared = next(f for f, v in fake.files.items() if v.obj["filename"] == "shared.md")
    own = next(f for f, v in fake.files.items() if v.obj["filename"] == "own.md")

    done = await cli(fake, tmp_path, "conversations", "delete", "--user", "alice", "--yes")
    assert done.code == 0, done.err
    assert done.out.strip() == "Deleted 1 conversation, 1 vector store, 1 file."
    assert len(before - set(fake.vector_stores)) == 1 and len(fake.vector_stores) == len(before) - 1
    assert own not in fake.files and shared in fake.files  # bob's vector store still holds the shared file
