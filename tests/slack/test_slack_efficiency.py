"""What a mention costs in Slack Web API calls before it reaches the model (issue 7's benchmark findings).

Real slack_bolt/slack_sdk against the stand-in Slack; the model is ScriptedBackend (a fake of our own port).
Every assertion is on what the stand-in Slack saw: how many users.info and auth.test calls, over how many
TCP connections, and that every person still got their answer with their name known.
"""
from __future__ import annotations

import asyncio

from core.model import Completed, TextDelta, Usage
from bots.slack.ratelimit import RateBudget, make_client
from bots.slack.users import UserDirectory
from tests.fakes.slack_harness import answered, make_config, running_bot
from bots.standins.slack_server import FakeSlack
from tests.support.ports import ScriptedBackend


def answer(text: str) -> list:
    return [TextDelta(text), Completed(Usage(10, 0, 5))]


async def mention_everywhere(slack: FakeSlack, channels: list[str], *, user: str = "U1") -> list[str]:
    """`user` mentions the bot in every channel at once (each arrives as app_mention + message copy)."""
    return list(await asyncio.gather(*(slack.user_says(c, "<@UBOT> hi", user=user) for c in channels)))


async def test_twenty_simultaneous_mentions_by_one_person_cost_one_users_info(tmp_path):
    backend = ScriptedBackend(*(answer("hello") for _ in range(20)))
    async with running_bot(tmp_path / "db", backend) as bot:
        channels = [f"C{i:02d}" for i in range(20)]
        stamps = await mention_everywhere(bot.slack, channels)
        for channel, ts in zip(channels, stamps):
            await bot.slack.wait_for(answered(bot.slack, channel, ts, "hello"), what=f"answer in {channel}")
        await bot.adapter.wait_idle()
        assert len(bot.slack.calls_to("users.info")) == 1
        assert len(backend.turns) == 20                      # each mention answered once, none twice
        assert {c["user_name"] for c in backend.conversations} == {"alice"}
        assert all(len(bot.slack.bot_messages(c)) == 1 for c in channels)


async def test_each_person_is_looked_up_once_not_once_per_delivery(tmp_path):
    backend = ScriptedBackend()
    async with running_bot(tmp_path / "db", backend) as bot:
        first = await bot.slack.user_says("C1", "<@UBOT> from alice", user="U1")
        second = await bot.slack.user_says("C2", "<@UBOT> from bob", user="U2")
        await bot.slack.wait_for(answered(bot.slack, "C1", first, "You said: from alice"), what="alice's answer")
        await bot.slack.wait_for(answered(bot.slack, "C2", second, "You said: from bob"), what="bob's answer")
        # alice again, later, in a thread the bot owns: no mention needed, and no new lookup
        again = await bot.slack.user_says("C1", "and more", user="U1", thread_ts=first)
        await bot.slack.wait_for(lambda: "You said: and more" in bot.slack.thread_text("C1", first), what="reply")
        await bot.adapter.wait_idle()
        assert sorted(c["user"] for c in bot.slack.calls_to("users.info")) == ["U1", "U2"]
        assert [t.user_id for t in backend.turns] == ["U1", "U2", "U1"]
        assert again != first


async def test_messages_the_bot_does_not_answer_cost_no_users_info(tmp_path):
    backend = ScriptedBackend()
    async with running_bot(tmp_path / "db", backend) as bot:
        await bot.slack.user_says("C1", "lunch anyone?", user="U1")                 # not addressed
        await bot.slack.user_says("C1", "in a thread", user="U2", thread_ts="1699999999.000001")  # not ours
        ts = await bot.slack.user_says("C1", "<@UBOT> hi", user="U1")
        await bot.slack.wait_for(answered(bot.slack, "C1", ts, "You said: hi"), what="the answer")
        await bot.adapter.wait_idle()
        assert [c["user"] for c in bot.slack.calls_to("users.info")] == ["U1"]
        assert len(backend.turns) == 1


