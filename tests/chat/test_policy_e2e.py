"""Who may use what, and what it costs — end to end.

Through the console: the real `teambridge` CLI as a subprocess against the stand-in OpenAI (tests/console_harness.py).
Through Slack and Discord: the real slack_bolt / discord.py adapters against their stand-ins, with the real
ChatService + SqliteStore + OpenAIBackend on the real AsyncOpenAI against the stand-in OpenAI.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import re
import textwrap
from pathlib import Path

import pytest
from openai import AsyncOpenAI

from bots.discord.client import DiscordAdapter
from core.backends.openai.backend import OpenAIBackend
from core.config.schema import Config
from core.chat.service import ChatService
from core.store.sqlite import SqliteStore
from core.tools.registry import ToolRegistry
from core.admin.usage import usage_text
from tests.console_harness import openai_env, teambridge
from bots.standins.discord_server import FakeDiscord
from bots.standins.openai_server import CodeRun, FakeOpenAI, ScriptedResponse, last_user_text
from tests.fakes.slack_harness import running_bot
from bots.standins.slack_server import FakeSlack

# The price table of the test config, USD per 1M tokens — the costs below are computed by hand from it.
PRICES = {"input": 2.0, "cached_input": 0.5, "output": 8.0}
CI_SESSION = 0.03

CONFIG = f"""\
default_assistant: food
admins: [root]
prices:
  models:
    gpt-test: {{input: {PRICES['input']}, cached_input: {PRICES['cached_input']}, output: {PRICES['output']}}}
  code_interpreter_session: {CI_SESSION}
assistants:
  food:
    model: gpt-test
    instructions: You are a food expert.
    access:
      deny_users: [mallory]
  docs:
    model: gpt-test
    instructions: You answer from the handbook.
    access:
      allow_users: [alice]
  math:
    model: gpt-test
    instructions: You are a maths tutor.
    tools:
      - type: code_interpreter
