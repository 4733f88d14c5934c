"""One gateway session across reconnects: RESUME where the connection left off, IDENTIFY only when Discord ends it.

Discord replays, on RESUME (op 6 with session_id and seq, sent to READY's `resume_gateway_url`), every event
dispatched while the bot was away: a message sent during a network blip is answered after it. A new session
(IDENTIFY) starts from now, and what was said in the gap is lost. discord.py starts one more often than needed:
- `Client.connect()` begins with IDENTIFY, so calling it again after an error it does not handle itself (a frame
  it cannot decode, a broken READY: DiscordAdapter._supervise reconnects then) drops the session;
- `AutoShardedClient`'s shards IDENTIFY again once a first reconnect attempt failed (the gateway still
  unreachable), where the session was still resumable.
`GatewaySession.run()` is `Client.connect(reconnect=True)` with the session kept in this object, and
`keep_shard_sessions()` mends the shards. A new session is started only after INVALID_SESSION (op 9, d=false)
or a close code that ends the session (4007, 4009), and says so in one log line.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

import aiohttp
import discord
from discord.backoff import ExponentialBackoff
from discord.gateway import DiscordWebSocket, ReconnectWebSocket

log = logging.getLogger("teambridge.discord")

# Discord: "reconnect and start a new session" — a RESUME after these only earns an INVALID_SESSION
ENDS_SESSION = frozenset({4007, 4009})
# discord.py's backoff grows to 2**10 s (~17 min) after repeated failures: past Discord's resume window the
# session and the messages sent meanwhile would be gone. A resume is tried at least this often.
MAX_RESUME_WAIT = 30.0
# what discord.py's connect() treats as a dropped connection (anything else ends it)
DROPPED = (OSError, discord.HTTPException, discord.GatewayNotFound, discord.ConnectionClosed, aiohttp.ClientError,
           asyncio.TimeoutError)


def new_session_line(why: str) -> None:
    log.warning("Discord: %s; starting a new gateway session (messages sent while disconnected are not replayed)",
                why)


def _close_code(ws: DiscordWebSocket | None) -> int | None:
    """The close code Discord sent (None: the network dropped, or we closed the socket ourselves)."""
    if ws is None or ws._close_code is not None:
        return None
    return ws.socket.close_code


class GatewaySession:
    """The gateway connection of `client`, one session for as long as Discord keeps it (one per shard when sharded)."""

    def __init__(self, client: discord.Client) -> None:
        self._client = client
        self._sharded = isinstance(client, discord.AutoShardedClient)
        if self._sharded:
            keep_shard_sessions(client)
        self._params: dict[str, Any] = {"initial": True, "shard_id": client.shard_id}

    def left_off(self) -> None:
        """The connection ended in a way discord.py does not handle: the next run() resumes where it left off.
        (Sharded, discord.py closes the whole client then: nothing to resume.)"""
        if not self._sharded:
            self._resume_from(self._client.ws)

    def _resume_from(self, ws: DiscordWebSocket | None) -> None:
        if ws is not None and ws.session_id is not None:
            self._params.update(initial=False, resume=True, session=ws.session_id, sequence=ws.sequence,
                                gateway=ws.gateway)
        else:
            self._identify()

    def _identify(self) -> None:
        self._params.update(resume=False, session=None, sequence=None, gateway=None)

    async def run(self) -> None:
        """discord.py's `Client.connect(reconnect=True)` loop (2.7.1), starting from the kept session. Returns when
        the client is closed; raises what ends the connection for good (as connect() does) or what discord.py
        would not handle (the caller makes the connection again: call left_off() first)."""
        client = self._client
        if self._sharded:   # each shard keeps its session (keep_shard_sessions)
            await client.connect(reconnect=True)
            return
        backoff = ExponentialBackoff()
        while not client.is_closed():
            try:
                coro = DiscordWebSocket.from_client(client, **self._params)
                client.ws = await asyncio.wait_for(coro, timeout=60.0)
                self._params["initial"] = False
                while True:
                    await client.ws.poll_event()
            except ReconnectWebSocket as exc:
                client.dispatch("disconnect")
                code = _close_code(client.ws)
                if exc.resume and code in ENDS_SESSION:
                    new_session_line(f"the gateway ended the session (close code {code})")
                    self._identify()
                elif not exc.resume:   # INVALID_SESSION d=false: discord.py has forgotten the session already
                    new_session_line("the gateway could not resume the session (INVALID_SESSION)")
                    self._identify()
                else:
                    self._resume_from(client.ws)
            except DROPPED as exc:
                client.dispatch("disconnect")
                if client.is_closed():
                    return
                if client.ws is None:   # never connected: DiscordAdapter.start() reports why
                    raise
                # If the socket closed with a code connect() cannot handle (bad token, shard setup...), end here
                if isinstance(exc, discord.ConnectionClosed):
                    if exc.code == 4014:
                        raise discord.PrivilegedIntentsRequired(exc.shard_id) from None
                    if exc.code != 1000:
                        await client.close()
                        raise
                retry = resume_wait(backoff)
                log.warning("Discord: gateway connection dropped (%s: %s); resuming in %.1f s",
                            type(exc).__name__, str(exc)[:200], retry)
                await asyncio.sleep(retry)
                self._resume_from(client.ws)


def resume_wait(backoff: ExponentialBackoff) -> float:
    """Seconds until the next attempt to resume: discord.py's backoff, capped at MAX_RESUME_WAIT."""
    return min(backoff.delay(), MAX_RESUME_WAIT)


def keep_shard_sessions(client: discord.AutoShardedClient) -> None:
    """Each shard of `client` RESUMEs after every dropped connection, for as long as Discord keeps its session.

    discord.py's Shard.reconnect() (after a reconnect attempt that failed with a network error) IDENTIFYs; here it
    resumes instead. Hooked per shard as discord.py creates them (AutoShardedClient.launch_shard)."""
    launch = client.launch_shard
    kept: dict[int, object] = {}

    async def launch_keeping(gateway: Any, shard_id: int, *, initial: bool = False) -> None:
        await launch(gateway, shard_id, initial=initial)   # it retries by calling client.launch_shard again
        shard = client._AutoShardedClient__shards.get(shard_id)   # type: ignore[attr-defined]
        if shard is not None and kept.get(shard_id) is not shard:
            kept[shard_id] = shard
            _keep(shard)

    client.launch_shard = launch_keeping  # type: ignore[method-assign]


def _keep(shard: Any) -> None:
    reidentify: Callable[[ReconnectWebSocket], Any] = shard.reidentify
    reconnect: Callable[[], Any] = shard.reconnect

    async def reidentify_logged(exc: ReconnectWebSocket) -> None:
        code = _close_code(shard.ws)
        if exc.resume and code in ENDS_SESSION:
            new_session_line(f"shard {shard.id}: the gateway ended the session (close code {code})")
            exc = ReconnectWebSocket(shard.id, resume=False)
        elif not exc.resume:
            new_session_line(f"shard {shard.id}: the gateway could not resume the session (INVALID_SESSION)")
        await reidentify(exc)

    async def reconnect_resuming() -> None:
        if shard.ws.session_id is None:
            await reconnect()
        else:
            await reidentify(ReconnectWebSocket(shard.id, resume=True))

    shard.reidentify = reidentify_logged
    shard.reconnect = reconnect_resuming