async def test_a_person_slack_will_not_describe_is_answered_and_not_asked_about_again(tmp_path):
    backend = ScriptedBackend()
    async with running_bot(tmp_path / "db", backend) as bot:
        for channel in ("C1", "C2"):
            ts = await bot.slack.user_says(channel, "<@UBOT> hi", user="UOTHERORG")  # users.info: user_not_found
            await bot.slack.wait_for(answered(bot.slack, channel, ts, "You said: hi"), what="the answer")
        await bot.adapter.wait_idle()
        assert len(bot.slack.calls_to("users.info")) == 1
        assert [t.user_id for t in backend.turns] == ["UOTHERORG", "UOTHERORG"]


async def test_auth_test_is_asked_once_at_start_not_per_event(tmp_path):
    backend = ScriptedBackend()
    async with running_bot(tmp_path / "db", backend) as bot:
        # a burst right after start-up: before, every event that came before bolt's own first auth.test
        # returned called auth.test again
        channels = [f"C{i}" for i in range(8)]
        stamps = await mention_everywhere(bot.slack, channels, user="U2")
        for channel, ts in zip(channels, stamps):
            await bot.slack.wait_for(answered(bot.slack, channel, ts, "You said: hi"), what=f"answer in {channel}")
        await bot.adapter.wait_idle()
        assert len(bot.slack.calls_to("auth.test")) == 1
        assert len(backend.turns) == 8


async def test_web_api_calls_reuse_connections(tmp_path):
    backend = ScriptedBackend()
    async with running_bot(tmp_path / "db", backend) as bot:
        for i in range(3):  # one after the other: nothing forces a second connection
            ts = await bot.slack.user_says(f"C{i}", "<@UBOT> hi", user="U1")
            await bot.slack.wait_for(answered(bot.slack, f"C{i}", ts, "You said: hi"), what="the answer")
            await bot.adapter.wait_idle()
        calls = [(m, peer) for m, peer in bot.slack.call_peers if m != "apps.connections.open"]
        connections = {peer for _, peer in calls}
        # before: a new aiohttp session, so a new TCP connection, for each of these calls
        assert len(calls) >= 9 and len(connections) <= 3, (len(calls), len(connections))


async def test_slash_commands_and_mentions_share_the_lookup(tmp_path):
    backend = ScriptedBackend()
    async with running_bot(tmp_path / "db", backend, config=make_config()) as bot:
        ts = await bot.slack.user_says("C1", "<@UBOT> hi", user="U2")
        await bot.slack.wait_for(answered(bot.slack, "C1", ts, "You said: hi"), what="the answer")
        await bot.slack.slash_command("help", user="U2")
        await bot.slack.wait_for(lambda: bot.slack.responses, what="the help text")
        await bot.adapter.wait_idle()
        assert len(bot.slack.calls_to("users.info")) == 1


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_renamed_person_is_seen_under_the_new_name_after_the_ttl():
    async with FakeSlack() as slack:
        client = make_client("xoxb-test", slack.api_url, RateBudget())
        clock = Clock()
        users = UserDirectory(client, ttl=3600, clock=clock)
        assert (await users.author("U1", team="T0TEAM")).name == "alice"
        slack.users["U1"] = "alicia"
        clock.now += 3599
        assert (await users.author("U1", team="T0TEAM")).name == "alice"      # cached
        clock.now += 2
        assert (await users.author("U1", team="T0TEAM")).name == "alicia"     # expired: asked again
        assert len(slack.calls_to("users.info")) == 2


class HeldUsersInfo:
    """The real client, with users.info answering only once `release` is set (Slack slow to answer)."""

    def __init__(self, client) -> None:
        self._client = client
        self.release = asyncio.Event()

    async def users_info(self, **kwargs):
        await self.release.wait()
        return await self._client.users_info(**kwargs)


