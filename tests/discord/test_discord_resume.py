"""Nothing said while the bot is disconnected is lost: the gateway session is RESUMEd and Discord replays the
messages sent in the gap. Only when Discord ends the session (INVALID_SESSION d=false, close codes 4007/4009) does
the bot start a new one — and says so in one log line. The real discord.py and composition against the stand-in
Discord's gateway, plain and sharded (bots/discord/session.py)."""
from __future__ import annotations

import logging

import pytest

from bots.standins.openai_server import ScriptedResponse, last_user_text
from tests.fakes.discord_world import world

FAST = {"reconnect_backoff": (0.05, 0.2)}
PLAIN_AND_SHARDED = pytest.mark.parametrize("sharding", [{}, {"shard_count": 1}], ids=["plain", "sharded"])


def echo(w) -> None:
    w.openai.responder = lambda body: ScriptedResponse(text=f"About {last_user_text(body)}: yes.")


async def answered(w, ch: str, question: str) -> None:
    await w.final_answer(ch, f"About {question}: yes.")


def new_session_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "new gateway session" in r.getMessage()]


@PLAIN_AND_SHARDED
async def test_a_message_sent_while_discord_is_unreachable_is_answered_once_it_is_back(tmp_path, caplog, sharding):
    caplog.set_level(logging.INFO, logger="teambridge.discord")
    async with world(tmp_path, adapter_kwargs=FAST, **sharding) as w:
        ch = w.channel("general")
        echo(w)
        await w.discord.go_down()      # sockets closed with 4000 (resumable), new connections refused
        await w.discord.wait_for(lambda: not w.adapter.connected)
        await w.discord.user_message(ch, w.discord.alice, "the gap", mention_bot=True)
        # the bot keeps trying meanwhile (discord.py's backoff): at least one refused attempt before Discord is back
        await w.discord.wait_for(lambda: w.discord.requests_refused >= 1)
        w.discord.gateway_up = True
        await answered(w, ch, "the gap")
        assert (w.discord.identifies, w.discord.resumes) == (1, 1)
        assert w.discord.resume_paths == ["/gateway-ws/resume"]   # READY's resume_gateway_url
        assert new_session_lines(caplog) == []


async def test_a_message_sent_while_the_network_is_down_is_answered_after_it(tmp_path):
    async with world(tmp_path, adapter_kwargs=FAST) as w:
        ch = w.channel("general")
        echo(w)
        w.discord.gateway_up = False
        w.discord.drop_network()       # no close frame: the bot only sees the connection go
        await w.discord.wait_for(lambda: not w.adapter.connected)
        await w.discord.user_message(ch, w.discord.alice, "the outage", mention_bot=True)
        await w.discord.wait_for(lambda: w.discord.requests_refused >= 1)
        w.discord.gateway_up = True
        await answered(w, ch, "the outage")
        assert (w.discord.identifies, w.discord.resumes) == (1, 1)


async def test_a_connection_ended_by_a_frame_discord_py_cannot_read_resumes_and_loses_nothing(tmp_path):
    async with world(tmp_path, adapter_kwargs=FAST) as w:
        ch = w.channel("general")
        echo(w)
        # A frame that is no JSON ends discord.py's connect() (DiscordAdapter._supervise connects again); the
        # mention right behind it was sent on the old connection and never read there.
        await w.discord.send_raw("{not json")
        await w.discord.user_message(ch, w.discord.alice, "right behind it", mention_bot=True)
        await answered(w, ch, "right behind it")
        assert (w.discord.identifies, w.discord.resumes) == (1, 1)
        assert w.adapter.reconnects == 1


@PLAIN_AND_SHARDED
async def test_an_invalid_session_starts_a_new_one_and_says_so(tmp_path, caplog, sharding):
    caplog.set_level(logging.INFO, logger="teambridge.discord")
    async with world(tmp_path, adapter_kwargs=FAST, **sharding) as w:
        ch = w.channel("general")
        echo(w)
        await w.discord.invalidate_sessions()      # INVALID_SESSION, d=false
        await w.discord.wait_for(lambda: w.discord.identifies == 2 and w.adapter.connected)
        await w.discord.user_message(ch, w.discord.alice, "new session", mention_bot=True)
        await answered(w, ch, "new session")
        [line] = new_session_lines(caplog)
        assert "INVALID_SESSION" in line


@PLAIN_AND_SHARDED
@pytest.mark.parametrize("code", [4007, 4009])
async def test_a_close_code_that_ends_the_session_starts_a_new_one_at_once(tmp_path, caplog, sharding, code):
    caplog.set_level(logging.INFO, logger="teambridge.discord")
    async with world(tmp_path, adapter_kwargs=FAST, **sharding) as w:
        ch = w.channel("general")
        echo(w)
        await w.discord.drop_gateway(code)
        await w.discord.wait_for(lambda: w.discord.identifies == 2 and w.adapter.connected)
        await w.discord.user_message(ch, w.discord.alice, "after the close", mention_bot=True)
        await answered(w, ch, "after the close")
        assert w.discord.refused_resumes == 0       # no RESUME Discord would refuse was tried first
        [line] = new_session_lines(caplog)
        assert f"close code {code}" in line


def test_the_wait_before_resuming_stays_within_the_resume_window():
    """After many failed attempts discord.py's backoff would wait up to ~17 minutes; the session (and the messages
    sent meanwhile) would be gone by then. The wait is capped; the first waits stay discord.py's short ones."""
    from discord.backoff import ExponentialBackoff

    from bots.discord.session import MAX_RESUME_WAIT, resume_wait
    backoff = ExponentialBackoff()
    waits = [resume_wait(backoff) for _ in range(15)]
    assert waits[0] <= 2.0
    assert max(waits) <= MAX_RESUME_WAIT <= 60.0
    assert max(waits) == MAX_RESUME_WAIT    # reached: without the cap the 15th wait is up to 2**10 s
