"""The stand-in Discord's gateway: HELLO, heartbeats ACKed, IDENTIFY -> READY (+ GUILD_CREATE per guild), RESUME on
READY's `resume_gateway_url` replaying the events dispatched while the bot was away (INVALID_SESSION d=false for an
unknown or ended session), close codes 4004 (bad token), 4010 (invalid shard) and 4014 (Message Content intent not
enabled for the app) like the real one; 4007/4009 end the session (Discord: "reconnect and start a new session");
a network drop (no close frame); sharding by Discord's formula, one live session per shard. Methods of FakeDiscord
(bots/standins/discord_server.py), which holds the state."""
from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from bots.standins import discord_payloads as P
from bots.standins.discord_model import INTENT_MESSAGE_CONTENT


@dataclass
class Session:
    id: str
    intents: int
    shard: tuple[int, int] = (0, 1)       # IDENTIFY's [shard_id, num_shards]; (0, 1): not sharded
    seq: int = 0
    events: list[dict] = field(default_factory=list)
    ws: web.WebSocketResponse | None = None
    transport: asyncio.Transport | None = None   # the socket's TCP connection, for a network drop


# Discord's close codes after which the session cannot be resumed ("reconnect and start a new session"), and the
# fatal ones (no reconnect at all); any other code (4000 unknown error, ...) leaves the session resumable.
ENDS_SESSION = frozenset({4007, 4009})
FATAL = frozenset({4004, 4010, 4011, 4012, 4013, 4014})


def _frame(op: int, d: Any = None) -> str:
    return json.dumps({"op": op, "s": None, "t": None, "d": d})


