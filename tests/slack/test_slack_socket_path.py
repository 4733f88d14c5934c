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


def through_slack_sdk(bot) -> list:
    """The envelopes that reach slack_sdk's own listeners (its queue, then bolt), by event type, from now on."""
    sockets = bot.adapter._socket.client
    seen: list = []
    inner = sockets.run_message_listeners

    async def counting(message, raw_message):
        if message.get("type") == "events_api":   # not hello / disconnect frames
            seen.append(((message.get("payload") or {}).get("event") or {}).get("type"))
        await inner(message, raw_message)

    sockets.run_message_listeners = counting
    return seen


async def test_both_envelopes_of_a_mention_are_acknowledged_and_it_is_answered_once(tmp_path):
    backend = ScriptedBackend(answer("Once."), answer("Twice?!"))
    async with running_bot(tmp_path / "db", backend) as bot:
        slow_way = through_slack_sdk(bot)
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
        assert slow_way == []     # both went the short way, past slack_sdk's queue and bolt


async def test_a_direct_message_still_goes_through_bolt_and_is_answered(tmp_path):
    backend = ScriptedBackend(answer("In the DM."))
    async with running_bot(tmp_path / "db", backend) as bot:
        slow_way = through_slack_sdk(bot)
        ts = await bot.slack.user_says("D1", "hello there")
        await bot.slack.wait_for(lambda: any(m.text == "In the DM." for m in bot.slack.bot_messages("D1")),
                                 what="the DM answer")
        await bot.adapter.wait_idle()
        assert [t.text for t in backend.turns] == ["hello there"] and ts
        assert slow_way == ["message"]   # a DM is bolt's (the assistant middleware owns DM threads)


async def test_an_acknowledgement_that_cannot_be_sent_is_one_log_line_and_the_next_mentions_are_answered(tmp_path,
                                                                                                        caplog):
    backend = ScriptedBackend(answer("First."), answer("Second."))
    async with running_bot(tmp_path / "db", backend) as bot:
        sockets = bot.adapter._socket.client
        send = sockets.send_message
        failures = [ConnectionError("the connection is being replaced")]

        async def flaky_send(message: str) -> None:
            if failures:
                raise failures.pop()
            await send(message)

        sockets.send_message = flaky_send
        with caplog.at_level(logging.INFO):
            first = await bot.slack.user_says("C1", "<@UBOT> one")
            await bot.slack.wait_for(lambda: bot.slack.thread_text("C1", first) == "First.", what="the first answer")
            second = mention(bot, "1700000900.000100", "<@UBOT> two", channel="C2")
            env = await bot.slack.deliver(second)
            assert await bot.slack.wait_ack(env, timeout=30) == {"envelope_id": env}
            await bot.slack.wait_for(lambda: bot.slack.thread_text("C2", "1700000900.000100") == "Second.",
                                     what="the second answer")
            await bot.adapter.wait_idle()
        lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(lines) == 1 and "acknowledgement could not be sent" in lines[0], lines
        assert not any(r.exc_info for r in caplog.records)


def queued(bot) -> list:
    """The frames that reach slack_sdk's queue (where its reader parses each one again), from now on."""
    queue = bot.adapter._socket.client.message_queue
    put = queue.put
    seen: list = []

    async def counting(item) -> None:
        seen.append(item)
        await put(item)

    queue.put = counting
    return seen


async def test_what_the_short_way_does_not_take_is_read_once_and_still_answered_by_bolt(tmp_path, caplog):
    # a DM, a slash command and a broken slash command: read once as they arrive, never queued to be parsed again
    backend = ScriptedBackend(answer("In the DM."))
    async with running_bot(tmp_path / "db", backend) as bot:
        slow_way, parsed_again = through_slack_sdk(bot), queued(bot)
        with caplog.at_level(logging.INFO):
            await bot.slack.user_says("D1", "hello there")
            await bot.slack.wait_for(lambda: any(m.text == "In the DM." for m in bot.slack.bot_messages("D1")),
                                     what="the DM answer")
            env = await bot.slack.slash_command("help")
            assert await bot.slack.wait_ack(env, timeout=30) == {"envelope_id": env}
            await bot.slack.wait_for(lambda: bot.slack.responses, what="the command's answer")
            bad = await bot.slack.send_interactive("slash_commands", {"command": "/teambridge", "text": "help",
                                                                      "user_id": ["U1"], "team_id": "T0TEAM"})
            assert await bot.slack.wait_ack(bad, timeout=30) == {"envelope_id": bad}
            await bot.adapter.wait_idle()
        assert "/teambridge help" in bot.slack.responses[0]["text"] and len(bot.slack.responses) == 1
        assert [t.text for t in backend.turns] == ["hello there"]
        assert slow_way == ["message"]      # bolt still answers the DM (and the command)
        assert parsed_again == []           # nothing went to slack_sdk's queue: each frame was parsed once
        dropped = [r.getMessage() for r in caplog.records if "envelope dropped" in r.getMessage()]
        assert dropped == ["Slack slash_commands envelope dropped: user_id is not a string"]
        assert not any(r.exc_info for r in caplog.records)

