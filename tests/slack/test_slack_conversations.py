"""Slack conversations through the real slack_bolt/slack_sdk, the stand-in Slack, ChatService and SQLite.

The model side is ScriptedBackend (a fake of our own AssistantBackend port).
"""
from __future__ import annotations

import asyncio

from core.model import Completed, TextDelta, ToolUpdate, Usage
from bots.standins.slack_server import FakeSlack
from tests.fakes.slack_harness import make_config, running_bot
from tests.support.ports import ScriptedBackend


def answer(*parts: str) -> list:
    return [*(TextDelta(p) for p in parts), Completed(Usage(10, 0, 5))]


async def settle(bot) -> None:
    await bot.adapter.wait_idle()


async def test_mention_in_a_channel_is_answered_in_its_thread_with_the_models_text(tmp_path):
    backend = ScriptedBackend(answer("Pasta ", "carbonara ", "uses **guanciale**."))
    async with running_bot(tmp_path / "db", backend) as bot:
        ts = await bot.slack.user_says("C1", "<@UBOT> what is in carbonara?")
        await bot.slack.wait_for(lambda: bot.slack.bot_messages("C1", ts) and
                                 not bot.slack.bot_messages("C1", ts)[-1].streaming and
                                 bot.slack.thread_text("C1", ts), what="the answer")
        await settle(bot)
        replies = bot.slack.bot_messages("C1", ts)
        assert [m.text for m in replies] == ["Pasta carbonara uses **guanciale**."]
        assert replies[0].markdown and not replies[0].streaming
        assert bot.slack.calls_to("chat.startStream")[0]["recipient_user_id"] == "U1"
        # the mention itself is not part of what the model was asked, and the asker's name is known
        assert backend.turns[0].text == "what is in carbonara?"
        assert backend.conversations[0]["user_name"] == "alice"
        assert not bot.slack.bot_messages(top_level=True)


async def test_double_delivery_and_retries_of_one_mention_are_answered_once(tmp_path):
    backend = ScriptedBackend(answer("once"), answer("twice?!"))
    async with running_bot(tmp_path / "db", backend) as bot:
        ts = await bot.slack.user_says("C1", "<@UBOT> hi")  # app_mention + message, same channel+ts
        # Slack did not see the ack in time and retries the app_mention (retry_attempt=1, new envelope)
        event = bot.slack._event("AppMentionPayload", user="U1", text="<@UBOT> hi", ts=ts, event_ts=ts,
                                 channel="C1", team="T0TEAM")
        env = await bot.slack.deliver(bot.slack.event_callback(event), retry_attempt=1)
        await bot.slack.wait_ack(env)
        await bot.slack.wait_for(lambda: bot.slack.thread_text("C1", ts) == "once", what="answer")
        await settle(bot)
        assert [m.text for m in bot.slack.bot_messages("C1")] == ["once"]
        assert len(backend.turns) == 1


async def test_every_envelope_is_acked_before_the_answer_is_finished(tmp_path):
    backend = ScriptedBackend(answer("slow answer"))
    backend.gate = asyncio.Event()  # the model does not finish until we let it
    async with running_bot(tmp_path / "db", backend) as bot:
        event = bot.slack._event("AppMentionPayload", user="U1", text="<@UBOT> hi", ts="1700000500.000100",
                                 event_ts="1700000500.000100", channel="C1", team="T0TEAM")
        env = await bot.slack.deliver(bot.slack.event_callback(event))
        ack = await bot.slack.wait_ack(env)
        assert ack == {"envelope_id": env}
        assert bot.slack.thread_text("C1", "1700000500.000100") in ("", "slow answer")
        backend.gate.set()
        await bot.slack.wait_for(lambda: bot.slack.thread_text("C1", "1700000500.000100") == "slow answer")


async def test_thread_follow_up_without_a_mention_continues_the_conversation(tmp_path):
    backend = ScriptedBackend(answer("Rome."), answer("About 2.8 million."))
    async with running_bot(tmp_path / "db", backend) as bot:
        root = await bot.slack.user_says("C1", "<@UBOT> capital of Italy?")
        await bot.slack.wait_for(lambda: bot.slack.thread_text("C1", root) == "Rome.")
        await settle(bot)
        await bot.slack.user_says("C1", "how many people live there?", thread_ts=root)
        await bot.slack.wait_for(lambda: bot.slack.thread_text("C1", root) == "Rome.About 2.8 million.")
        await settle(bot)
        assert [t.conversation_id for t in backend.turns] == ["conv_1", "conv_1"]
        # a top-level message without a mention in the same channel is not for the bot
        await bot.slack.user_says("C1", "lunch anyone?")
        await settle(bot)
        assert len(backend.turns) == 2


async def test_dm_is_answered_in_place_with_post_and_edits(tmp_path):
    backend = ScriptedBackend(answer("Hello ", "Alice!"))
    async with running_bot(tmp_path / "db", backend) as bot:
        await bot.slack.user_says("D1", "hi there")
        await bot.slack.wait_for(lambda: any(m.text == "Hello Alice!" for m in bot.slack.bot_messages("D1")))
        await settle(bot)
        replies = bot.slack.bot_messages("D1")
        assert len(replies) == 1 and replies[0].thread_ts is None
        assert backend.turns[0].text == "hi there"


