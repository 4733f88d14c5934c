"""Operating `teambridge run`: the log an operator reads, /metrics, /healthz and /readyz — the real CLI in a
subprocess, wired to the stand-in Slack, Discord and OpenAI."""
from __future__ import annotations

import json
import signal

from tests.run_harness import get, run_config, sample
from bots.standins.openai_server import FakeOpenAI, ScriptedResponse
from bots.standins.slack_server import FakeSlack

QUESTIONS = ("Best way to cook rice?", "What goes with kimchi?", "How long to rest a steak?")


async def ask_three(slack: FakeSlack, openai: FakeOpenAI) -> None:
    for question in QUESTIONS:
        openai.script(ScriptedResponse(text=f"Answer to: {question}", delta_size=8))
        ts = await slack.user_says("C1", f"<@{slack.bot_user_id}> {question}")
        await slack.wait_for(lambda: slack.thread_text("C1", ts).endswith(f"Answer to: {question}"), timeout=45)


async def test_one_log_line_per_answered_message_and_metrics_that_rise(slack, openai, run_processes):
    bot = await run_processes.new(openai, slack=slack, monitoring=True).start()
    url = await bot.monitoring_url()
    await slack.wait_connected(timeout=30)
    await bot.wait_running()
    status, before = await get(url + "/metrics")
    assert status == 200 and "# TYPE teambridge_answers_total counter" in before

    await ask_three(slack, openai)
    await bot.wait_log(r"(?s)(answered slack/food.*){3}")
    status, after = await get(url + "/metrics")
    assert status == 200

    # the log: exactly one line per answer, with its place, timings and tokens; no HTTP chatter, no text
    turns = [line for line in bot.lines if " answered slack/food " in line]
    assert len(turns) == 3, bot.log
    assert all("channel=C1 user=U1 " in line and "first_text=" in line and "total=" in line and "tokens=" in line
               for line in turns)
    assert "HTTP Request" not in bot.log
    assert not any(question in bot.log for question in QUESTIONS)  # message text only at DEBUG
    assert "will be unused" not in bot.log and " WARNING " not in bot.log, bot.log

    # the metrics rose by what happened
    labels = {"platform": "slack", "assistant": "food"}
    assert sample(before, "teambridge_answers_total", **labels) == 0
    assert sample(after, "teambridge_answers_total", outcome="answered", **labels) == 3
    assert sample(after, "teambridge_answer_seconds_count", **labels) == 3
    assert sample(after, "teambridge_first_text_seconds_count", **labels) == 3
    assert sample(after, "teambridge_tokens_total", kind="output", **labels) > 0
    assert sample(after, "teambridge_answers_in_flight", **labels) == 0
    assert sample(after, "teambridge_platform_connected", platform="slack") == 1

    assert await get(url + "/healthz") == (200, "database: ok\n")
    status, body = await get(url + "/readyz")
    assert status == 200 and "slack: connected" in body
    assert (await bot.stop(signal.SIGTERM))[0] == 0


async def test_json_log_lines_carry_the_answer_as_fields(slack, openai, run_processes):
    bot = await run_processes.new(openai, slack=slack, monitoring=True,
                                  extra_env={"TEAMBRIDGE_LOG_FORMAT": "json"}).start()
    await slack.wait_connected(timeout=30)
    await ask_three(slack, openai)
    await bot.wait_log(r'(?s)("outcome": "answered".*){3}')
    assert (await bot.stop(signal.SIGTERM))[0] == 0
    records = [json.loads(line) for line in bot.lines]  # every line is one JSON object
    turns = [r for r in records if r.get("outcome")]
    assert len(turns) == 3, bot.log
    for record in turns:
        assert record["level"] == "INFO" and record["platform"] == "slack" and record["assistant"] == "food"
        assert record["channel"] == "C1" and record["user"] == "U1"
        assert record["total_ms"] >= record["first_text_ms"] >= 0 and record["output_tokens"] > 0
    assert not any("HTTP Request" in r["message"] for r in records)


async def test_readyz_says_503_while_discord_is_down(openai, discord, run_processes):
    discord.add_guild("Team", ("general",))
    bot = await run_processes.new(openai, discord=discord, monitoring=True).start()
    url = await bot.monitoring_url()
    await bot.wait_running()
    status, body = await get(url + "/readyz")
    assert status == 200, body
    assert "voice will NOT" not in bot.log and " WARNING " not in bot.log, bot.log

    await discord.go_down()
    await discord.wait_for(lambda: not discord.connected())
    status, body = await get(url + "/readyz")
    assert status == 503 and "discord: disconnected" in body
    assert (await get(url + "/healthz"))[0] == 200  # the process itself is fine
    _, metrics = await get(url + "/metrics")
    assert sample(metrics, "teambridge_platform_connected", platform="discord") == 0


async def test_readyz_says_503_for_an_enabled_platform_without_credentials(slack, openai, run_processes):
    # Discord enabled in the config, but no DISCORD_BOT_TOKEN in the environment
    config = run_config(slack=True, discord=True, monitoring=True)
    bot = await run_processes.new(openai, slack=slack, config=config).start()
    url = await bot.monitoring_url()
    await bot.wait_running()
    status, body = await get(url + "/readyz")
    assert status == 503 and "slack: connected" in body and "discord: not started" in body