slack: {{enabled: false}}
discord: {{enabled: false}}
"""


@pytest.fixture
async def fake():
    async with FakeOpenAI() as fake:
        yield fake


def write_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG + textwrap.dedent(extra))
    return path


async def chat(fake, tmp_path: Path, user: str, lines: str, *args: str):
    """`user` types `lines` into `teambridge chat`; returns what the terminal showed."""
    config = tmp_path / "config.yaml"
    if not config.exists():
        write_config(tmp_path)
    run = await teambridge("chat", "--config", str(config), "--user", user, *args, cwd=tmp_path, stdin=lines,
                           env=openai_env(fake, tmp_path))
    assert run.code == 0, run.err
    assert "Traceback" not in run.err, run.err
    return run


# ---- who may use which assistant ------------------------------------------------------------------------


async def test_user_not_on_the_allow_list_is_refused_and_the_model_is_never_called(fake, tmp_path):
    run = await chat(fake, tmp_path, "bob", "Where is the espresso machine?\n", "--assistant", "docs")
    assert run.out == "Sorry, you don't have access to the docs assistant.\n"
    assert fake.response_requests() == [] and fake.conversations == {}

    run = await chat(fake, tmp_path, "alice", "Where is the espresso machine?\n", "--assistant", "docs")
    assert run.out == "You said: Where is the espresso machine?\n"
    assert len(fake.response_requests()) == 1


async def test_denied_user_is_refused_and_others_are_answered(fake, tmp_path):
    run = await chat(fake, tmp_path, "mallory", "What goes with basil?\n", "--assistant", "food")
    assert run.out == "Sorry, you don't have access to the food assistant.\n"
    assert fake.response_requests() == []
    run = await chat(fake, tmp_path, "bob", "What goes with basil?\n", "--assistant", "food")
    assert run.out == "You said: What goes with basil?\n"


async def test_switching_to_an_assistant_one_may_not_use_is_refused(fake, tmp_path):
    run = await chat(fake, tmp_path, "bob", "/assistant docs\n", "--assistant", "food")
    assert "Sorry, you don't have access to the docs assistant." in run.out
    assert "You are now talking to docs" not in run.out


# ---- admin-only commands ------------------------------------------------------------------------------------


async def test_usage_command_is_refused_to_others_and_answered_for_admins(fake, tmp_path):
    fake.script(ScriptedResponse(text="Shakshuka.", input_tokens=100, output_tokens=20))
    run = await chat(fake, tmp_path, "bob", "What should I cook?\n/usage\n", "--assistant", "food")
    assert run.out == "Shakshuka.\nOnly admins can use “usage”.\n"

    run = await chat(fake, tmp_path, "root", "/usage by user today\n")
    assert run.out.startswith("Usage by user, ")
    assert re.search(r"\| bob\s+\|\s+1 \|\s+100 \|\s+0 \|\s+20 \|", run.out), run.out
    assert len(fake.response_requests()) == 1  # admin commands never reach the model


async def test_reload_command_is_refused_to_others_and_works_for_admins(fake, tmp_path):
    run = await chat(fake, tmp_path, "bob", "/reload\n")
    assert run.out == "Only admins can use “reload”.\n"
    run = await chat(fake, tmp_path, "root", "/reload\n")
    assert run.out == "Config reloaded.\n"


# ---- limits ----------------------------------------------------------------------------------------------------


async def test_third_message_within_a_minute_is_refused_with_the_wait(fake, tmp_path):
    write_config(tmp_path, """\
        limits:
          messages_per_minute: 2
        """)
    run = await chat(fake, tmp_path, "alice", "one\ntwo\nthree\n", "--assistant", "food")
    first, second, third = run.out.splitlines()
    assert (first, second) == ("You said: one", "You said: two")
    assert re.fullmatch(r"You've reached 2 messages per minute — try again in \d+ s\.", third), third
    assert len(fake.response_requests()) == 2
    # another user has a window of their own
    run = await chat(fake, tmp_path, "bob", "hello\n", "--assistant", "food")
    assert run.out == "You said: hello\n"


async def test_daily_token_budget_is_hit_and_stays_hit_after_a_restart(fake, tmp_path):
    write_config(tmp_path, """\
        limits:
          tokens_per_user_per_day: 100
        """)
    fake.script(ScriptedResponse(text="A long answer.", input_tokens=60, output_tokens=45))
    run = await chat(fake, tmp_path, "alice", "first\nsecond\n", "--assistant", "food")
    answer, refusal = run.out.splitlines()
    assert answer == "A long answer."
    assert refusal.startswith("You've used your daily budget of 100 tokens — it resets at midnight UTC (in ")
    # a new process reads today's totals from the database: still refused
    run = await chat(fake, tmp_path, "alice", "third\n", "--assistant", "food")
    assert run.out.startswith("You've used your daily budget of 100 tokens")
    assert len(fake.response_requests()) == 1
    # the budget is per user
    run = await chat(fake, tmp_path, "bob", "mine\n", "--assistant", "food")
    assert run.out == "You said: mine\n"


async def test_an_assistants_own_limit_replaces_the_global_one(fake, tmp_path):
    path = write_config(tmp_path, """\
        limits:
          messages_per_minute: 1
        """)
    text = path.read_text().replace("    instructions: You are a maths tutor.\n",
                                    "    instructions: You are a maths tutor.\n    limits:\n"
                                    "      messages_per_minute: 3\n")
    path.write_text(text)
    run = await chat(fake, tmp_path, "alice", "1+1\n2+2\n3+3\n4+4\n", "--assistant", "math")
    lines = run.out.splitlines()
    assert lines[:3] == ["You said: 1+1", "You said: 2+2", "You said: 3+3"]
    assert lines[3].startswith("You've reached 3 messages per minute")


# ---- usage and cost ---------------------------------------------------------------------------------------------

TURNS = {  # question -> (user, assistant, what the stand-in OpenAI reports for the answer)
    "pasta?": ("alice", "food", ScriptedResponse(text="Pasta.", input_tokens=1000, cached_tokens=200,
                                                 output_tokens=300)),
    "risotto?": ("alice", "food", ScriptedResponse(text="Risotto.", input_tokens=500, cached_tokens=0,
                                                   output_tokens=100)),
    "fib(20)?": ("bob", "math", ScriptedResponse(text="It is 6765.", code=CodeRun("print(6765)", logs="6765"),
                                                 input_tokens=2000, cached_tokens=1000, output_tokens=50)),
}


def by_hand(input_tokens: int, cached: int, output: int, sessions: int = 0) -> float:
    return ((input_tokens - cached) * PRICES["input"] + cached * PRICES["cached_input"]
            + output * PRICES["output"]) / 1e6 + sessions * CI_SESSION


def reported_by_the_stand_in(fake) -> dict[str, int]:
    usage = [r["usage"] for r in fake.responses.values()]
    return {"input": sum(u["input_tokens"] for u in usage),
            "cached": sum(u["input_tokens_details"]["cached_tokens"] for u in usage),
            "output": sum(u["output_tokens"] for u in usage)}


def table_row(out: str, key: str) -> list[str]:
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == key:
            return cells[1:]
    raise AssertionError(f"no row {key!r} in:\n{out}")


async def test_usage_table_and_json_totals_equal_what_openai_reported_and_cost_follows_the_price_table(fake,
                                                                                                      tmp_path):
    write_config(tmp_path)
    fake.responder = lambda body: TURNS[last_user_text(body)][2]
    runs = await asyncio.gather(*(chat(fake, tmp_path, user, f"{question}\n", "--assistant", assistant)
                                  for question, (user, assistant, _) in TURNS.items()))
    for run, (user, assistant, response) in zip(runs, TURNS.values()):
        assert response.text in run.out
    reported = reported_by_the_stand_in(fake)
    assert reported == {"input": 3500, "cached": 1200, "output": 450}

    def usage(*args: str):
        return teambridge("usage", "--config", str(tmp_path / "config.yaml"), *args, cwd=tmp_path,
                          env=openai_env(fake, tmp_path))
    table, as_json, days, bad = await asyncio.gather(
        usage("--by", "user", "--period", "1d"), usage("--by", "assistant", "--json"),
        usage("--by", "day", "--period", "7d"), usage("--period", "last tuesday"))

    alice_cost = by_hand(1000, 200, 300) + by_hand(500, 0, 100)
    bob_cost = by_hand(2000, 1000, 50, sessions=1)
    # columns: turns, input, cached, output, tool calls, ci sessions, cost USD
    assert table.code == 0, table.err
    assert table_row(table.out, "alice") == ["2", "1,500", "200", "400", "0", "0", f"{alice_cost:,.4f}"]
    assert table_row(table.out, "bob") == ["1", "2,000", "1,000", "50", "1", "1", f"{bob_cost:,.4f}"]
    assert table_row(table.out, "TOTAL") == ["3", f"{reported['input']:,}", f"{reported['cached']:,}",
                                             f"{reported['output']:,}", "1", "1", f"{alice_cost + bob_cost:,.4f}"]
    assert table.out.index("| bob") < table.out.index("| alice")  # most expensive first

    report = json.loads(as_json.out)
    rows = {r["key"]: r for r in report["rows"]}
    assert set(rows) == {"food", "math"}
    assert (rows["food"]["input_tokens"], rows["food"]["cached_tokens"], rows["food"]["output_tokens"]) == \
        (1500, 200, 400)
    assert rows["math"]["code_interpreter_sessions"] == 1 and rows["math"]["tool_calls"] == 1
    total = report["total"]
    assert (total["input_tokens"], total["cached_tokens"], total["output_tokens"]) == \
        (reported["input"], reported["cached"], reported["output"])
    assert total["cost_usd"] == pytest.approx(alice_cost + bob_cost, abs=1e-8)
    assert report["total_cost_usd"] == pytest.approx(alice_cost + bob_cost, abs=1e-8)
    assert report["unpriced_models"] == []

    [day] = [line for line in days.out.splitlines() if re.match(r"\| \d{4}-\d{2}-\d{2} ", line)]
    assert day.split("|")[2].strip() == "3"
    assert table_row(days.out, "TOTAL")[:4] == ["3", "3,500", "1,200", "450"]

    assert bad.code == 2 and "Can't read the period 'last tuesday'" in bad.err and "Traceback" not in bad.err


# ---- Slack: channels, DMs, admins, channel budget (real slack_bolt against the stand-in Slack) ---------------


def platform_config(tmp_path: Path, *, access: dict | None = None, limits: dict | None = None, **platforms):
    return Config(default_assistant="food", admins=["U9"], base_dir=tmp_path, database=str(tmp_path / "tb.db"),
                  limits=limits or {}, assistants={"food": {"name": "food", "model": "gpt-test",
                                                            "instructions": "You are a food expert.",
                                                            "access": access or {}}}, **platforms)


def openai_backend(fake: FakeOpenAI, config: Config) -> tuple[OpenAIBackend, AsyncOpenAI]:
    client = AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)
    return OpenAIBackend(client, ToolRegistry.from_config(config), max_retries=0), client


def with_usage_command(service: ChatService, store: SqliteStore) -> ChatService:
    """The admin `usage` command as bots/runtime.py's open_runtime registers it."""
    async def usage_command(msg, rest: str) -> str:
        return await usage_text(store, service.config.prices, rest.split())
    service.add_command("usage", usage_command)
    return service


