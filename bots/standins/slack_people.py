"""What people do in the stand-in Slack, as the app receives it: messages (with files, in assistant threads),
mentions, the assistant container, the agent surface, slash commands, button clicks, and response_url posts.
Event shapes are filled-in copies of the samples in bots/standins/specs/slack/events. Methods of FakeSlack
(bots/standins/slack_server.py), which holds the state and delivers (bots/standins/slack_socket.py)."""
from __future__ import annotations

import json
import time
import uuid
from typing import Any

from aiohttp import web

from bots.standins.slack_shapes import Message, prune, sample


class PeopleActions:
    """Methods of FakeSlack."""

    # ---- building events (shapes from bots/standins/specs/slack/events) ---------------------

    def event_callback(self, event: dict, *, event_id: str | None = None) -> dict:
        sample_name = {"app_mention": "AppMentionPayload",
                       "assistant_thread_started": "AssistantThreadStartedPayload",
                       "assistant_thread_context_changed": "AssistantThreadContextChangedPayload",
                       }.get(event["type"], "MessagePayload")
        body = prune(sample("events", sample_name))
        body.pop("event", None)
        body.update(token="fake-verification-token", team_id=self.team_id, api_app_id="A0APP",
                    type="event_callback", event_id=event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
                    event_time=int(time.time()), event_context=f"4-{uuid.uuid4().hex}",
                    authorizations=[{"team_id": self.team_id, "user_id": self.bot_user_id, "is_bot": True,
                                     "is_enterprise_install": False}],
                    is_ext_shared_channel=False, authed_users=[self.bot_user_id])
        body.pop("enterprise_id", None)
        body.pop("authed_teams", None)
        body["event"] = event
        return body

    def _event(self, sample_name: str, **fields: Any) -> dict:
        ev = sample("events", sample_name)["event"]
        # drop the parts that only bot / edited / block-built messages carry in the sample
        for k in ("blocks", "attachments", "bot_profile", "bot_id", "app_id", "username", "edited",
                  "user_profile", "metadata", "upload", "display_as_bot", "parent_user_id", "files",
                  "subtype", "user_team", "source_team", "icons"):
            ev.pop(k, None)
        ev = prune(ev)
        ev.update({k: v for k, v in fields.items() if v is not None})
        return ev

    def mention_envelopes(self, channel: str, text: str, *, user: str = "U1") -> list[str]:
        """What Slack sends for one channel @mention (app_mention, then message), as Socket Mode envelope JSON:
        frames to send at once with `send_raw` (a burst, as the bench sends it)."""
        ts = self._new_ts()
        self.messages.append(Message(channel=channel, ts=ts, user=user, text=text))
        common = dict(user=user, text=text, ts=ts, event_ts=ts, channel=channel, team=self.team_id,
                      client_msg_id=f"{channel}-{ts}")
        out = []
        for sample_name, extra in (("AppMentionPayload", {}), ("MessagePayload", {"channel_type": "channel"})):
            body = self.event_callback(self._event(sample_name, **common, **extra))
            out.append(json.dumps({"envelope_id": f"env-{channel}-{len(out)}", "type": "events_api",
                                   "payload": body, "accepts_response_payload": False,
                                   "retry_attempt": 0, "retry_reason": ""}))
        return out

    async def user_says(self, channel: str, text: str, *, user: str = "U1", thread_ts: str | None = None,
                        channel_type: str | None = None, files: list[dict] | None = None) -> str:
        """A person posts a message. Returns its ts.

        Like Slack with app_mention + message.* subscriptions: a channel message that mentions the bot
        arrives twice (app_mention, then message) with the same channel + ts and different event ids.
        """
        ts = self._new_ts()
        channel_type = channel_type or ("im" if channel.startswith("D") else
                                        "group" if channel.startswith("G") else "channel")
        self.messages.append(Message(channel=channel, ts=ts, user=user, text=text, thread_ts=thread_ts,
                                     files=files or []))
        common = dict(user=user, text=text, ts=ts, event_ts=ts, channel=channel, team=self.team_id,
                      thread_ts=thread_ts, client_msg_id=str(uuid.uuid4()))
        if files:
            message = self._event("MessageFileSharePayload", subtype="file_share", files=files,
                                  channel_type=channel_type, upload=False, display_as_bot=False, **common)
        else:
            message = self._event("MessagePayload", channel_type=channel_type, **common)
        if f"<@{self.bot_user_id}>" in text and channel_type != "im":
            mention = self._event("AppMentionPayload", **common)
            if files:
                mention["files"] = files
            await self.deliver(self.event_callback(mention))
        await self.deliver(self.event_callback(message))
        return ts

    async def open_assistant_thread(self, *, user: str = "U1", channel: str = "D1",
                                    viewing: str = "C1") -> str:
        """A person opens the app's assistant container (or starts a new chat in it): Slack creates the
        thread and sends assistant_thread_started. Returns the thread's ts; the person's messages then
        arrive as message.im events with that thread_ts."""
        thread_ts = self._new_ts()
        await self.deliver(self._assistant_event("AssistantThreadStartedPayload", user, channel, thread_ts, viewing))
        return thread_ts

    async def change_assistant_context(self, thread_ts: str, *, user: str = "U1", channel: str = "D1",
                                       viewing: str = "C2") -> str:
        """The person, container open, switches to another channel."""
        return await self.deliver(
            self._assistant_event("AssistantThreadContextChangedPayload", user, channel, thread_ts, viewing))

    def _assistant_event(self, sample_name: str, user: str, channel: str, thread_ts: str, viewing: str) -> dict:
        event = sample("events", sample_name)["event"]
        event["assistant_thread"].update(user_id=user, channel_id=channel, thread_ts=thread_ts)
        event["assistant_thread"]["context"].update(channel_id=viewing, team_id=self.team_id)
        event["event_ts"] = self._new_ts()
        event = prune(event)  # drops enterprise_id: not a Grid workspace
        return self.event_callback(event)

    async def view(self, entities: list[dict], *, user: str = "U1") -> str:
        """With the agent surface (manifest `agent_view`), the person moves to something else in Slack:
        app_context_changed with what they see, most relevant first (https://docs.slack.dev/reference/events/
        app_context_changed); `entities` like [{"type": "slack#/types/channel_id", "value": "C1"}]."""
        event = {"type": "app_context_changed", "user": user, "event_ts": self._new_ts(),
                 "context": {"entities": [{**e, "team_id": self.team_id} for e in entities]} if entities else {}}
        return await self.deliver(self.event_callback(event))

    async def open_messages_tab(self, *, user: str = "U1", channel: str = "D1") -> str:
        """The person opens the DM with the app (agent_view): app_home_opened with tab "messages"."""
        event = {"type": "app_home_opened", "user": user, "channel": channel, "tab": "messages",
                 "event_ts": self._new_ts()}
        return await self.deliver(self.event_callback(event))

    def press_stop(self, channel: str, ts: str) -> None:
        """A reader presses "stop" on a streaming message: later appends and stops get stopped_by_user."""
        self.stopped_streams.add((channel, ts))

    @staticmethod
    def id_only(f: dict) -> dict:
        """How a file appears in events of Slack Connect channels: only its id, details via files.info."""
        return {"id": f["id"], "file_access": "check_file_info"}


    # ---- slash commands and clicks ----------------------------------------------------------

    async def slash_command(self, text: str, *, command: str = "/teambridge", user: str = "U1",
                            channel: str = "C1") -> str:
        rid = uuid.uuid4().hex[:12]
        self._response_channels[rid] = channel
        payload = {"token": "fake-verification-token", "team_id": self.team_id, "team_domain": "teambridge-test",
                   "channel_id": channel, "channel_name": "general", "user_id": user,
                   "user_name": self.users.get(user, user), "command": command, "text": text,
                   "api_app_id": "A0APP", "is_enterprise_install": "false",
                   "response_url": f"{self.base}/response/{rid}", "trigger_id": f"{next(self._ids)}.{rid}"}
        return await self.send_interactive("slash_commands", payload)

    async def click(self, message: Message, text: str, *, user: str = "U1") -> str:
        """A person clicks the button labelled `text` on a bot message: Slack sends a block_actions payload
        (https://docs.slack.dev/reference/interaction-payloads/block_actions-payload) as a Socket Mode
        `interactive` envelope, or form-encoded (`payload=`) and signed in HTTP mode."""
        [button] = [b for b in message.buttons() + message.feedback_buttons() if b["text"]["text"] == text]
        container = {"type": "message", "message_ts": message.ts, "channel_id": message.channel,
                     "is_ephemeral": False}
        if message.thread_ts:
            container["thread_ts"] = message.thread_ts
        payload = self._block_actions(user, container, button, uuid.uuid4().hex[:12],
                                      message={**message.as_api(), "bot_id": self.bot_id, "blocks": message.blocks})
        return await self.send_interactive("interactive", payload)

    async def click_ephemeral(self, response: dict, text: str, *, user: str = "U1") -> str:
        """A person clicks the button labelled `text` on an ephemeral message the app sent through a response_url
        (a slash command's reply): a block_actions payload whose container says `is_ephemeral` and which carries
        no `message` (Slack keeps no copy of an ephemeral message), and a response_url of its own that can
        replace the message clicked on."""
        [button] = [e for b in response.get("blocks") or [] if b.get("type") == "actions"
                    for e in b.get("elements", []) if e.get("type") == "button" and e["text"]["text"] == text]
        block_id = next(b.get("block_id", "") for b in response["blocks"] if button in b.get("elements", []))
        channel = self._response_channels.get(response["rid"], "C1")
        rid = uuid.uuid4().hex[:12]
        self._clicked_on[rid] = response["rid"]
        self._response_channels[rid] = channel
        container = {"type": "message", "message_ts": self._new_ts(), "channel_id": channel, "is_ephemeral": True}
        payload = self._block_actions(user, container, {**button, "block_id": block_id}, rid)
        return await self.send_interactive("interactive", payload)

    def _block_actions(self, user: str, container: dict, button: dict, rid: str, *,
                       message: dict | None = None) -> dict:
        """A block_actions payload for a click on `button` (an element with its block_id) in `container`; its
        response_url is /response/<rid>."""
        return {
            "type": "block_actions",
            "user": {"id": user, "username": self.users.get(user, user), "name": self.users.get(user, user),
                     "team_id": self.team_id},
            "api_app_id": "A0APP", "token": "fake-verification-token", "container": container,
            "trigger_id": f"{next(self._ids)}.{rid}",
            "team": {"id": self.team_id, "domain": "teambridge-test"}, "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": container["channel_id"], "name": "general"},
            **({"message": message} if message is not None else {}),
            "state": {"values": {}},
            "response_url": f"{self.base}/response/{rid}",
            "actions": [{"action_id": button["action_id"], "block_id": button["block_id"],
                         "text": button["text"], "value": button.get("value", ""),
                         **({"style": button["style"]} if "style" in button else {}),
                         "type": button.get("element_type", "button"), "action_ts": f"{time.time():.6f}"}],
        }

    async def _response_url(self, request: web.Request) -> web.Response:
        body = await request.json()
        rid = request.match_info["rid"]
        self.responses.append({"rid": rid, **body})
        # A click's response_url with replace_original replaces the ephemeral message the button was on.
        original = self._clicked_on.get(rid)
        if body.get("replace_original") and original is not None:
            shown = next(r for r in self.responses if r["rid"] == original)
            shown["text"], shown["blocks"] = body.get("text", ""), body.get("blocks") or []
            shown["replaced"] = shown.get("replaced", 0) + 1
        await self._notify()
        return web.Response(text="ok")