class Gateway:
    """Methods of FakeDiscord: _sessions, identifies, resumes, gateway_up and _redeliver are its state."""

    _sessions: dict[str, Session]

    @staticmethod
    def shard_of(guild_id: Any, count: int) -> int:
        """Discord's formula: a guild's events go to shard (guild_id >> 22) % num_shards; DMs to shard 0. (A
        guild id that is no snowflake — the fuzz tests dispatch broken payloads — goes to shard 0.)"""
        try:
            return (int(guild_id) >> 22) % count if guild_id else 0
        except (TypeError, ValueError):
            return 0

    def _on_shard(self, session: Session, event: str, data: Any) -> bool:
        shard, count = session.shard
        if count == 1 or not isinstance(data, dict):   # not sharded: every event
            return shard == 0
        guild_id = data.get("guild_id") or (data.get("id") if event.startswith("GUILD_") else None)
        return self.shard_of(guild_id, count) == shard

    def shard_sessions(self) -> list[tuple[int, int]]:
        """The [shard_id, num_shards] of every live gateway session."""
        return sorted(s.shard for s in self._sessions.values() if s.ws is not None and not s.ws.closed)

    async def dispatch(self, event: str, data: dict) -> None:
        for s in list(self._sessions.values()):
            if self._on_shard(s, event, data):
                await self._send_event(s, event, data)

    async def _send_event(self, session: Session, event: str, data: dict) -> None:
        session.seq += 1
        frame = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.events.append(frame)
        if session.ws is not None and not session.ws.closed:
            await session.ws.send_str(json.dumps(frame))

    async def drop_gateway(self, code: int = 4000, *, redeliver: int = 0) -> None:
        """Close every live gateway socket (4000 = unknown error, resumable; 4007/4009 end the session; 4014/4004
        are fatal). `redeliver`: on RESUME, send the last N already-delivered events again (Discord may do that)."""
        self._redeliver = redeliver
        for sid, s in list(self._sessions.items()):
            if s.ws is not None and not s.ws.closed:
                ws, s.ws = s.ws, None
                if code in ENDS_SESSION or code in FATAL:
                    del self._sessions[sid]
                await ws.close(code=code)

    def drop_network(self) -> None:
        """The network between the bot and Discord fails: every gateway connection is cut without a close frame.
        The sessions stay resumable, as on Discord after a network blip."""
        for s in self._sessions.values():
            if s.ws is not None and not s.ws.closed:
                s.ws = None
                if s.transport is not None:
                    s.transport.abort()

    async def invalidate_sessions(self) -> None:
        """INVALID_SESSION d=false on every live connection: the sessions are gone; the bot must IDENTIFY anew."""
        for sid, s in list(self._sessions.items()):
            del self._sessions[sid]
            if s.ws is not None and not s.ws.closed:
                await s.ws.send_str(_frame(9, False))

    async def send_raw(self, text: str) -> None:
        """A frame of `text` as it is (a broken one, say) on every live gateway connection."""
        for s in self._sessions.values():
            if s.ws is not None and not s.ws.closed:
                await s.ws.send_str(text)

    def connected(self) -> bool:
        return any(s.ws is not None and not s.ws.closed for s in self._sessions.values())

    async def go_down(self) -> None:
        """Discord's gateway is unreachable: live sockets close (resumable) and reconnects are refused."""
        self.gateway_up = False
        await self.drop_gateway(4000)

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        if not self.gateway_up:
            self.requests_refused += 1
            return web.Response(status=503, text="gateway unavailable")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        transport = request.transport
        await ws.send_str(_frame(10, {"heartbeat_interval": 41250}))
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            op, d = frame.get("op"), frame.get("d")
            if op == 1:
                await ws.send_str(_frame(11))
            elif op == 2:
                if not await self._identify(ws, d, transport):
                    break
            elif op == 6:
                await self._resume(ws, d, transport, request.path)
        return ws

    async def _identify(self, ws: web.WebSocketResponse, d: dict, transport: asyncio.Transport | None) -> bool:
        """A new session (READY, then GUILD_CREATE for each guild on its shard); False: the socket was closed."""
        self.identifies += 1
        if d.get("token") != self.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return False
        if d.get("intents", 0) & INTENT_MESSAGE_CONTENT and not self.message_content_intent:
            await ws.close(code=4014, message=b"Disallowed intent(s).")
            return False
        shard = tuple(d.get("shard") or (0, 1))
        if len(shard) != 2 or not 0 <= shard[0] < shard[1]:
            await ws.close(code=4010, message=b"Invalid shard.")
            return False
        session = Session(secrets.token_hex(16), d.get("intents", 0), shard=shard, ws=ws, transport=transport)
        # one live session per shard: a new IDENTIFY for a shard replaces its old session
        self._sessions = {sid: s for sid, s in self._sessions.items() if s.shard[0] != shard[0]}
        self._sessions[session.id] = session
        guilds = [g for g in self.guilds if self.shard_of(g, shard[1]) == shard[0]]
        ready = {
            "v": 10, "user": {**self.bot, "verified": True, "mfa_enabled": False},
            "guilds": [{"id": g, "unavailable": True} for g in guilds],
            "session_id": session.id, "resume_gateway_url": self.resume_gateway_url,
            "application": {"id": self.application_id, "flags": 0},
            "private_channels": [], "relationships": [], "presences": [],
        }
        if "shard" in d:
            ready["shard"] = d["shard"]
        await self._send_event(session, "READY", ready)
        for gid in guilds:
            await self._send_event(session, "GUILD_CREATE", self._guild_create(gid))
        return True

    async def _resume(self, ws: web.WebSocketResponse, d: dict, transport: asyncio.Transport | None,
                      path: str) -> None:
        """The session again on a new socket: the events it missed (and `_redeliver` more), then RESUMED."""
        old = self._sessions.get(d.get("session_id"))
        if old is None or d.get("token") != self.token:
            self.refused_resumes += 1
            await ws.send_str(_frame(9, False))
            return
        self.resumes += 1
        self.resume_paths.append(path)
        old.ws, old.transport = ws, transport
        since = (d.get("seq") or 0) - self._redeliver
        for ev in [e for e in old.events if e["s"] > since]:
            await ws.send_str(json.dumps(ev))
        await self._send_event(old, "RESUMED", {})

    def _guild_create(self, gid: str) -> dict:
        g = self.guilds[gid]
        members = [P.member(self.bot, [])] + [self._member(gid, u) for u in self.users.values()]
        channels = [self.channels[c] for c in g["channel_ids"] if self.channels[c]["type"] == 0]
        threads = [c for c in self.channels.values() if c["type"] == 11 and c.get("guild_id") == gid]
        return {
            "id": gid, "name": g["name"], "icon": None, "splash": None, "discovery_splash": None,
            "owner_id": self.owner["id"], "afk_channel_id": None, "afk_timeout": 300,
            "verification_level": 0, "default_message_notifications": 0, "explicit_content_filter": 0,
            "roles": g["roles"], "emojis": [], "stickers": [], "features": [], "mfa_level": 0,
            "application_id": None, "system_channel_id": None, "system_channel_flags": 0,
            "rules_channel_id": None, "vanity_url_code": None, "description": None, "banner": None,
            "premium_tier": 0, "preferred_locale": "en-US", "public_updates_channel_id": None,
            "nsfw_level": 0, "premium_progress_bar_enabled": False,
            "joined_at": P.iso_now(), "large": False, "unavailable": False,
            "member_count": len(members), "voice_states": [], "members": members, "channels": channels,
            "threads": threads, "presences": [], "stage_instances": [], "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

