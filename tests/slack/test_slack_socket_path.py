"""A channel @mention's Socket Mode envelopes on their short way in (bots/slack/socket_mode.py, arrivals.py): read
as the frame arrives, checked, acknowledged and answered, past slack_sdk's queue and bolt — and what that way
cannot read still reaches slack_sdk and bolt, so the person sees the same answers as before.

Real wire: slack_sdk's Socket Mode client and bolt against the stand-in Slack's websocket.
"""
from __future__ import annotations

import logging

from core.model import Completed, TextDelta, Usage
from tests.fakes.slack_harness import running_bot
from tests.support.ports import ScriptedBackend


def answer(*parts: str) -> list:
    return [*(TextDelta(p) for p in parts), Completed(Usage(10, 0, 5))]


def mention(bot, ts: str, text: str, **fields) -> dict:
    event = bot.slack._event("AppMentionPayload", user="U1", text=text, ts=ts, event_ts=ts, channel="C1",
                             team="T0TEAM")
    event.update(fields)
    return bot.slack.event_callback(event)


async def test_a_mention_carrying_a_lone_surrogate_is_acknowledged_and_answered(tmp_path):
    # Slack's JSON may carry "\ud800" escapes, which the fast reader (orjson) refuses: slack_sdk's json reads it
    backend = ScriptedBackend(answer("Still here."))
    async with running_bot(tmp_path / "db", backend) as bot:
        ts = "1700000600.000100"
        env = await bot.slack.deliver(mention(bot, ts, "<@UBOT> caf\ud800 please"))
        assert await bot.slack.wait_ack(env, timeout=30) == {"envelope_id": env}
        await bot.slack.wait_for(lambda: bot.slack.thread_text("C1", ts) == "Still here.", what="the answer")
        await bot.adapter.wait_idle()
        assert [t.text for t in backend.turns] == ["caf\ufffd please"]


async def test_a_broken_mention_envelope_is_acknowledged_and_dropped_with_one_log_line(tmp_path, caplog):
    backend = ScriptedBackend(answer("Answered."))
    async with running_bot(tmp_path / "db", backend) as bot:
        with caplog.at_level(logging.INFO):
            bad = await bot.slack.deliver(mention(bot, "1700000700.000100", "<@UBOT> hi", channel=["C1"]))
            # acknowledged, so Slack does not send it again
            assert await bot.slack.wait_ack(bad, timeout=30) == {"envelope_id": bad}
            ts = await bot.slack.user_says("C2", "<@UBOT> and now?")
            await bot.slack.wait_for(lambda: bot.slack.thread_text("C2", ts) == "Answered.", what="the next answer")
            await bot.adapter.wait_idle()
        dropped = [r for r in caplog.records if "envelope dropped" in r.getMessage()]
        assert [r.getMessage() for r in dropped] == ["Slack events_api envelope dropped: event channel is not a string"]
        assert not any(r.exc_info for r in caplog.records)     # one line, never a traceback
        assert bot.slack.bot_messages("C1") == [] and len(backend.turns) == 1


async def test_both_envelopes_of_a_mention_are_acknowledged_and_it_is_answered_once(tmp_path):
    backend = ScriptedBackend(answer("Once."), answer("Twice?!"))
    async with running_bot(tmp_path / "db", backend) as bot:
        ts = "1700000800.000100"
        body = mention(bot, ts, "<@UBOT> hello")
        first = await bot.slack.deliver(body)
        copy = dict(body["event"], type="message", channel_type="channel")
        second = await bot.slack.deliver(bot.slack.event_callback(copy))
        assert await bot.slack.wait_ack(first, timeout=30) == {"envelope_id": first}
        assert await bot.slack.wait_ack(second, timeout=30) == {"envelope_id": second}
        await bot.slack.wait_for(lambda: bot.slack.thread_text("C1", ts) == "Once.", what="the answer")
        await bot.adapter.wait_idle()
        assert [m.text for m in bot.slack.bot_messages("C1")] == ["Once."]
        assert len(backend.turns) == 1 and len(bot.slack.calls_to("users.info")) == 1


async def test_a_direct_message_still_goes_through_bolt_and_is_answered(tmp_path):
    backend = ScriptedBackend(answer("In the DM."))
    async with running_bot(tmp_path / "db", backend) as bot:
        ts = await bot.slack.user_says("D1", "hello there")
        await bot.slack.wait_for(lambda: any(m.text == "In the DM." for m in bot.slack.bot_messages("D1")),
                                 what="the DM answer")
        await bot.adapter.wait_idle()
        assert [t.text for t in backend.turns] == ["hello there"] and ts