async def renamed_an_hour_later(slack) -> tuple[HeldUsersInfo, UserDirectory]:
    """alice, known to the directory, renamed herself "alicia" an hour ago; Slack is slow to answer from now on."""
    client = HeldUsersInfo(make_client("xoxb-test", slack.api_url, RateBudget()))
    clock = Clock()
    users = UserDirectory(client, ttl=3600, clock=clock)
    client.release.set()
    assert (await users.author("U1", team="T0TEAM", wait=0.25)).name == "alice"
    slack.users["U1"] = "alicia"
    clock.now += 3601
    client.release.clear()
    return client, users


async def test_a_known_persons_message_after_the_ttl_goes_on_with_the_name_known_and_refreshes_it():
    # Only someone never seen costs a message the users.info round trip: after the hour, a message goes on with
    # the name last seen (no wait at all) while the look-up refreshes it; a command (admin rights) still waits.
    async with FakeSlack() as slack:
        client, users = await renamed_an_hour_later(slack)
        message = await users.author("U1", team="T0TEAM", wait=0.25)
        assert message.name == "alice"         # answered while the look-up is held: the message did not wait
        command = asyncio.ensure_future(users.author("U1", team="T0TEAM"))
        await asyncio.sleep(0)
        assert not command.done()              # a command waits for the fresh answer
        client.release.set()
        assert (await command).name == "alicia"
        assert (await users.author("U1", team="T0TEAM", wait=0.25)).name == "alicia"   # refreshed for the next one
        assert len(slack.calls_to("users.info")) == 2      # one refresh, shared by the message and the command


async def test_a_known_persons_message_after_the_ttl_refreshes_the_name_by_itself():
    # Someone who only sends messages (never a command) still gets their new name: the message that went on with
    # the old one started the look-up, and the next message carries its answer.
    async with FakeSlack() as slack:
        client, users = await renamed_an_hour_later(slack)
        assert (await users.author("U1", team="T0TEAM", wait=0.25)).name == "alice"   # did not wait
        client.release.set()
        name = "alice"
        for _ in range(1000):                  # the refresh the message started, answered in the background
            name = (await users.author("U1", team="T0TEAM", wait=0.25)).name
            if name == "alicia":
                break
            await asyncio.sleep(0.01)
        assert name == "alicia"
        assert len(slack.calls_to("users.info")) == 2   # the one refresh: later messages did not ask again


async def test_the_directory_is_bounded_and_per_workspace():
    async with FakeSlack(users={f"U{i}": f"person{i}" for i in range(5)}) as slack:
        client = make_client("xoxb-test", slack.api_url, RateBudget())
        users = UserDirectory(client, max_entries=3)
        for i in range(5):
            await users.author(f"U{i}", team="T0TEAM")
        assert len(users) == 3
        await users.author("U4", team="T0TEAM")              # recent: still known
        await users.author("U4", team="T0OTHER")             # same id, other workspace: its own entry
        await users.author("U0", team="T0TEAM")              # evicted: asked again
        assert [c["user"] for c in slack.calls_to("users.info")] == ["U0", "U1", "U2", "U3", "U4", "U4", "U0"]


async def test_fifty_waiters_share_one_request_and_its_failure():
    async with FakeSlack() as slack:
        client = make_client("xoxb-test", slack.api_url, RateBudget())
        users = UserDirectory(client)
        authors = await asyncio.gather(*(users.author("U2", team="T0TEAM") for _ in range(50)))
        assert {a.name for a in authors} == {"bob"} and len(slack.calls_to("users.info")) == 1
        await slack.close()  # Slack unreachable: every waiter sees the error, and nothing is cached
        failed = await asyncio.gather(*(users.author("U1", team="T0TEAM") for _ in range(5)),
                                      return_exceptions=True)
        assert all(isinstance(f, Exception) for f in failed)
        assert len(users) == 1


class SlowUsersInfo:
    """The real client, with users.info answering late (as when its Tier 4 budget is spent)."""

    def __init__(self, client, delay: float) -> None:
        self._client, self._delay = client, delay

    async def users_info(self, **kwargs):
        await asyncio.sleep(self._delay)
        return await self._client.users_info(**kwargs)


