"""Three `teambridge run` processes on one PostgreSQL database, against the stand-in Slack and OpenAI: Slack
spreads its Socket Mode envelopes over the three connections (and retries land on another process)."""
from __future__ import annotations

import asyncio
import signal
from contextlib import asynccontextmanager

import asyncpg
import pytest

from bots.standins.openai_server import FakeOpenAI, ScriptedResponse
from bots.standins.slack_server import FakeSlack
from tests.fakes.slack_harness import answered
from tests.run_harness import RunProcess


@asynccontextmanager
async def three_processes(tmp_path, postgres_url, env: dict[str, str] | None = None, slack: FakeSlack | None = None):
    async with FakeOpenAI() as openai:
        slack = slack or FakeSlack()
        await slack.start()
        slack.spread = True
        procs: list[RunProcess] = []
        try:
            for i in range(3):
                home = tmp_path / f"p{i}"
                home.mkdir()
                procs.append(RunProcess(home, openai, slack=slack, grace=5,
                                        extra_env={"TEAMBRIDGE_DB": postgres_url, "TEAMBRIDGE_INSTANCE": f"p{i}",
                                                   **(env or {})}))
            # one after the other: the first migrates, the others find the schema in place
            for proc in procs:
                await (await proc.start()).wait_running(timeout=60)
            await slack.wait_connected(timeout=60, count=3)
            yield slack, openai, procs
        finally:
            for proc in procs:
                await proc.kill()
            await slack.close()


@pytest.fixture
async def three(tmp_path, postgres_url):
    async with three_processes(tmp_path, postgres_url) as running:
        yield running


def answers(slack: FakeSlack, channel: str, ts: str) -> list[str]:
    """The bot's top messages in the thread (one per answer; a long answer would continue in more)."""
    return [m.text for m in slack.bot_messages(channel, ts)]


async def test_events_and_their_retries_spread_over_three_processes_are_answered_once(three):
    slack, openai, procs = three
    mentions = {}
    for i in range(9):   # each mention arrives twice (app_mention + message.channels): 18 envelopes, round-robin
        channel = f"C{i}"
        mentions[channel] = await slack.user_says(channel, f"<@{slack.bot_user_id}> dish number {i}?")
    for channel, ts in mentions.items():
        await slack.wait_for(lambda c=channel, t=ts: "You said" in slack.thread_text(c, t)
                             and not slack.thread_text(c, t).endswith("▌"), timeout=30)
    # Slack retries the first envelope of each (as if the ack was late): another process gets it
    for channel, ts in list(mentions.items())[:3]:
        body = slack.event_callback(slack._event("AppMentionPayload", user="U1", text="retry", ts=ts, event_ts=ts,
                                                 channel=channel, team=slack.team_id))
        await slack.deliver(body, retry_attempt=1)
    await asyncio.sleep(2)   # time enough for a wrong second answer to show
    for i, (channel, ts) in enumerate(mentions.items()):
        assert answers(slack, channel, ts) == [f"You said: dish number {i}?"], (channel, answers(slack, channel, ts))
    assert len(openai.response_requests()) == 9
    for proc in procs:
        code, log = await proc.stop(signal.SIGTERM)
        assert code == 0, log


async def test_a_thread_keeps_one_conversation_whichever_process_gets_its_messages(three):
    slack, openai, procs = three
    ts = await slack.user_says("C1", f"<@{slack.bot_user_id}> soup for winter?")
    await slack.wait_for(lambda: "You said: soup for winter?" in slack.thread_text("C1", ts), timeout=30)
    for n in range(4):   # follow-ups without a mention: the thread is the bot's on every process
        await slack.user_says("C1", f"and number {n}?", thread_ts=ts)
        await slack.wait_for(lambda n=n: f"You said: and number {n}?" in slack.thread_text("C1", ts), timeout=30)
    conversations = {openai.conversation_of(r) for r in openai.response_requests()}
    assert len(conversations) == 1 and len(openai.response_requests()) == 5


async def test_two_messages_of_one_conversation_at_once_on_two_processes_are_answered_in_turn(three):
    slack, openai, procs = three
    ts = await slack.user_says("C1", f"<@{slack.bot_user_id}> start")
    await slack.wait_for(lambda: "You said: start" in slack.thread_text("C1", ts), timeout=30)
    openai.script(ScriptedResponse(text="first answer, slowly", delta_size=2, delay=0.05),
                  ScriptedResponse(text="second answer"))
    await asyncio.gather(slack.user_says("C1", "one?", thread_ts=ts), slack.user_says("C1", "two?", thread_ts=ts))
    await slack.wait_for(lambda: "second answer" in slack.thread_text("C1", ts)
                         and "first answer, slowly" in slack.thread_text("C1", ts), timeout=30)
    # the Conversations API refuses a second response while one runs: here the second started after the first
    assert openai.max_concurrent_per_conversation == 1
    requests = openai.response_requests()
    assert len(requests) == 3 and len({openai.conversation_of(r) for r in requests}) == 1
    text = slack.thread_text("C1", ts)
    assert text.index("first answer, slowly") < text.index("second answer")


