"""The stand-in Discord's REST API (v10): the routes discord.py uses for a bot (users/@me,
oauth2/applications/@me, gateway(/bot), application and guild commands with bulk overwrites counted per scope,
channel messages POST/GET/PATCH as JSON or multipart with `payload_json` + `files[n]`, typing, threads from a
message; the interaction routes are in discord_interactions.py), the bot token checked, and Discord's rate limits
applied per route (discord_ratelimit.py). Methods of FakeDiscord (bots/standins/discord_server.py), which holds
the state."""
from __future__ import annotations

import asyncio

import json
import re
import time

from aiohttp import web

from bots.standins import discord_payloads as P
from bots.standins.discord_model import FLAG_LOADING, StoredMessage, json_response as _json, public_att as _public_att


class Rest:
    """Methods of FakeDiscord: messages, channels, commands, requests, rate_limited are its state."""

    messages: dict[str, StoredMessage]

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


    async def _read_message(self, request: web.Request) -> tuple[dict, list[dict]] | web.Response:
        """A message's body and files as the app sends them, or Discord's refusal (too long, too large)."""
        body, files = await self._read_body(request)
        return self._check_message(body, files) or (body, files)

    async def _edit(self, request: web.Request, msg: StoredMessage) -> web.Response:
        """An edit of `msg` (by its channel route or an interaction webhook's)."""
        got = await self._read_message(request)
        if isinstance(got, web.Response):
            return got
        self._apply_edit(msg, *got)
        return _json(msg.payload)

    async def _post_message(self, request: web.Request, channel: str) -> web.Response:
        if channel not in self.channels:
            return _json({"message": "Unknown Channel", "code": 10003}, 404)
        got = await self._read_message(request)
        if isinstance(got, web.Response):
            return got
        msg = self._new_bot_message(channel, *got)
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
        return await self._edit(request, msg)

    async def _typing(self, request: web.Request, channel: str) -> web.Response:
        if self.typing_delay:   # the POST is slow to arrive: the indicator shows only then
            self.typing_on_the_way += 1
            await asyncio.sleep(self.typing_delay)
            self.typing_on_the_way -= 1
        self.typing[channel] = self.typing.get(channel, 0) + 1
        # what a reader sees: an indicator that shows after the bot's message stays under it for ~10 s
        self.typing_shown.append((channel, sum(1 for m in self.messages.values()
                                               if m.channel_id == channel and m.author_id == self.bot["id"])))
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
