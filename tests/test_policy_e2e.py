"""Who may use what, and what it costs — end to end.

Through the console: the real `teambridge` CLI as a subprocess against the stand-in OpenAI (tests/console_harness.py).
Through Slack and Discord: the real slack_bolt / discord.py adapters against their stand-ins, with the real
ChatService + SqliteStore + OpenAIBackend on the real AsyncOpenAI against the stand-in OpenAI.
"""
from __future__ import annotations

import asyncio
import json
import re
import textwrap
from pathlib import Path

import pytest
from openai import AsyncOpenAI

from core.backends.openai import OpenAIBackend
from core.config import load_config
from core.tools.registry import ToolRegistry
from tests.console_harness import openai_env, teambridge
from tests.fakes.openai_server import CodeRun, FakeOpenAI, ScriptedResponse, last_user_text

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

    assert "Can't read" in bad.out and "Traceback" not in bad.err