@contextlib.asynccontextmanager
async def slack_bot(fake: FakeOpenAI, tmp_path: Path, config: Config):
    backend, client = openai_backend(fake, config)
    slack = await FakeSlack(users={"U1": "alice", "U2": "bob", "U9": "root"}).start()
    try:
        async with running_bot(tmp_path / "tb.db", backend, slack=slack, config=config) as bot:
            with_usage_command(bot.service, bot.store)
            yield bot
    finally:
        await slack.close()
        await backend.aclose()   # its HTTP sessions and the client


async def slack_answer(bot, channel: str, ts: str) -> str:
    def done():
        msgs = bot.slack.bot_messages(channel, ts)
        return msgs and not msgs[-1].streaming and bot.slack.thread_text(channel, ts)
    return await bot.slack.wait_for(done, what="the answer")


async def slack_ephemeral(bot, user: str, channel: str) -> str:
    found = await bot.slack.wait_for(lambda: [e for e in bot.slack.ephemerals
                                              if e["user"] == user and e["channel"] == channel], what="a notice")
    return found[-1]["text"]


async def test_slack_channel_outside_the_allow_list_and_dms_off_get_a_private_refusal(fake, tmp_path):
    config = platform_config(tmp_path, access={"allow_channels": ["C1"]}, slack={"allow_dms": False})
    async with slack_bot(fake, tmp_path, config) as bot:
        await bot.slack.user_says("C2", "<@UBOT> what goes with basil?", user="U1")
        assert await slack_ephemeral(bot, "U1", "C2") == "Sorry, the food assistant isn't available in this channel."
        await bot.slack.user_says("D1", "what goes with basil?", user="U1")
        assert "doesn't answer direct messages" in await slack_ephemeral(bot, "U1", "D1")
        assert fake.response_requests() == []
        ts = await bot.slack.user_says("C1", "<@UBOT> what goes with basil?", user="U1")
        assert await slack_answer(bot, "C1", ts) == "You said: what goes with basil?"
        await bot.adapter.wait_idle()
        assert bot.slack.bot_messages("C2") == [] and len(fake.response_requests()) == 1