async def test_edits_deletes_and_bot_messages_are_not_answered(tmp_path):
    backend = ScriptedBackend()
    async with running_bot(tmp_path / "db", backend) as bot:
        for sample_name, fields in (("MessageChangedPayload", {"subtype": "message_changed"}),
                                    ("MessageDeletedPayload", {"subtype": "message_deleted"}),
                                    ("MessageBotPayload", {"subtype": "bot_message", "bot_id": "B999"})):
            ev = bot.slack._event(sample_name, channel="D1", channel_type="im", ts="1700000900.000001",
                                  event_ts="1700000900.000001", **fields)
            ev["subtype"] = fields["subtype"]
            await bot.slack.wait_ack(await bot.slack.deliver(bot.slack.event_callback(ev)))
        await settle(bot)
        assert backend.turns == [] and bot.slack.bot_messages() == []


async def test_a_retry_after_a_restart_is_not_answered_again(tmp_path):
    async with FakeSlack() as slack:
        backend = ScriptedBackend(answer("first and only"))
        async with running_bot(tmp_path / "db", backend, slack=slack) as bot:
            ts = await slack.user_says("C1", "<@UBOT> hello")
            await slack.wait_for(lambda: slack.thread_text("C1", ts) == "first and only")
        # process restarts; Slack redelivers the message it thinks was not acked
        backend2 = ScriptedBackend(answer("SECOND"))
        async with running_bot(tmp_path / "db", backend2, slack=slack) as bot:
            ev = slack._event("AppMentionPayload", user="U1", text="<@UBOT> hello", ts=ts, event_ts=ts,
                              channel="C1", team="T0TEAM")
            await slack.wait_ack(await slack.deliver(slack.event_callback(ev), retry_attempt=2))
            await settle(bot)
        assert backend2.turns == []
        assert [m.text for m in slack.bot_messages("C1")] == ["first and only"]


async def test_tool_progress_shows_as_task_updates_in_the_stream(tmp_path):
    backend = ScriptedBackend([ToolUpdate("ci_1", "code_interpreter", "running", "Running code", "print(1+1)"),
                               ToolUpdate("ci_1", "code_interpreter", "done", "Running code"),
                               TextDelta("The answer is 2."), Completed(Usage(1, 0, 1))])
    async with running_bot(tmp_path / "db", backend) as bot:
        ts = await bot.slack.user_says("C1", "<@UBOT> 1+1?")
        await bot.slack.wait_for(lambda: bot.slack.thread_text("C1", ts) == "The answer is 2.")
        await settle(bot)
        [reply] = bot.slack.bot_messages("C1", ts)
        assert reply.tasks["ci_1"]["title"] == "Running code"
        assert reply.tasks["ci_1"]["status"] == "complete"


async def test_refused_native_streaming_falls_back_to_post_and_update(tmp_path):
    async with FakeSlack(streaming_error="feature_not_enabled") as slack:
        backend = ScriptedBackend(answer("plain ", "old ", "way"), answer("again"))
        async with running_bot(tmp_path / "db", backend, slack=slack) as bot:
            ts = await slack.user_says("C1", "<@UBOT> hi")
            await slack.wait_for(lambda: slack.thread_text("C1", ts) == "plain old way")
            await settle(bot)
            ts2 = await slack.user_says("C1", "<@UBOT> hi again")
            await slack.wait_for(lambda: slack.thread_text("C1", ts2) == "again")
            await settle(bot)
        # the second reply did not even try the native stream
        assert len(slack.calls_to("chat.startStream")) == 1


async def test_interrupted_reply_is_marked_on_the_next_start(tmp_path):
    async with FakeSlack() as slack:
        backend = ScriptedBackend()
        async with running_bot(tmp_path / "db", backend, slack=slack) as bot:
            posted = await bot.adapter.client.chat_postMessage(channel="C1", thread_ts="1600000000.000100",
                                                               markdown_text="Half an ans")
            await bot.store.add_inflight("slack", "C1", posted["ts"], "1600000000.000100")
            assert await bot.service.recover_interrupted(bot.adapter) == 1
        m = slack.message("C1", posted["ts"])
        assert m.text == "Half an ans\n\n⚠️ This answer was cut off — please ask again."


async def test_channel_routes_answer_without_mention_and_can_stop_following_threads(tmp_path):
    from core.config.schema import ChannelRoute
    config = make_config(channels={"C9": ChannelRoute(respond_without_mention=True),
                                   "C7": ChannelRoute(follow_threads=False)})
    backend = ScriptedBackend(answer("open channel"), answer("mentioned"))
    async with running_bot(tmp_path / "db", backend, config=config) as bot:
        ts = await bot.slack.user_says("C9", "anyone know a good soup?")
        await bot.slack.wait_for(lambda: bot.slack.thread_text("C9", ts) == "open channel")
        root = await bot.slack.user_says("C7", "<@UBOT> hi")
        await bot.slack.wait_for(lambda: bot.slack.thread_text("C7", root) == "mentioned")
        await settle(bot)
        await bot.slack.user_says("C7", "follow-up", thread_ts=root)
        await settle(bot)
        assert len(backend.turns) == 2
