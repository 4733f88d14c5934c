"""The stand-in Discord's interactions: what a user's slash command or button click sends the app
(INTERACTION_CREATE), and the app's answers to it: the interaction callback (a message, a deferred "thinking…"
message, or an update of the clicked message), followups, and the interaction webhook's @original.
Methods of FakeDiscord (bots/standins/discord_server.py), which holds the state."""
from __future__ import annotations

import secrets
import time
from typing import Any

from aiohttp import web

from bots.standins.discord_model import (ADMINISTRATOR, FLAG_EPHEMERAL, FLAG_LOADING, InteractionRecord,
                                         StoredMessage, json_response as _json, public as _public)

# An ordinary member's permissions in the stand-in's guilds, as an interaction's member.permissions carries them.
_MEMBER_PERMISSIONS = 0x0000_0000_0064_0E41

# What Discord answers when an interaction's token names no message it knows.
_UNKNOWN_MESSAGE = {"message": "Unknown Message", "code": 10008}


class Interactions:
    """Methods of FakeDiscord: interactions, messages, channels and commands are its state."""

    interactions: dict[str, InteractionRecord]
    messages: dict[str, StoredMessage]

    # ---- what users do -------------------------------------------------------------------------

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
        guild_id = self.channels[channel_id].get("guild_id")
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
        command: dict[str, Any] = {
            "id": cmd["id"] if cmd else self.ids.next(), "name": name, "type": 1, "options": opts,
        }
        if resolved:
            command["resolved"] = resolved
        if guild_id:
            command["guild_id"] = guild_id
        return await self._interact(channel_id, author, name, type_=2, data=command)

    async def click(self, message: StoredMessage, label: str, author: dict) -> InteractionRecord:
        """A user clicks the button labelled `label` on a bot message: a MESSAGE_COMPONENT interaction
        (type 3, data.component_type 2 and the button's custom_id) with the message it sits on."""
        [button] = [b for b in message.buttons() if b.get("label") == label]
        return await self._interact(message.channel_id, author, button["custom_id"], type_=3,
                                    data={"custom_id": button["custom_id"], "component_type": 2}, message=message)

    async def _interact(self, channel_id: str, author: dict, name: str, *, type_: int, data: dict,
                        message: StoredMessage | None = None) -> InteractionRecord:
        """An interaction of `type_` in `channel_id` by `author` (a component's carries its `message`), recorded
        under `name` and sent as INTERACTION_CREATE."""
        ch = self.channels[channel_id]
        guild_id = ch.get("guild_id")
        iid, token = self.ids.next(), "itok-" + secrets.token_hex(8)
        payload: dict[str, Any] = {
            "id": iid, "application_id": self.application_id, "type": type_, "data": data, "token": token,
            "version": 1, "channel_id": channel_id,
            "channel": {k: v for k, v in ch.items() if k != "recipients"} if guild_id else ch,
            "locale": "en-US", "app_permissions": str((1 << 53) - 1), "entitlements": [],
            "authorizing_integration_owners": {"0": guild_id} if guild_id else {"1": author["id"]},
            "context": 0 if guild_id else 1, "attachment_size_limit": self.max_upload_bytes,
        }
        if message is not None:
            payload["message"] = message.payload
        if guild_id:
            payload["guild_id"] = guild_id
            payload["guild_locale"] = "en-US"
            m = dict(self._member(guild_id, author))
            m["permissions"] = str(ADMINISTRATOR if author.get("_admin") else _MEMBER_PERMISSIONS)
            payload["member"] = m
        else:
            payload["user"] = _public(author)
        rec = InteractionRecord(iid, token, name, channel_id, author["id"], time.monotonic(),
                                message_id=message.id if message is not None else None)
        self.interactions[iid] = rec
        await self.dispatch("INTERACTION_CREATE", payload)
        return rec

    # ---- the app's answers -----------------------------------------------------------------------

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
        got = await self._read_message(request)
        if isinstance(got, web.Response):
            return got
        if not rec.callbacks:
            return _json({"message": "Unknown Webhook", "code": 10015}, 404)
        msg = self._new_bot_message(rec.channel_id, *got, interaction_id=rec.id)
        rec.followup_ids.append(msg.id)
        return _json(msg.payload)

    def _webhook_message(self, token: str, message: str) -> StoredMessage | None:
        """The message an interaction webhook route names: @original or a followup's id."""
        rec = self._interaction_by_token(token)
        if rec is None:
            return None
        mid = rec.original_id if message == "@original" else message
        return self.messages.get(mid or "")

    async def _get_webhook_msg(self, request: web.Request, app: str, token: str, message: str) -> web.Response:
        msg = self._webhook_message(token, message)
        return _json(msg.payload) if msg is not None else _json(_UNKNOWN_MESSAGE, 404)

    async def _patch_webhook_msg(self, request: web.Request, app: str, token: str, message: str) -> web.Response:
        msg = self._webhook_message(token, message)
        return await self._edit(request, msg) if msg is not None else _json(_UNKNOWN_MESSAGE, 404)