async def test_slack_usage_command_is_for_admins_only(fake, tmp_path):
    async with slack_bot(fake, tmp_path, platform_config(tmp_path)) as bot:
        fake.script(ScriptedResponse(text="Pesto.", input_tokens=120, output_tokens=30))
        ts = await bot.slack.user_says("C1", "<@UBOT> basil?", user="U1")
        await slack_answer(bot, "C1", ts)
        await bot.slack.slash_command("usage today", user="U2")
        refused = await bot.slack.wait_for(lambda: bot.slack.responses, what="the reply")
        assert refused[-1]["text"] == "Only admins can use “usage”." and refused[-1]["response_type"] == "ephemeral"
        await bot.slack.slash_command("usage by user today", user="U9")
        await bot.slack.wait_for(lambda: len(bot.slack.responses) == 2, what="the table")
        table = bot.slack.responses[-1]["text"]
        assert "Usage by user" in table and re.search(r"U1\s+\|\s+1 \|\s+120 \|\s+0 \|\s+30 \|", table), table


async def test_slack_channel_budget_refuses_the_next_asker_in_that_channel_only(fake, tmp_path):
    config = platform_config(tmp_path, limits={"tokens_per_channel_per_day": 100})
    async with slack_bot(fake, tmp_path, config) as bot:
        fake.script(ScriptedResponse(text="A long recipe.", input_tokens=80, output_tokens=40))
        ts = await bot.slack.user_says("C1", "<@UBOT> a recipe please", user="U1")
        assert await slack_answer(bot, "C1", ts) == "A long recipe."
        await bot.slack.user_says("C1", "<@UBOT> me too", user="U2")
        assert (await slack_ephemeral(bot, "U2", "C1")).startswith(
            "This channel has used its daily budget of 100 tokens — it resets at midnight UTC")
        ts = await bot.slack.user_says("C2", "<@UBOT> me too", user="U2")
        assert await slack_answer(bot, "C2", ts) == "You said: me too"
        assert len(fake.response_requests()) == 2