CUT = "This answer was cut off"


async def test_kill_9_of_one_process_mid_answer_its_reply_is_marked_by_another_after_the_lease(
        tmp_path, postgres_url):
    # A short lease (documented: TEAMBRIDGE_LEASE_SECONDS) so the survivors notice the death within seconds.
    async with three_processes(tmp_path, postgres_url, env={"TEAMBRIDGE_LEASE_SECONDS": "2"}) as (slack, openai, procs):
        openai.script(ScriptedResponse(text="A long braise starts with browning the meat. " * 40, delta_size=10,
                                       delay=0.2))
        slow = await slack.user_says("C1", f"<@{slack.bot_user_id}> how do I braise?")
        await slack.wait_for(lambda: "A long braise" in slack.thread_text("C1", slow), timeout=30)
        conn = await asyncpg.connect(postgres_url)
        try:
            owners = [r["owner"] for r in await conn.fetch("SELECT owner FROM inflight")]
        finally:
            await conn.close()
        assert len(owners) == 1, owners   # the reply being streamed belongs to the process streaming it
        victim = procs[int(owners[0].removeprefix("p"))]
        await victim.stop(signal.SIGKILL)
        cut_text = slack.thread_text("C1", slow)
        assert CUT not in cut_text

        # the others answer as usual meanwhile (Slack keeps spreading over the two connections left)
        others = [p for p in procs if p is not victim]
        asked = {}
        for i in range(4):
            asked[f"C{10 + i}"] = await slack.user_says(f"C{10 + i}", f"<@{slack.bot_user_id}> pie number {i}?")
        for i, (channel, ts) in enumerate(asked.items()):
            await slack.wait_for(lambda c=channel, t=ts, i=i: f"You said: pie number {i}?" in slack.thread_text(c, t)
                                 and not slack.thread_text(c, t).endswith("▌"), timeout=30)
        # after the lease ran out, one survivor marks the dead process's reply as cut off, once
        await slack.wait_for(lambda: CUT in slack.thread_text("C1", slow), timeout=30)
        await asyncio.sleep(1.5)   # a sweep of the other survivor, time enough for a second mark to show
        text = slack.thread_text("C1", slow)
        assert text.count(CUT) == 1 and text.startswith("A long braise") and "▌" not in text, text[-200:]
        assert len(openai.response_requests()) == 5
        for i, (channel, ts) in enumerate(asked.items()):
            assert answers(slack, channel, ts) == [f"You said: pie number {i}?"]
        logs = []
        for proc in others:
            code, log = await proc.stop(signal.SIGTERM)
            assert code == 0, log
            logs.append(log)
        assert sum("marked 1 replies cut off by a process that stopped" in log for log in logs) == 1, logs


async def test_fifty_mentions_at_once_over_three_processes_provoke_no_429_and_every_answer_is_whole(
        tmp_path, postgres_url):
    # The stand-in enforces Slack's tiers per app per workspace over a real minute: chat.startStream and
    # chat.stopStream 20, chat.update 50, ... The three processes split each budget through the database.
    slack = FakeSlack(rate_minute=60.0, retry_after=1)
    async with three_processes(tmp_path, postgres_url, slack=slack) as (slack, openai, procs):
        n = 50
        roots = await asyncio.gather(*(slack.user_says(f"C{i:02d}", f"<@{slack.bot_user_id}> recipe number {i}?",
                                                       user=("U1", "U2")[i % 2]) for i in range(n)))

        def whole(i: int, ts: str) -> bool:
            return answered(slack, f"C{i:02d}", ts, f"You said: recipe number {i}?")()
        await slack.wait_for(lambda: all(whole(i, ts) for i, ts in enumerate(roots)), timeout=55,
                             what="every answer, whole")
        assert slack.rate_limited == []                       # zero 429s, over all three processes
        for i, ts in enumerate(roots):
            assert answers(slack, f"C{i:02d}", ts) == [f"You said: recipe number {i}?"]
        assert len(openai.response_requests()) == n
        served = [log for log in (proc.log for proc in procs)]
        for proc in procs:
            code, log = await proc.stop(signal.SIGTERM)
            assert code == 0, log
        assert all("Traceback" not in log for log in served)
