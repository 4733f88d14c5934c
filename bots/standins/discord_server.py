"""A stand-in Discord for tests: REST (v10), gateway websocket and CDN on 127.0.0.1 (random free port).

Drives the real discord.py. What it covers:
- REST routes discord.py uses for a bot: users/@me, oauth2/applications/@me, gateway(/bot), application and
  guild commands (bulk overwrite counted per scope), channel messages POST/GET/PATCH (JSON or multipart with
  `payload_json` + `files[n]`), typing, threads from a message, interaction callbacks, the interaction
  webhook (@original PATCH/GET, followups POST/PATCH).
- Discord's rate-limit headers with per-channel buckets (default 5 per 5 s) and a global 50/s; a 429 has a
  JSON body with retry_after/global, X-RateLimit-Scope and `Via`. Every 429 is counted in `self.rate_limited`.
- Gateway: HELLO, IDENTIFY -> READY (+ GUILD_CREATE with channels/roles/members), heartbeats ACKed, RESUME
  replaying missed events, INVALID_SESSION for unknown sessions; close codes 4004 (bad token) and 4014
  (Message Content intent not enabled for the app) like the real one.
- Sharding: IDENTIFY's `shard` [shard_id, num_shards] (4010 when invalid); one live session per shard; READY,
  GUILD_CREATE and every guild event go to shard (guild_id >> 22) % num_shards, DMs to shard 0; GET /gateway/bot
  recommends `shards` (constructor argument).
- A message store with each message's final content, attachments, channel and edit count.

Tests talk to it through helpers: user_message(), slash(), messages_in(), drop_gateway(), ...
"""
from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from bots.standins import discord_payloads as P
from bots.standins.discord_ratelimit import RateLimiter

# A real API takes any number of connections at once: a burst of 200 new ones must not overflow the listen
# queue (aiohttp's default is 128) and wait out a SYN retry on a loaded machine.
BACKLOG = 1024

INTENT_MESSAGE_CONTENT = 1 << 15
ADMINISTRATOR = 1 << 3
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7


@dataclass
class StoredMessage:
    id: str
    channel_id: str
    author_id: str
    content: str
    attachments: list[dict] = field(default_factory=list)   # payload dicts (+ "data" bytes for uploads)
    edits: int = 0
    flags: int = 0
    reference_id: str | None = None
    interaction_id: str | None = None
    payload: dict = field(default_factory=dict)
    history: list[str] = field(default_factory=list)        # every content it ever had, in order

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & FLAG_EPHEMERAL)

    def buttons(self) -> list[dict]:
        """The button components of its action rows."""
        return [c for row in self.payload.get("components") or [] for c in row.get("components", [])
                if c.get("type") == 2]

    def files(self) -> dict[str, bytes]:
        return {a["filename"]: a.get("data", b"") for a in self.attachments}


@dataclass
class InteractionRecord:
    id: str
    token: str
    name: str
    channel_id: str
    user_id: str
    created_at: float
    callbacks: list[dict] = field(default_factory=list)    # {"type", "flags", "at", "content"}
    message_id: str | None = None                          # a component interaction: the clicked message
    original_id: str | None = None
    followup_ids: list[str] = field(default_factory=list)

    @property
    def deferred_after(self) -> float | None:
        return self.callbacks[0]["at"] - self.created_at if self.callbacks else None


@dataclass
class _Session:
    id: str
    intents: int
    shard: tuple[int, int] = (0, 1)       # IDENTIFY's [shard_id, num_shards]; (0, 1): not sharded
    seq: int = 0
    events: list[dict] = field(default_factory=list)
    ws: web.WebSocketResponse | None = None