# ---- Discord: roles, categories, DMs, /usage (real discord.py against the stand-in Discord) -----------------


@contextlib.asynccontextmanager
async def discord_bot(fake: FakeOpenAI, tmp_path: Path, make_config, *, category: str | None = None):
    """A guild with #general, #kitchen and #secret (in `category` when given), alice and an administrator."""
    discord = FakeDiscord()
    await discord.start()
    guild = discord.add_guild("Team", ("general", "kitchen", "secret"))
    if category:
        discord.channels[discord.channel_id(guild, "secret")]["parent_id"] = category
    alice, boss = discord.add_user("alice"), discord.add_user("boss", admin=True)
    admins_role = guild["roles"][1]["id"]
    config = make_config(admins_role)
    backend, client = openai_backend(fake, config)
    adapter = None
    try:
        async with SqliteStore(tmp_path / "tb.db") as store:
            service = with_usage_command(ChatService(config, store, {"openai": backend}), store)
            adapter = DiscordAdapter.from_env(service, discord.env() | {"TEAMBRIDGE_DB": str(tmp_path / "tb.db")},
                                              guild_ready_timeout=0.05)
            await adapter.start()
            yield discord, guild, alice, boss
    finally:
        if adapter is not None:
            await adapter.stop()
        await backend.aclose()   # its HTTP sessions and the client
        await discord.stop()


async def discord_reply(discord, channel: str, after: int = 0) -> str:
    def done():
        msgs = discord.messages_in(channel, by_bot=True)[after:]
        # still streaming while the text ends with the status ellipsis or the cursor
        return msgs and msgs[-1].content and not msgs[-1].content.endswith(("…", "▌")) and msgs[-1].content
    return await discord.wait_for(done, timeout=30)