async def test_a_message_does_not_wait_long_for_its_authors_name_and_the_name_arrives_later():
    async with FakeSlack() as slack:
        client = make_client("xoxb-test", slack.api_url, RateBudget())
        users = UserDirectory(SlowUsersInfo(client, delay=0.3))
        quick = await users.author("U1", team="T0TEAM", wait=0.01)
        assert quick.id == "U1" and quick.name == ""                        # went on without the name
        patient = await users.author("U1", team="T0TEAM")                   # the same look-up, finished
        assert patient.name == "alice"
        assert (await users.author("U1", team="T0TEAM", wait=0.01)).name == "alice"   # known from now on
        assert len(slack.calls_to("users.info")) == 1


class ReadingFiles:
    """A fake of core's attachment router port: reads every attachment."""

    def __init__(self) -> None:
        self.read: list[str] = []

    async def prepare(self, assistant, attachments, key, metadata, *, capabilities=None):
        from core.files.attachments import PreparedInputs
        for a in attachments:
            await a.read()
            self.read.append(a.name)
        return PreparedInputs()


async def test_a_mention_with_a_file_costs_what_one_delivery_costs(tmp_path):
    # A channel mention arrives twice (app_mention and its message copy, same channel and ts); a DM once.
    # The copy must not cost another files.info (nor a users.info or a store round trip) before it is dropped:
    # the mention costs what the DM costs.
    files = ReadingFiles()
    backend = ScriptedBackend(answer("Got it."), answer("Got it."))
    async with running_bot(tmp_path / "db", backend, files=files) as bot:
        csv = bot.slack.add_file("sales.csv", b"month,total\njan,10\n", "text/csv")
        await bot.slack.user_says("D1", "analyse this", files=[bot.slack.id_only(csv)])
        await bot.slack.wait_for(lambda: [m.text for m in bot.slack.bot_messages("D1")] == ["Got it."], what="DM")
        await bot.adapter.wait_idle()
        one_delivery = len(bot.slack.calls_to("files.info"))
        ts = await bot.slack.user_says("C1", "<@UBOT> analyse this", files=[bot.slack.id_only(csv)])
        await bot.slack.wait_for(answered(bot.slack, "C1", ts, "Got it."), what="the answer")
        await bot.adapter.wait_idle()
        assert len(bot.slack.calls_to("files.info")) == 2 * one_delivery
        assert files.read == ["sales.csv", "sales.csv"] and len(backend.turns) == 2


async def test_a_new_person_past_the_users_info_budget_is_answered_without_waiting_and_named_later(tmp_path,
                                                                                                  monkeypatch):
    # A burst of new people: users.info (Tier 4) has no slot left for this minute. The message goes on at once
    # instead of waiting for a name that cannot come before the minute is over, and the look-up still happens.
    import bots.slack.app
    monkeypatch.setattr(bots.slack.app, "AUTHOR_WAIT", 3600.0)   # a message would wait that long for the name
    backend = ScriptedBackend(answer("First."), answer("Second."))
    async with FakeSlack(rate_minute=2.0) as slack:
        async with running_bot(tmp_path / "db", backend, slack=slack, rate_minute=2.0) as bot:
            bucket = bot.adapter.budget.bucket_for("users.info")
            held = 0
            while bucket.room():            # other people's look-ups hold every slot of this minute
                await bucket.acquire()
                held += 1
            try:
                first = await slack.user_says("C1", "<@UBOT> hi", user="U2")
                await slack.wait_for(answered(slack, "C1", first, "First."), what="the answer without the name")
            finally:
                for _ in range(held):
                    bucket.done()
            assert slack.calls_to("users.info") == []
            # the look-up waited for its slot and went out; from then on the person has a name
            await slack.wait_for(lambda: slack.calls_to("users.info"), what="the queued users.info")
            await slack.wait_for(lambda: len(bot.adapter.users) == 1, what="the name known")
            second = await slack.user_says("C2", "<@UBOT> again", user="U2")
            await slack.wait_for(answered(slack, "C2", second, "Second."), what="the second answer")
            await bot.adapter.wait_idle()
    assert [c.get("user_name", "") for c in backend.conversations] == ["", "bob"]
