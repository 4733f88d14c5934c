"""`teambridge run` as a process: a user's answer survives a SIGTERM, and one cut off by kill -9 is marked afterwards."""
from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.console_harness import REPO
from bots.standins.openai_server import FakeOpenAI, ScriptedResponse
from bots.standins.slack_server import FakeSlack

CONFIG = """
default_assistant: food
shutdown_grace_seconds: {grace}
assistants:
  food:
    model: gpt-4.1-mini
    instructions: You are a food expert.
slack:
  enabled: true
  mode: socket
discord:
  enabled: false
"""
ANSWER = ("Slow-cooked ragù takes time. " * 20).strip()  # 579 characters


STARTED: list[asyncio.subprocess.Process] = []


class Bot:
    """The real CLI in a subprocess, wired to the stand-in Slack and OpenAI."""

    def __init__(self, tmp_path: Path, slack: FakeSlack, openai: FakeOpenAI, grace: float) -> None:
        self.config = tmp_path / "config.yaml"
        self.config.write_text(CONFIG.format(grace=grace))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SLACK_", "DISCORD_"))}
        self.env.update(PYTHONPATH=str(REPO), OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=openai.base_url,
                        SLACK_BOT_TOKEN="xoxb-test", SLACK_APP_TOKEN="xapp-test", SLACK_API_URL=slack.api_url,
                        TEAMBRIDGE_DB=str(tmp_path / "tb.db"))
        self.cwd = tmp_path
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, slack: FakeSlack) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bots.app", "run", "--config", str(self.config), cwd=self.cwd, env=self.env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        STARTED.append(self.proc)
        await slack.wait_connected(timeout=60)

    async def stop(self, sig: int) -> tuple[int, str]:
        assert self.proc is not None
        self.proc.send_signal(sig)
        _, err = await asyncio.wait_for(self.proc.communicate(), 30)
        return self.proc.returncode, err.decode()


@pytest.fixture
async def stand_ins():
    async with FakeOpenAI() as openai:
        slack = await FakeSlack().start()
        try:
            yield slack, openai
        finally:
            for proc in STARTED:  # a failed assertion must not leave a bot running
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            STARTED.clear()
            await slack.close()


async def first_text_shown(slack: FakeSlack, ts: str) -> None:
    await slack.wait_for(lambda: any(m.text for m in slack.bot_messages("C1", ts)), timeout=45)


async def test_sigterm_lets_the_answer_in_flight_finish(tmp_path, stand_ins):
    slack, openai = stand_ins
    openai.script(ScriptedResponse(text=ANSWER, delta_size=20, delay=0.03))
    bot = Bot(tmp_path, slack, openai, grace=20)
    await bot.start(slack)
    ts = await slack.user_says("C1", f"<@{slack.bot_user_id}> how long for a ragù?")
    await first_text_shown(slack, ts)
    code, err = await bot.stop(signal.SIGTERM)
    assert code == 0, err
    assert slack.thread_text("C1", ts) == ANSWER


async def test_sigterm_past_the_grace_period_marks_the_answer_interrupted(tmp_path, stand_ins):
    slack, openai = stand_ins
    openai.script(ScriptedResponse(text=ANSWER, delta_size=5, delay=0.2))  # ~23 s: longer than the grace
    bot = Bot(tmp_path, slack, openai, grace=0.5)
    await bot.start(slack)
    ts = await slack.user_says("C1", f"<@{slack.bot_user_id}> tell me everything")
    await first_text_shown(slack, ts)
    code, err = await bot.stop(signal.SIGTERM)
    assert code == 0, err
    shown = slack.thread_text("C1", ts)
    assert "cut off" in shown and shown.startswith("Slow-cooked")


async def test_an_answer_cut_off_by_a_crash_is_marked_on_the_next_start(tmp_path, stand_ins):
    slack, openai = stand_ins
    openai.script(ScriptedResponse(text=ANSWER, delta_size=5, delay=0.2))
    bot = Bot(tmp_path, slack, openai, grace=5)
    await bot.start(slack)
    ts = await slack.user_says("C1", f"<@{slack.bot_user_id}> tell me everything")
    await first_text_shown(slack, ts)
    await asyncio.sleep(1)  # the answer is well under way
    await bot.stop(signal.SIGKILL)
    before = slack.thread_text("C1", ts)
    assert "cut off" not in before  # the crash left a half answer behind

    restarted = Bot(tmp_path, slack, openai, grace=5)
    await restarted.start(slack)
    await slack.wait_for(lambda: "cut off" in slack.thread_text("C1", ts), timeout=45)
    shown = slack.thread_text("C1", ts)
    assert shown.startswith(before.rstrip(" ▌").split("\n")[0][:20])
    await restarted.stop(signal.SIGTERM)
