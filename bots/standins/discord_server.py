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

Here: the server, the world (guilds, channels, users, members), what users post, the CDN, and what tests look
at. By job, in modules of their own: the REST routes (discord_rest.py), the gateway with sharding, IDENTIFY and
RESUME (discord_gateway.py), interactions and the answers to them (discord_interactions.py), rate limits
(discord_ratelimit.py), payloads (discord_payloads.py) and the stored values (discord_model.py).
"""
from __future__ import annotations

import asyncio
import re
import time

from aiohttp import web

from bots.standins.http import listen
from bots.standins import discord_payloads as P
from bots.standins.discord_gateway import Gateway, Session
from bots.standins.discord_interactions import Interactions
from bots.standins.discord_model import (ADMINISTRATOR, FLAG_EPHEMERAL, FLAG_LOADING,  # noqa: F401 (imported from here)
                                         INTENT_MESSAGE_CONTENT, InteractionRecord, StoredMessage,
                                         public as _public)
from bots.standins.discord_ratelimit import RateLimiter
from bots.standins.discord_rest import Rest

class FakeDiscord(Rest, Gateway, Interactions):
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
        self.typing_shown: list[tuple[str, int]] = []   # (channel, the bot's messages there when it showed)
        self.typing_delay = 0.0                    # seconds a POST /typing takes to arrive (set by a test)
        self.typing_on_the_way = 0                 # POST /typing sent and not arrived yet (with typing_delay)
        self.requests: list[dict] = []             # {"method","path","status","at","channel"}
        self.request_bodies: list[dict] = []       # {"method","path","body"}: JSON bodies (or payload_json) sent
        self.rate_limited: list[dict] = []         # every 429 we sent (+ "scope": user | global)
        self.last_headers: dict[str, str] = {}     # headers of the last successful REST response
        self.cdn: dict[str, tuple[bytes, str]] = {}
        self.cdn_downloads: list[str] = []
        self.cdn_redirects: dict[str, str] = {}    # CDN path -> where its download redirects to
        self.identifies = 0
        self.gateway_up = True                     # False: new gateway connections are refused (Discord down)
        self.requests_refused = 0                  # gateway connections refused while it was down
        self.resumes = 0
        self.refused_resumes = 0                   # RESUMEs answered INVALID_SESSION (unknown or ended session)
        self.resume_paths: list[str] = []          # where each accepted RESUME came in (READY's resume_gateway_url)
        self._sessions: dict[str, Session] = {}
        self._redeliver = 0                        # see drop_gateway
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> "FakeDiscord":
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway-ws", self._gateway)
        app.router.add_get("/gateway-ws/resume", self._gateway)   # READY's resume_gateway_url
        app.router.add_get("/attachments/{path:.+}", self._cdn_get)
        app.router.add_route("*", "/api/v10/{path:.+}", self._rest)
        self._runner = web.AppRunner(app)
        self.port = await listen(self._runner)
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

    @property
    def resume_gateway_url(self) -> str:
        return f"{self.gateway_url}/resume"

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
            mentions=([self.bot] if mention_bot else []) + self._mentioned(content), attachments=atts,
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

    def _mentioned(self, content: str) -> list[dict]:
        """The people other than the bot that `<@id>` / `<@!id>` in the text name (Discord's `mentions`)."""
        ids = dict.fromkeys(re.findall(r"<@!?(\d+)>", content))
        return [_public(self.users[i]) for i in ids if i in self.users and i != self.bot["id"]]

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
