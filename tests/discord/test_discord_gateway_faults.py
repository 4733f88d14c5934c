"""Discord never goes deaf: an event discord.py cannot parse is dropped with one log line, a connection that
ends with an error is made again (with a pause that grows), and a fatal end is reported so the process can
exit non-zero. `adapter.connected` is what a readiness probe reads."""
from __future__ import annotations

import logging

import discord

from bots.standins import discord_payloads as P
from tests.fakes.discord_world import world
from bots.standins.openai_server import ScriptedResponse

FAST = {"reconnect_backoff": (0.05, 0.2)}


def malformed_message(w, ch: str) -> dict:
    """A MESSAGE_CREATE that makes discord.py raise while it parses it (user ids where user objects belong)."""
    return P.message(message_id=w.discord.ids.next(), channel_id=ch, author=w.discord.alice, content="<@1> hi",
                     guild_id=w.discord.guild["id"], mentions=[1, 2])


async def answered(w, ch: str, question: str, answer: str) -> None:
    w.openai.script(ScriptedResponse(text=answer))
    await w.discord.user_message(ch, w.discord.alice, question, mention_bot=True)
    await w.discord.wait_for(lambda: any(m.content == answer for m in w.discord.messages_in(ch, by_bot=True)), 15)


async def test_an_event_discord_py_cannot_parse_is_dropped_and_the_bot_keeps_answering(tmp_path, caplog):
    async with world(tmp_path, adapter_kwargs=FAST) as w:
        ch = w.channel("general")
        caplog.set_level(logging.WARNING, logger="teambridge.discord")
        await w.discord.dispatch("MESSAGE_CREATE", malformed_message(w, ch))
        await answered(w, ch, "still there?", "Yes.")
        assert w.adapter.dropped_events == 1 and w.adapter.connected
        assert w.discord.identifies == 1 and w.adapter.reconnects == 0   # the connection never ended
        [line] = [r for r in caplog.records if "could not read" in r.getMessage()]
        assert "MESSAGE_CREATE" in line.getMessage() and line.exc_info is None   # one line, no traceback


async def test_a_connection_that_ends_with_an_error_is_made_again(tmp_path, caplog):
    async with world(tmp_path, adapter_kwargs=FAST) as w:
        ch = w.channel("general")
        caplog.set_level(logging.ERROR, logger="teambridge.discord")
        # READY is the one event left unguarded: a broken one ends discord.py's connect() with a KeyError
        await w.discord.dispatch("READY", {"v": 10})
        # made again by resuming the same session (tests/discord/test_discord_resume.py: nothing lost meanwhile)
        await w.discord.wait_for(lambda: w.discord.resumes == 1 and w.adapter.connected, 15)
        await answered(w, ch, "back?", "Back.")
        assert w.adapter.reconnects == 1 and w.discord.identifies == 1
        assert any("reconnecting" in r.getMessage() for r in caplog.records)


async def test_a_fatal_gateway_close_is_reported_for_a_non_zero_exit(tmp_path):
    async with world(tmp_path, adapter_kwargs=FAST) as w:
        assert w.adapter.connected
        await w.discord.drop_gateway(4004)     # the token was revoked while running
        reason = await w.adapter.wait_dead()
        assert "4004" in reason or "Authentication" in reason
        assert not w.adapter.connected
