"""`teambridge run` as a process: a user's answer survives a SIGTERM, and one cut off by kill -9 is marked afterwards."""
from __future__ import annotations

import asyncio
import signal

from bots.standins.openai_server import ScriptedResponse
from bots.standins.slack_server import FakeSlack

ANSWER = ("Slow-cooked ragù takes time. " * 20).strip()  # 579 characters


async def first_text_shown(slack: FakeSlack, ts: str) -> None:
    await slack.wait_for(lambda: any(m.text for m in slack.bot_messages("C1", ts)), timeout=45)


async def test_sigterm_lets_the_answer_in_flight_finish(slack, openai, run_processes):
    openai.script(ScriptedResponse(text=ANSWER, delta_size=20, delay=0.03))
    bot = await run_processes.running(openai, slack=slack, grace=20)
    ts = await slack.user_says("C1", f"<@{slack.bot_user_id}> how long for a ragù?")
    await first_text_shown(slack, ts)
    code, err = await bot.stop(signal.SIGTERM)
    assert code == 0, err
    assert slack.thread_text("C1", ts) == ANSWER


async def test_sigterm_past_the_grace_period_marks_the_answer_interrupted(slack, openai, run_processes):
    openai.script(ScriptedResponse(text=ANSWER, delta_size=5, delay=0.2))  # ~23 s: longer than the grace
    bot = await run_processes.running(openai, slack=slack, grace=0.5)
    ts = await slack.user_says("C1", f"<@{slack.bot_user_id}> tell me everything")
    await first_text_shown(slack, ts)
    code, err = await bot.stop(signal.SIGTERM)
    assert code == 0, err
    shown = slack.thread_text("C1", ts)
    assert "cut off" in shown and shown.startswith("Slow-cooked")


async def test_an_answer_cut_off_by_a_crash_is_marked_on_the_next_start(slack, openai, run_processes):
    openai.script(ScriptedResponse(text=ANSWER, delta_size=5, delay=0.2))
    bot = await run_processes.running(openai, slack=slack, grace=5)
    ts = await slack.user_says("C1", f"<@{slack.bot_user_id}> tell me everything")
    await first_text_shown(slack, ts)
    await asyncio.sleep(1)  # the answer is well under way
    await bot.stop(signal.SIGKILL)
    before = slack.thread_text("C1", ts)
    assert "cut off" not in before  # the crash left a half answer behind

    restarted = await run_processes.running(openai, slack=slack, grace=5)
    await slack.wait_for(lambda: "cut off" in slack.thread_text("C1", ts), timeout=45)
    shown = slack.thread_text("C1", ts)
    assert shown.startswith(before.rstrip(" ▌").split("\n")[0][:20])
    await restarted.stop(signal.SIGTERM)