class FakeDiscord:
    def __init__(
        self,
        *,
        token: str = "test-token",
        message_content_intent: bool = True,
        channel_limit: int = 5,
        channel_period: float = 5.0,
        global_limit: int = 50,
        rate_limit_headers: bool = True,
        max_upload_bytes: int = 10 * 1024 * 1024,
        shards: int = 1,
    ) -> None:
        self.token = token
        self.shards = shards            # what GET /gateway/bot recommends
        self.message_content_intent = message_content_intent
        self.max_upload_bytes = max_upload_bytes
        self.limiter = RateLimiter(channel_limit=channel_limit, channel_period=channel_period,
                                   global_limit=global_limit, send_headers=rate_limit_headers)
        self.ids = P.Snowflakes()
        self.bot = P.user(self.ids.next(), "teambridge", bot=True)
        self.application_id = self.ids.next()
        self.owner = P.user(self.ids.next(), "owner")
        # world
        self.guilds: dict[str, dict] = {}
        self.channels: dict[str, dict] = {}      # channel id -> channel payload (guild text, thread or DM)
        self.users: dict[str, dict] = {}
        self.members: dict[tuple[str, str], dict] = {}
        # recorded
        self.messages: dict[str, StoredMessage] = {}
        self.interactions: dict[str, InteractionRecord] = {}
        self.commands: dict[str, list[dict]] = {}  # "global" or guild id -> commands
        self.command_syncs: dict[str, int] = {}    # scope -> bulk overwrite count
        self.typing: dict[str, int] = {}
        self.requests: list[dict] = []             # {"method","path","status","at","channel"}
        self.request_bodies: list[dict] = []       # {"method","path","body"}: JSON bodies (or payload_json) sent
        self.rate_limited: list[dict] = []         # every 429 we sent (+ "scope": user | global)
        self.last_headers: dict[str, str] = {}     # headers of the last successful REST response
        self.cdn: dict[str, tuple[bytes, str]] = {}
        self.cdn_downloads: list[str] = []
        self.cdn_redirects: dict[str, str] = {}    # CDN path -> where its download redirects to
        self.identifies = 0
        self.gateway_up = True                     # False: new gateway connections are refused (Discord down)
        self.resumes = 0
        self._sessions: dict[str, _Session] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> "FakeDiscord":
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway-ws", self._gateway)
        app.router.add_get("/attachments/{path:.+}", self._cdn_get)
        app.router.add_route("*", "/api/v10/{path:.+}", self._rest)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=BACKLOG)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        for s in self._sessions.values():
            if s.ws is not None and not s.ws.closed:
                await s.ws.close(code=1001)
        if self._runner:
            await self._runner.cleanup()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway-ws"

    def env(self) -> dict[str, str]:
        return {"DISCORD_BOT_TOKEN": self.token, "DISCORD_API_URL": self.api_url,
                "DISCORD_GATEWAY_URL": self.gateway_url}

    # ---- world building --------------------------------------------------------------------------

    def add_user(self, name: str, *, admin: bool = False) -> dict:
        u = P.user(self.ids.next(), name)
        u["_admin"] = admin
        self.users[u["id"]] = u
        return u

    def add_guild(self, name: str = "Team", channels: tuple[str, ...] = ("general",), *,
                  shard: int | None = None) -> dict:
        """`shard`: an id that puts the guild on this shard of `self.shards` (Discord's formula)."""
        gid = self.ids.next() if shard is None else self.ids.next_on_shard(shard, self.shards)
        everyone = P.role(gid, "@everyone", 0x0000_0000_0064_0E41 | (1 << 11) | (1 << 15) | (1 << 35), 0)
        admin = P.role(self.ids.next(), "admins", ADMINISTRATOR, 1)
        guild = {"id": gid, "name": name, "roles": [everyone, admin], "channel_ids": []}
        self.guilds[gid] = guild
        for i, cname in enumerate(channels):
            ch = P.text_channel(self.ids.next(), gid, cname, i)
            self.channels[ch["id"]] = ch
            guild["channel_ids"].append(ch["id"])
        return guild

    def channel_id(self, guild: dict, name: str) -> str:
        return next(c for c in guild["channel_ids"] if self.channels[c]["name"] == name)

    def dm_channel(self, u: dict) -> str:
        for cid, ch in self.channels.items():
            if ch["type"] == 1 and ch["recipients"][0]["id"] == u["id"]:
                return cid
        cid = self.ids.next()
        self.channels[cid] = {"id": cid, "type": 1, "recipients": [_public(u)], "last_message_id": None}
        return cid

    def _member(self, guild_id: str, u: dict) -> dict:
        key = (guild_id, u["id"])
        if key not in self.members:
            guild = self.guilds[guild_id]
            roles = [guild["roles"][1]["id"]] if u.get("_admin") else []
            self.members[key] = P.member(_public(u), roles)
        return self.members[key]

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

    # ---- test helpers: what users do -------------------------------------------------------------

    def upload_to_cdn(self, channel_id: str, filename: str, data: bytes, content_type: str | None) -> dict:
        att_id = self.ids.next()
        path = f"{channel_id}/{att_id}/{filename}"
        self.cdn[path] = (data, content_type or "application/octet-stream")
        return P.attachment(att_id, filename, len(data), f"{self.base}/attachments/{path}", content_type)

    async def user_message(
        self,
        channel_id: str,
        author: dict,
        content: str,
        *,
        mention_bot: bool = False,
        reply_to: str | None = None,
        files: list[tuple[str, bytes, str | None]] = (),
        claimed_size: int | None = None,
        file_url: str | None = None,
    ) -> str:
        """A user posts a message; MESSAGE_CREATE goes out on the gateway. Returns the message id.
        `file_url`: the attachments claim to live there instead (a forged payload)."""
        ch = self.channels[channel_id]
        guild_id = ch.get("guild_id")
        mid = self.ids.next()
        if mention_bot:
            content = f"<@{self.bot['id']}> {content}"
        atts = [self.upload_to_cdn(channel_id, n, d, t) for n, d, t in files]
        if claimed_size is not None:
            for a in atts:
                a["size"] = claimed_size
        if file_url is not None:
            for a in atts:
                a["url"] = a["proxy_url"] = file_url
        reference = referenced = None
        if reply_to:
            reference = {"type": 0, "message_id": reply_to, "channel_id": channel_id}
            if guild_id:
                reference["guild_id"] = guild_id
            referenced = self.messages[reply_to].payload
        payload = P.message(
            message_id=mid, channel_id=channel_id, author=_public(author), content=content,
            guild_id=guild_id, member_data=self._member(guild_id, author) if guild_id else None,
            mentions=[self.bot] if mention_bot else [], attachments=atts,
            reference=reference, referenced=referenced,
        )
        self.messages[mid] = StoredMessage(mid, channel_id, author["id"], content, atts, payload=payload,
                                           reference_id=reply_to, history=[content])
        dispatched = dict(payload)
        session_intents = [s.intents for s in self._sessions.values()]
        # Without the Message Content intent Discord blanks content/attachments of guild messages
        # that neither mention the bot nor are DMs.
        if guild_id and not mention_bot and session_intents and not (session_intents[-1] & INTENT_MESSAGE_CONTENT):
            dispatched.update(content="", attachments=[], embeds=[])
        await self.dispatch("MESSAGE_CREATE", dispatched)
        return mid

    async def slash(
        self,
        channel_id: str,
        author: dict,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        files: dict[str, tuple[str, bytes, str | None]] | None = None,
    ) -> InteractionRecord:
        """A user runs /name; INTERACTION_CREATE goes out on the gateway."""
        ch = self.channels[channel_id]
        guild_id = ch.get("guild_id")
        iid, token = self.ids.next(), "itok-" + secrets.token_hex(8)
        opts: list[dict] = []
        resolved: dict = {}
        for key, value in (options or {}).items():
            if isinstance(value, dict) and "username" in value:  # a USER option: id + resolved user/member
                opts.append({"name": key, "type": 6, "value": value["id"]})
                resolved.setdefault("users", {})[value["id"]] = _public(value)
                if guild_id:
                    member = {k: v for k, v in self._member(guild_id, value).items() if k != "user"}
                    resolved.setdefault("members", {})[value["id"]] = member
                continue
            opts.append({"name": key, "type": 4 if isinstance(value, int) else 3, "value": value})
        for key, (fname, data, ctype) in (files or {}).items():
            att = self.upload_to_cdn(channel_id, fname, data, ctype)
            resolved.setdefault("attachments", {})[att["id"]] = att
            opts.append({"name": key, "type": 11, "value": att["id"]})
        scope = guild_id if guild_id and guild_id in self.commands else "global"
        cmd = next((c for c in self.commands.get(scope, []) if c["name"] == name), None)
        data: dict[str, Any] = {
            "id": cmd["id"] if cmd else self.ids.next(), "name": name, "type": 1, "options": opts,
        }
        if resolved:
            data["resolved"] = resolved
        if guild_id:
            data["guild_id"] = guild_id
        channel_payload = {k: v for k, v in ch.items() if k != "recipients"} if guild_id else ch
        payload: dict[str, Any] = {
            "id": iid, "application_id": self.application_id, "type": 2, "data": data, "token": token,
            "version": 1, "channel_id": channel_id, "channel": channel_payload,
            "locale": "en-US", "app_permissions": str((1 << 53) - 1), "entitlements": [],
            "authorizing_integration_owners": {"0": guild_id} if guild_id else {"1": author["id"]},
            "context": 0 if guild_id else 1, "attachment_size_limit": self.max_upload_bytes,
        }
        if guild_id:
            payload["guild_id"] = guild_id
            payload["guild_locale"] = "en-US"
            m = dict(self._member(guild_id, author))
            m["permissions"] = str(ADMINISTRATOR if author.get("_admin") else 0x0000_0000_0064_0E41)
            payload["member"] = m
        else:
            payload["user"] = _public(author)
        rec = InteractionRecord(iid, token, name, channel_id, author["id"], time.monotonic())
        self.interactions[iid] = rec
        await self.dispatch("INTERACTION_CREATE", payload)
        return rec

    async def click(self, message: StoredMessage, label: str, author: dict) -> InteractionRecord:
        """A user clicks the button labelled `label` on a bot message: a MESSAGE_COMPONENT interaction
        (type 3, data.component_type 2 and the button's custom_id) with the message it sits on."""
        [button] = [b for b in message.buttons() if b.get("label") == label]
        ch = self.channels[message.channel_id]
        guild_id = ch.get("guild_id")
        iid, token = self.ids.next(), "itok-" + secrets.token_hex(8)
        payload: dict[str, Any] = {
            "id": iid, "application_id": self.application_id, "type": 3, "token": token, "version": 1,
            "data": {"custom_id": button["custom_id"], "component_type": 2},
            "message": message.payload, "channel_id": message.channel_id,
            "channel": {k: v for k, v in ch.items() if k != "recipients"} if guild_id else ch,
            "locale": "en-US", "app_permissions": str((1 << 53) - 1), "entitlements": [],
            "authorizing_integration_owners": {"0": guild_id} if guild_id else {"1": author["id"]},
            "context": 0 if guild_id else 1, "attachment_size_limit": self.max_upload_bytes,
        }
        if guild_id:
            payload["guild_id"] = guild_id
            payload["guild_locale"] = "en-US"
            m = dict(self._member(guild_id, author))
            m["permissions"] = str(ADMINISTRATOR if author.get("_admin") else 0x0000_0000_0064_0E41)
            payload["member"] = m
        else:
            payload["user"] = _public(author)
        rec = InteractionRecord(iid, token, button["custom_id"], message.channel_id, author["id"], time.monotonic(),
                                message_id=message.id)
        self.interactions[iid] = rec
        await self.dispatch("INTERACTION_CREATE", payload)
        return rec

    # ---- test helpers: what tests look at --------------------------------------------------------

    def messages_in(self, channel_id: str, *, by_bot: bool | None = None) -> list[StoredMessage]:
        out = [m for m in self.messages.values() if m.channel_id == channel_id]
        if by_bot is not None:
            out = [m for m in out if (m.author_id == self.bot["id"]) == by_bot]
        return sorted(out, key=lambda m: int(m.id))

    def bot_text(self, channel_id: str) -> str:
        return "".join(m.content for m in self.messages_in(channel_id, by_bot=True))

    async def wait_for(self, predicate, timeout: float = 30.0, interval: float = 0.02):
        """Poll until predicate() is truthy (returns its value); raise with a useful message otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout}s")
            await asyncio.sleep(interval)

    # ---- gateway ---------------------------------------------------------------------------------

    @staticmethod
    def shard_of(guild_id: Any, count: int) -> int:
        """Discord's formula: a guild's events go to shard (guild_id >> 22) % num_shards; DMs to shard 0. (A
        guild id that is no snowflake — the fuzz tests dispatch broken payloads — goes to shard 0.)"""
        try:
            return (int(guild_id) >> 22) % count if guild_id else 0
        except (TypeError, ValueError):
            return 0

    def _on_shard(self, session: _Session, event: str, data: Any) -> bool:
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
            if not self._on_shard(s, event, data):
                continue
            s.seq += 1
            frame = {"op": 0, "t": event, "s": s.seq, "d": data}
            s.events.append(frame)
            if s.ws is not None and not s.ws.closed:
                await s.ws.send_str(json.dumps(frame))

    async def drop_gateway(self, code: int = 4000, *, redeliver: int = 0) -> None:
        """Close every live gateway socket (4000 = unknown error, resumable; 4014/4004 are fatal).
        `redeliver`: on RESUME, send the last N already-delivered events again (Discord may do that)."""
        self._redeliver = redeliver
        for s in self._sessions.values():
            if s.ws is not None and not s.ws.closed:
                ws, s.ws = s.ws, None
                await ws.close(code=code)

    def connected(self) -> bool:
        return any(s.ws is not None and not s.ws.closed for s in self._sessions.values())

    async def go_down(self) -> None:
        """Discord's gateway is unreachable: live sockets close (resumable) and reconnects are refused."""
        self.gateway_up = False
        await self.drop_gateway(4000)

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        if not self.gateway_up:
            return web.Response(status=503, text="gateway unavailable")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(json.dumps({"op": 10, "s": None, "t": None, "d": {"heartbeat_interval": 41250}}))
        session: _Session | None = None
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            op, d = frame.get("op"), frame.get("d")
            if op == 1:
                await ws.send_str(json.dumps({"op": 11, "s": None, "t": None, "d": None}))
            elif op == 2:
                self.identifies += 1
                if d.get("token") != self.token:
                    await ws.close(code=4004, message=b"Authentication failed.")
                    break
                if d.get("intents", 0) & INTENT_MESSAGE_CONTENT and not self.message_content_intent:
                    await ws.close(code=4014, message=b"Disallowed intent(s).")
                    break
                shard = tuple(d.get("shard") or (0, 1))
                if len(shard) != 2 or not 0 <= shard[0] < shard[1]:
                    await ws.close(code=4010, message=b"Invalid shard.")
                    break
                session = _Session(secrets.token_hex(16), d.get("intents", 0), shard=shard, ws=ws)
                # one live session per shard: a new IDENTIFY for a shard replaces its old session
                self._sessions = {sid: s for sid, s in self._sessions.items() if s.shard[0] != shard[0]}
                self._sessions[session.id] = session
                guilds = [g for g in self.guilds if self.shard_of(g, shard[1]) == shard[0]]
                ready = {
                    "v": 10, "user": {**self.bot, "verified": True, "mfa_enabled": False},
                    "guilds": [{"id": g, "unavailable": True} for g in guilds],
                    "session_id": session.id, "resume_gateway_url": self.gateway_url,
                    "application": {"id": self.application_id, "flags": 0},
                    "private_channels": [], "relationships": [], "presences": [],
                }
                if "shard" in d:
                    ready["shard"] = d["shard"]
                await self._send_event(session, "READY", ready)
                for gid in guilds:
                    await self._send_event(session, "GUILD_CREATE", self._guild_create(gid))
            elif op == 6:
                old = self._sessions.get(d.get("session_id"))
                if old is None or d.get("token") != self.token:
                    await ws.send_str(json.dumps({"op": 9, "s": None, "t": None, "d": False}))
                    continue
                self.resumes += 1
                session, session.ws = old, ws
                since = (d.get("seq") or 0) - getattr(self, "_redeliver", 0)
                for ev in [e for e in session.events if e["s"] > since]:
                    await ws.send_str(json.dumps(ev))
                await self._send_event(session, "RESUMED", {})
        return ws

    async def _send_event(self, session: _Session, event: str, data: dict) -> None:
        session.seq += 1
        frame = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.events.append(frame)
        if session.ws is not None:
            await session.ws.send_str(json.dumps(frame))

    # ---- CDN -------------------------------------------------------------------------------------

    async def _cdn_get(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        if path not in self.cdn:
            return web.Response(status=404, text="Not Found")
        self.cdn_downloads.append(path)
        if path in self.cdn_redirects:
            raise web.HTTPFound(self.cdn_redirects[path])
        data, ctype = self.cdn[path]
        return web.Response(body=data, content_type=ctype)

    # ---- REST ------------------------------------------------------------------------------------

    _ROUTES: list[tuple[str, re.Pattern, str]] = [
        (m, re.compile("^" + p + "$"), h) for m, p, h in [
            ("GET", r"users/@me", "_get_me"),
            ("GET", r"oauth2/applications/@me", "_get_app"),
            ("GET", r"gateway(/bot)?", "_get_gateway"),
            ("GET", r"applications/(?P<app>\d+)/commands", "_get_commands"),
            ("PUT", r"applications/(?P<app>\d+)/commands", "_put_commands"),
            ("GET", r"applications/(?P<app>\d+)/guilds/(?P<guild>\d+)/commands", "_get_commands"),
            ("PUT", r"applications/(?P<app>\d+)/guilds/(?P<guild>\d+)/commands", "_put_commands"),
            ("POST", r"channels/(?P<channel>\d+)/messages", "_post_message"),
            ("GET", r"channels/(?P<channel>\d+)/messages", "_list_messages"),
            ("GET", r"channels/(?P<channel>\d+)/messages/(?P<message>\d+)", "_get_message"),
            ("PATCH", r"channels/(?P<channel>\d+)/messages/(?P<message>\d+)", "_patch_message"),
            ("POST", r"channels/(?P<channel>\d+)/typing", "_typing"),
            ("POST", r"channels/(?P<channel>\d+)/messages/(?P<message>\d+)/threads", "_create_thread"),
            ("POST", r"interactions/(?P<iid>\d+)/(?P<token>[^/]+)/callback", "_callback"),
            ("POST", r"webhooks/(?P<app>\d+)/(?P<token>[^/]+)", "_followup"),
            ("GET", r"webhooks/(?P<app>\d+)/(?P<token>[^/]+)/messages/(?P<message>@original|\d+)", "_get_webhook_msg"),
            ("PATCH", r"webhooks/(?P<app>\d+)/(?P<token>[^/]+)/messages/(?P<message>@original|\d+)",
             "_patch_webhook_msg"),
        ]
    ]

    # bucket hash + major parameter + limit kind + counted globally?
    def _bucket(self, handler: str, params: dict) -> tuple[str, str, str, bool]:
        if handler in ("_post_message", "_patch_message"):
            # sends and edits in one channel share one bucket in this stand-in (the ~5/5 s people observe)
            return "b-msg", params["channel"], "channel", True
        if handler in ("_followup", "_patch_webhook_msg", "_get_webhook_msg"):
            return "b-webhook", params["token"], "webhook", False  # not counted against the global limit
        if handler == "_callback":
            return "b-callback", params["iid"], "other", False
        return "b-" + handler, params.get("channel") or params.get("guild") or "", "other", True

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        for method, pattern, handler in self._ROUTES:
            m = pattern.match(path)
            if m and method == request.method:
                break
        else:
            return _json({"message": "404: Not Found", "code": 0}, 404)
        params = m.groupdict()
        entry = {"method": request.method, "path": path, "at": time.monotonic(),
                 "channel": params.get("channel")}
        self.requests.append(entry)
        if not handler.startswith(("_callback", "_followup", "_patch_webhook", "_get_webhook")):
            if request.headers.get("Authorization") != f"Bot {self.token}":
                entry["status"] = 401
                return _json({"message": "401: Unauthorized", "code": 0}, 401)
        bucket, major, kind, counts = self._bucket(handler, params)
        decision = self.limiter.check(bucket, major, counts_globally=counts, kind=kind)
        if not decision.allowed:
            entry["status"] = 429
            entry["scope"] = decision.scope
            self.rate_limited.append(entry)
            body = {"message": "You are being rate limited.", "code": 0, "retry_after": decision.retry_after,
                    "global": decision.is_global}
            return _json(body, 429, decision.headers)
        resp = await getattr(self, handler)(request, **params)
        entry["status"] = resp.status
        for k, v in decision.headers.items():
            resp.headers[k] = v
        self.last_headers = dict(resp.headers)
        return resp

    async def _get_me(self, request: web.Request) -> web.Response:
        return _json({**self.bot, "verified": True, "mfa_enabled": False, "locale": "en-US"})

    async def _get_app(self, request: web.Request) -> web.Response:
        return _json({
            "id": self.application_id, "name": "teambridge", "icon": None, "description": "",
            "rpc_origins": [], "bot_public": True, "bot_require_code_grant": False, "bot": self.bot,
            "owner": self.owner, "summary": "", "verify_key": "0" * 64, "team": None, "flags": 0,
            "guild_id": None, "interactions_endpoint_url": None, "redirect_uris": [],
        })

    async def _get_gateway(self, request: web.Request) -> web.Response:
        return _json({"url": self.gateway_url, "shards": self.shards, "session_start_limit": {
            "total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}})

    async def _get_commands(self, request: web.Request, app: str, guild: str | None = None) -> web.Response:
        return _json(self.commands.get(guild or "global", []))

    async def _put_commands(self, request: web.Request, app: str, guild: str | None = None) -> web.Response:
        body = await request.json()
        scope = guild or "global"
        self.command_syncs[scope] = self.command_syncs.get(scope, 0) + 1
        stored = []
        for c in body:
            c = dict(c)
            c.update(id=self.ids.next(), application_id=self.application_id, version=self.ids.next(),
                     type=c.get("type", 1), default_member_permissions=c.get("default_member_permissions"))
            if guild:
                c["guild_id"] = guild
            stored.append(c)
        self.commands[scope] = stored
        return _json(stored)

    async def _read_body(self, request: web.Request) -> tuple[dict, list[dict]]:
        """JSON body, or multipart with payload_json + files[n] (how discord.py sends attachments)."""
        if request.content_type.startswith("multipart/"):
            payload: dict = {}
            files: list[dict] = []
            reader = await request.multipart()
            async for part in reader:
                if part.name == "payload_json":
                    payload = json.loads(await part.text())
                elif part.name and part.name.startswith("files["):
                    data = await part.read(decode=False)
                    files.append({"filename": part.filename, "data": bytes(data),
                                  "content_type": part.headers.get("Content-Type")})
            self.request_bodies.append({"method": request.method, "path": request.path, "body": payload})
            return payload, files
        text = await request.text()
        body = json.loads(text) if text else {}
        self.request_bodies.append({"method": request.method, "path": request.path, "body": body})
        return body, []

    def _check_message(self, body: dict, files: list[dict]) -> web.Response | None:
        content = body.get("content")
        if content is not None and len(content) > 2000:
            return _json({"message": "Invalid Form Body", "code": 50035, "errors": {"content": {"_errors": [
                {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]}}}, 400)
        if any(len(f["data"]) > self.max_upload_bytes for f in files):
            return _json({"message": "Request entity too large", "code": 40005}, 413)
        return None

    def _store_files(self, channel_id: str, files: list[dict]) -> list[dict]:
        atts = []
        for f in files:
            a = self.upload_to_cdn(channel_id, f["filename"], f["data"], f["content_type"])
            a["data"] = f["data"]
            atts.append(a)
        return atts

    def _new_bot_message(self, channel_id: str, body: dict, files: list[dict], *, flags: int = 0,
                         interaction_id: str | None = None) -> StoredMessage:
        ch = self.channels.get(channel_id, {})
        mid = self.ids.next()
        atts = self._store_files(channel_id, files)
        ref = body.get("message_reference")
        if ref and ref.get("message_id") is not None:
            ref = {**ref, "message_id": str(ref["message_id"])}  # discord.py sends it as a JSON number
        referenced = None
        if ref and ref.get("message_id") in self.messages:
            referenced = self.messages[ref["message_id"]].payload
        flags = flags | int(body.get("flags") or 0)
        content = body.get("content") or ""
        payload = P.message(
            message_id=mid, channel_id=channel_id, author=self.bot, content=content,
            guild_id=ch.get("guild_id"), attachments=[_public_att(a) for a in atts],
            reference=({"type": 0, "message_id": ref["message_id"], "channel_id": channel_id} if ref else None),
            referenced=referenced, flags=flags, interaction_id=interaction_id,
            webhook_id=self.application_id if interaction_id else None,
        )
        if body.get("components"):
            payload["components"] = body["components"]
        msg = StoredMessage(mid, channel_id, self.bot["id"], content, atts, flags=flags,
                            reference_id=ref.get("message_id") if ref else None,
                            interaction_id=interaction_id, payload=payload, history=[content])
        self.messages[mid] = msg
        return msg

    def _apply_edit(self, msg: StoredMessage, body: dict, files: list[dict]) -> None:
        if "content" in body and body["content"] is not None:
            msg.content = body["content"]
        if files:
            msg.attachments += self._store_files(msg.channel_id, files)
        msg.flags &= ~FLAG_LOADING
        msg.edits += 1
        msg.history.append(msg.content)
        msg.payload.update(content=msg.content, edited_timestamp=P.iso_now(), flags=msg.flags,
                           attachments=[_public_att(a) for a in msg.attachments])
        if "components" in body:
            msg.payload["components"] = body["components"] or []

    async def _post_message(self, request: web.Request, channel: str) -> web.Response:
        if channel not in self.channels:
            return _json({"message": "Unknown Channel", "code": 10003}, 404)
        body, files = await self._read_body(request)
        if (err := self._check_message(body, files)) is not None:
            return err
        msg = self._new_bot_message(channel, body, files)
        # Discord echoes the bot's own message on the gateway too; the bot must ignore it.
        await self.dispatch("MESSAGE_CREATE", msg.payload)
        return _json(msg.payload)

    async def _list_messages(self, request: web.Request, channel: str) -> web.Response:
        msgs = [m.payload for m in reversed(self.messages_in(channel))]
        return _json(msgs[: int(request.query.get("limit", 50))])

    async def _get_message(self, request: web.Request, channel: str, message: str) -> web.Response:
        msg = self.messages.get(message)
        if msg is None or msg.channel_id != channel:
            return _json({"message": "Unknown Message", "code": 10008}, 404)
        return _json(msg.payload)

    async def _patch_message(self, request: web.Request, channel: str, message: str) -> web.Response:
        msg = self.messages.get(message)
        if msg is None or msg.channel_id != channel:
            return _json({"message": "Unknown Message", "code": 10008}, 404)
        if msg.author_id != self.bot["id"]:
            return _json({"message": "Cannot edit a message authored by another user", "code": 50005}, 403)
        body, files = await self._read_body(request)
        if (err := self._check_message(body, files)) is not None:
            return err
        self._apply_edit(msg, body, files)
        return _json(msg.payload)

    async def _typing(self, request: web.Request, channel: str) -> web.Response:
        self.typing[channel] = self.typing.get(channel, 0) + 1
        return web.Response(status=204)

    async def _create_thread(self, request: web.Request, channel: str, message: str) -> web.Response:
        body = await request.json()
        parent = self.channels.get(channel)
        if parent is None or parent["type"] != 0:
            return _json({"message": "Cannot execute action on this channel type", "code": 50024}, 400)
        if message in self.channels:
            return _json({"message": "A thread has already been created for this message", "code": 160004}, 400)
        # The thread id equals the starter message id.
        thread = P.thread_channel(message, parent["guild_id"], channel, body.get("name", "thread"), self.bot["id"])
        self.channels[message] = thread
        await self.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
        return _json(thread, 201)

    async def _callback(self, request: web.Request, iid: str, token: str) -> web.Response:
        rec = self.interactions.get(iid)
        if rec is None or rec.token != token:
            return _json({"message": "Unknown interaction", "code": 10062}, 404)
        if rec.callbacks:
            return _json({"message": "Interaction has already been acknowledged.", "code": 40060}, 400)
        body, files = await self._read_body(request)
        rtype, data = body.get("type"), body.get("data") or {}
        flags = int(data.get("flags") or 0)
        rec.callbacks.append({"type": rtype, "flags": flags, "at": time.monotonic(),
                              "content": data.get("content")})
        resource: dict = {"type": rtype}
        if rtype in (4, 5):  # CHANNEL_MESSAGE_WITH_SOURCE / DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
            msg = self._new_bot_message(rec.channel_id, data if rtype == 4 else {}, files,
                                        flags=flags | (FLAG_LOADING if rtype == 5 else 0), interaction_id=iid)
            rec.original_id = msg.id
            resource["message"] = msg.payload
        elif rtype == 7 and rec.message_id in self.messages:  # UPDATE_MESSAGE: a component's own message
            clicked = self.messages[rec.message_id]
            self._apply_edit(clicked, data, files)
            resource["message"] = clicked.payload
        if rtype in (6, 7) and rec.message_id in self.messages:
            # A component interaction's "original" is the message the component is on: PATCH @original edits it.
            rec.original_id = rec.message_id
        response = {"interaction": {
            "id": iid, "type": 2, "response_message_id": rec.original_id,
            "response_message_loading": rtype == 5, "response_message_ephemeral": bool(flags & FLAG_EPHEMERAL)},
            "resource": resource}
        if request.query.get("with_response") in ("1", "true", "True"):
            return _json(response)
        return web.Response(status=204)

    def _interaction_by_token(self, token: str) -> InteractionRecord | None:
        return next((r for r in self.interactions.values() if r.token == token), None)

    async def _followup(self, request: web.Request, app: str, token: str) -> web.Response:
        rec = self._interaction_by_token(token)
        if rec is None or app != self.application_id:
            return _json({"message": "Unknown Webhook", "code": 10015}, 404)
        body, files = await self._read_body(request)
        if (err := self._check_message(body, files)) is not None:
            return err
        if not rec.callbacks:
            return _json({"message": "Unknown Webhook", "code": 10015}, 404)
        msg = self._new_bot_message(rec.channel_id, body, files, interaction_id=rec.id)
        rec.followup_ids.append(msg.id)
        return _json(msg.payload)

    def _webhook_message(self, rec: InteractionRecord, message: str) -> StoredMessage | None:
        mid = rec.original_id if message == "@original" else message
        return self.messages.get(mid or "")

    async def _get_webhook_msg(self, request: web.Request, app: str, token: str, message: str) -> web.Response:
        rec = self._interaction_by_token(token)
        msg = self._webhook_message(rec, message) if rec else None
        if msg is None:
            return _json({"message": "Unknown Message", "code": 10008}, 404)
        return _json(msg.payload)

    async def _patch_webhook_msg(self, request: web.Request, app: str, token: str, message: str) -> web.Response:
        rec = self._interaction_by_token(token)
        msg = self._webhook_message(rec, message) if rec else None
        if msg is None:
            return _json({"message": "Unknown Message", "code": 10008}, 404)
        body, files = await self._read_body(request)
        if (err := self._check_message(body, files)) is not None:
            return err
        self._apply_edit(msg, body, files)
        return _json(msg.payload)


def _public(u: dict) -> dict:
    return {k: v for k, v in u.items() if not k.startswith("_")}


def _public_att(a: dict) -> dict:
    return {k: v for k, v in a.items() if k != "data"}


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # discord.py parses JSON only when Content-Type is exactly "application/json"
    # (aiohttp's json_response appends "; charset=utf-8", which discord.py would treat as text).
    resp = web.Response(status=status, body=json.dumps(data).encode(), headers=headers or {})
    resp.headers["Content-Type"] = "application/json"
    return resp