async def test_discord_roles_and_a_denied_category(fake, tmp_path):
    category = "990000000000000001"

    def config(admins_role):
        return platform_config(tmp_path, access={"allow_roles": [admins_role], "deny_channels": [category]})

    async with discord_bot(fake, tmp_path, config, category=category) as (discord, guild, alice, boss):
        general = discord.channel_id(guild, "general")
        await discord.user_message(general, alice, "what goes with basil?", mention_bot=True)
        assert await discord_reply(discord, general) == \
            "Sorry, the food assistant is limited to certain roles, and you don't have one of them."
        assert fake.response_requests() == []

        await discord.user_message(general, boss, "what goes with basil?", mention_bot=True)
        assert await discord_reply(discord, general, after=1) == "You said: what goes with basil?"

        secret = discord.channel_id(guild, "secret")
        await discord.user_message(secret, boss, "what goes with basil?", mention_bot=True)
        assert await discord_reply(discord, secret) == "Sorry, the food assistant isn't available in this channel."
        assert len(fake.response_requests()) == 1


async def test_discord_dms_off_and_usage_for_administrators_only(fake, tmp_path):
    async with discord_bot(fake, tmp_path, lambda role: platform_config(tmp_path, discord={"allow_dms": False})) \
            as (discord, guild, alice, boss):
        dm = discord.dm_channel(alice)
        await discord.user_message(dm, alice, "hi")
        assert "doesn't answer direct messages" in await discord_reply(discord, dm)
        assert fake.response_requests() == []

        general = discord.channel_id(guild, "general")
        fake.script(ScriptedResponse(text="Pesto.", input_tokens=70, output_tokens=7))
        await discord.user_message(general, alice, "basil?", mention_bot=True)
        assert await discord_reply(discord, general) == "Pesto."

        rec = await discord.slash(general, alice, "usage", {"period": "today"})
        await discord.wait_for(lambda: rec.original_id and discord.messages[rec.original_id].content)
        refused = discord.messages[rec.original_id]
        assert refused.content == "Only admins can use “usage”." and refused.ephemeral

        rec = await discord.slash(general, boss, "usage", {"period": "today"})
        await discord.wait_for(lambda: rec.original_id and discord.messages[rec.original_id].content)
        table = discord.messages[rec.original_id].content
        assert "Usage by" in table and re.search(r"\|\s+1 \|\s+70 \|\s+0 \|\s+7 \|", table), table


async def test_discord_admin_resets_a_members_conversation_and_reload_is_admin_only(fake, tmp_path):
    def config(admins_role):
        base = platform_config(tmp_path)
        food = base.assistants["food"].model_copy(update={"scope": "channel_user"})
        return base.model_copy(update={"assistants": {"food": food}})

    async with discord_bot(fake, tmp_path, config) as (discord, guild, alice, boss):
        general = discord.channel_id(guild, "general")
        await discord.user_message(general, alice, "soup?", mention_bot=True)
        assert await discord_reply(discord, general) == "You said: soup?"

        rec = await discord.slash(general, alice, "reset", {"user": boss})
        await discord.wait_for(lambda: rec.original_id and discord.messages[rec.original_id].content)
        assert discord.messages[rec.original_id].content == "Only admins can reset someone else's conversation."

        rec = await discord.slash(general, boss, "reset", {"user": alice})
        await discord.wait_for(lambda: rec.original_id and discord.messages[rec.original_id].content)
        assert discord.messages[rec.original_id].content == "Reset " + alice["id"] + "'s conversation with food."
        assert discord.messages[rec.original_id].ephemeral

        shown = len(discord.messages_in(general, by_bot=True))
        await discord.user_message(general, alice, "stew?", mention_bot=True)
        assert await discord_reply(discord, general, after=shown) == "You said: stew?"
        first, second = [fake.conversation_of(r) for r in fake.response_requests()]
        assert first != second  # alice starts over

        rec = await discord.slash(general, alice, "reload")
        await discord.wait_for(lambda: rec.original_id and discord.messages[rec.original_id].content)
        assert discord.messages[rec.original_id].content == "Only admins can use “reload”."
