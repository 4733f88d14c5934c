"""`teambridge run` with several answers in flight on Slack and Discord at once, stopped by SIGTERM or killed:
every reply ends finished or marked as cut off, none keeps the streaming cursor, none is marked twice, and
the log says what really happened."""
from __future__ import annotations

import signal

import pytest

from core.reply.stream import CURSOR
from bots.standins.discord_server import FakeDiscord
from bots.standins.openai_server import FakeOpenAI, ScriptedResponse
from bots.standins.slack_server import FakeSlack
from tests.run_harness import RunProcess, RunProcesses

CUT = "cut off"
SLACK_CHANNELS = ("C1", "C2", "C3")
DISCORD_CHANNELS = ("general", "kitchen", "garden")
SHORT = ("Slow-cooked ragù takes time. " * 20).strip()       # 579 characters
LONG = "\n".join(f"Step {i}: stir the sauce and taste it again." for i in range(60))  # ~2,800: two Discord parts


class Stage:
    def __init__(self, slack: FakeSlack, discord: FakeDiscord, openai: FakeOpenAI) -> None:
        self.slack, self.discord, self.openai = slack, discord, openai
        self.guild = discord.add_guild("Team", DISCORD_CHANNELS)
        self.alice = discord.add_user("alice")
        self.slack_threads: list[tuple[str, str]] = []
        self.discord_asks: list[str] = []

    def channel(self, name: str) -> str:
        return self.discord.channel_id(self.guild, name)

    async def ask_everywhere(self) -> None:
        for ch in SLACK_CHANNELS:
            self.slack_threads.append((ch, await self.slack.user_says(ch, f"<@{self.slack.bot_user_id}> recipe?")))
        for name in DISCORD_CHANNELS:
            self.discord_asks.append(await self.discord.user_message(self.channel(name), self.alice, "recipe?",
                                                                     mention_bot=True))

    def slack_replies(self) -> list[list[str]]:
        return [[m.text for m in self.slack.bot_messages(ch, ts)] for ch, ts in self.slack_threads]

    def discord_replies(self) -> list[list[str]]:
        return [[m.content for m in self.discord.messages_in(self.channel(name), by_bot=True)]
                for name in DISCORD_CHANNELS]

    def replies(self) -> list[list[str]]:
        return self.slack_replies() + self.discord_replies()

    async def all_under_way(self) -> None:
        await self.discord.wait_for(lambda: all(parts and parts[0].strip(CURSOR).strip() for parts in self.replies()),
                                    timeout=30)


@pytest.fixture
def stage(slack, discord, openai) -> Stage:
    return Stage(slack, discord, openai)


async def run(processes: RunProcesses, stage: Stage, grace: float) -> RunProcess:
    """`teambridge run` on both platforms, on the test's one database (every start sees the last one's)."""
    return await processes.running(stage.openai, slack=stage.slack, discord=stage.discord, grace=grace)


def assert_settled(parts: list[str]) -> None:
    assert parts, "no reply at all"
    for text in parts:
        assert CURSOR not in text, text[-80:]
        assert text.count(CUT) <= 1, text[-200:]


async def test_sigterm_lets_every_answer_in_flight_finish(stage, run_processes):
    stage.openai.responder = lambda body: ScriptedResponse(text=SHORT, delta_size=20, delay=0.1)   # ~3 s each
    bot = await run(run_processes, stage, grace=30)
    await stage.ask_everywhere()
    await stage.all_under_way()
    code, log = await bot.stop(signal.SIGTERM)
    assert code == 0, log
    for parts in stage.replies():
        assert_settled(parts)
        assert "".join(parts) == SHORT
    assert "letting 6 answer(s) in flight finish" in log and "6 answer(s) finished" in log
    assert "Session is closed" not in log and "Traceback" not in log


async def test_sigterm_past_the_grace_period_marks_every_answer_once(stage, run_processes):
    stage.openai.responder = lambda body: ScriptedResponse(text=SHORT, delta_size=5, delay=0.2)    # ~23 s each
    bot = await run(run_processes, stage, grace=1)
    await stage.ask_everywhere()
    await stage.all_under_way()
    code, log = await bot.stop(signal.SIGTERM)
    assert code == 0, log
    for parts in stage.replies():
        assert_settled(parts)
        assert CUT in parts[-1] and parts[-1].startswith("Slow-cooked")
    assert "6 answer(s) did not finish within the grace period: 6 marked as cut off" in log, log
    assert "Session is closed" not in log and "Traceback" not in log
    # nothing was left for the next start to mark again
    before = stage.replies()
    again = await run(run_processes, stage, grace=1)
    code, log = await again.stop(signal.SIGTERM)
    assert code == 0 and "interrupted replies from the last run" not in log
    assert stage.replies() == before


async def test_after_kill_9_the_next_start_marks_only_the_part_that_was_cut(stage, run_processes):
    def respond(body):
        return ScriptedResponse(text=LONG, delta_size=40, delay=0.25)   # Discord part 1 done after ~12 s
    stage.openai.responder = respond
    bot = await run(run_processes, stage, grace=5)
    await stage.ask_everywhere()
    await stage.discord.wait_for(lambda: all(len(parts) >= 2 for parts in stage.discord_replies()), timeout=60)
    await bot.stop(signal.SIGKILL)
    crashed = stage.replies()
    assert not any(CUT in text for parts in crashed for text in parts)
    assert any(CURSOR in parts[-1] for parts in crashed)   # the crash left replies mid-stream

    again = await run(run_processes, stage, grace=5)
    await stage.discord.wait_for(lambda: all(CUT in parts[-1] for parts in stage.replies()), timeout=30)
    code, log = await again.stop(signal.SIGTERM)
    assert code == 0, log
    assert "marked 3 interrupted replies from the last run" in log   # once per platform: 3 on each
    for before, after in zip(crashed, stage.replies()):
        assert_settled(after)
        cut = len(before) - 1
        assert after[:cut] == before[:cut]                # finished parts are left alone
        assert after[cut].startswith(before[cut].split(CURSOR)[0].rstrip()[:40])
        # the notice is in the cut part, or right below it when that part is full
        assert sum(text.count(CUT) for text in after) == 1 and CUT in "".join(after[cut:])
    assert "Traceback" not in log
