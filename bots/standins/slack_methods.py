"""The stand-in Slack's Web API methods for messages: auth.test, apps.connections.open, users.info, chat.*
(posting, updating, ephemeral messages and native streaming), assistant.threads.* and conversations.*. Each
`_m_<method>` takes the call's arguments and answers Slack's JSON; FakeSlack (bots/standins/slack_server.py)
dispatches to them and holds the state."""
from __future__ import annotations

import json
import time
import uuid

from bots.standins.slack_shapes import Message, blocks_of, prune, sample


class MessageMethods:
    """Methods of FakeSlack: they read and change its message store and what tests look at."""

    @staticmethod
    def _err(error: str) -> dict:
        return {"ok": False, "error": error}

    async def _m_auth_test(self, a: dict) -> dict:
        r = prune(sample("api", "auth.test"))
        r.update(ok=True, url="https://teambridge-test.slack.com/", team="Test Team", user="teambridge",
                 team_id=self.team_id, user_id=self.bot_user_id, bot_id=self.bot_id, app_id="A0APP",
                 is_enterprise_install=False)
        for k in ("error", "warning", "needed", "provided", "enterprise_id", "expires_in"):
            r.pop(k, None)
        return r

    async def _m_apps_connections_open(self, a: dict) -> dict:
        self.connections_opened += 1
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/link/?ticket={uuid.uuid4()}"}

    async def _m_users_info(self, a: dict) -> dict:
        uid = a.get("user", "")
        if uid not in self.users:
            return self._err("user_not_found")
        u = prune(sample("api", "users.info"))["user"]
        name = self.users[uid]
        u.update(id=uid, team_id=self.team_id, name=name, real_name=name.title())
        u["profile"].update(display_name=name, real_name=name.title())
        return {"ok": True, "user": u}

    def _text_of(self, a: dict) -> tuple[str, bool] | dict:
        md, text, blocks = a.get("markdown_text"), a.get("text"), a.get("blocks")
        if md is not None:
            if text or blocks:
                return self._err("markdown_text_conflict")
            if len(md) > 12_000:
                return self._err("msg_too_long")
            return md, True
        if blocks:
            blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
            parts = [b.get("text", {}).get("text", "") if isinstance(b.get("text"), dict) else b.get("text", "")
                     for b in blocks]
            return "\n".join(p for p in parts if p), True
        if text is None:
            return self._err("no_text")
        return text, False

    async def _m_chat_postMessage(self, a: dict) -> dict:
        got = self._text_of(a)
        if isinstance(got, dict):
            return got
        text, md = got
        if not md and len(text) > 40_000:  # Slack truncates; our adapter must never get here
            text = text[:40_000]
        m = Message(channel=a["channel"], ts=self._new_ts(), user=self.bot_user_id, text=text,
                    thread_ts=a.get("thread_ts") or None, is_bot=True, markdown=md, history=[text], api_calls=1,
                    blocks=blocks_of(a))
        self.messages.append(m)
        self._replied(m.channel, m.thread_ts)
        r = prune(sample("api", "chat.postMessage"))
        msg = {k: r["message"][k] for k in ("type", "team", "app_id") if k in r["message"]}
        msg.update(m.as_api(), bot_id=self.bot_id, team=self.team_id, type="message")
        return {"ok": True, "channel": m.channel, "ts": m.ts, "message": msg}

    async def _m_chat_update(self, a: dict) -> dict:
        m = self.message(a.get("channel", ""), a.get("ts", ""))
        if m is None:
            return self._err("message_not_found")
        if not m.is_bot:
            return self._err("cant_update_message")
        if a.get("text") is not None and a.get("markdown_text") is None and len(a["text"]) > 4_000:
            return self._err("msg_too_long")
        got = self._text_of(a)
        if isinstance(got, dict):
            return got
        m.text, m.markdown = got
        m.blocks = blocks_of(a)
        m.streaming = False
        m.history.append(m.text)
        m.api_calls += 1
        return {"ok": True, "channel": m.channel, "ts": m.ts, "text": m.text,
                "message": {**m.as_api(), "bot_id": self.bot_id}}

    async def _m_chat_postEphemeral(self, a: dict) -> dict:
        got = self._text_of(a)
        if isinstance(got, dict):
            return got
        self.ephemerals.append({"channel": a.get("channel"), "user": a.get("user"), "text": got[0],
                                "thread_ts": a.get("thread_ts")})
        return {"ok": True, "message_ts": self._new_ts()}

    # -- native streaming: chat.startStream / appendStream / stopStream --

    def _apply_chunks(self, m: Message, a: dict) -> dict | None:
        added = a.get("markdown_text") or ""
        chunks = a.get("chunks") or []
        if isinstance(chunks, str):
            chunks = json.loads(chunks)
        for c in chunks:
            kind = c.get("type")
            if kind == "markdown_text":
                added += c.get("text", "")
            elif kind == "task_update":
                m.tasks[c["id"]] = {k: c.get(k) for k in ("title", "status", "details", "output")}
            elif kind in ("plan_update", "blocks"):
                pass
            else:
                return self._err("invalid_chunks")
        if len(m.text) + len(added) > self.stream_max_chars:
            return self._err("msg_too_long")
        if added:
            m.text += added
            m.history.append(m.text)
        m.api_calls += 1
        return None

    def _streaming_message(self, a: dict) -> Message | dict:
        m = self.message(a.get("channel", ""), a.get("ts", ""))
        if m is None:
            return self._err("message_not_found")
        if m.streaming and time.monotonic() - m.stream_started > self.stream_ttl:
            m.streaming = False  # Slack finalises a stream on its own after its time limit
            self.expired.append(m.ts)
        if (m.channel, m.ts) in self.stopped_streams:
            m.streaming = False
            return self._err("stopped_by_user")
        if not m.streaming:
            return self._err("message_not_in_streaming_state")
        return m

    async def _m_chat_startStream(self, a: dict) -> dict:
        if self.streaming_error:
            return self._err(self.streaming_error)
        if not a.get("thread_ts"):
            return self._err("invalid_arguments")
        channel = a.get("channel", "")
        if not channel.startswith("D"):
            if not a.get("recipient_user_id"):
                return self._err("missing_recipient_user_id")
            if not a.get("recipient_team_id"):
                return self._err("missing_recipient_team_id")
        m = Message(channel=channel, ts=self._new_ts(), user=self.bot_user_id, thread_ts=a["thread_ts"],
                    is_bot=True, markdown=True, streaming=True, stream_started=time.monotonic())
        err = self._apply_chunks(m, a)
        if err:
            return err
        self.messages.append(m)
        self._replied(channel, m.thread_ts)
        r = prune(sample("api", "chat.startStream"))
        r.update(ok=True, ts=m.ts, channel=channel)
        r.pop("error", None)
        return r

    async def _m_chat_appendStream(self, a: dict) -> dict:
        m = self._streaming_message(a)
        if isinstance(m, dict):
            return m
        err = self._apply_chunks(m, a)
        return err or {"ok": True, "channel": m.channel, "ts": m.ts}

    async def _m_chat_stopStream(self, a: dict) -> dict:
        m = self._streaming_message(a)
        if isinstance(m, dict):
            return m
        err = self._apply_chunks(m, a)
        if err:
            return err
        m.streaming = False
        if a.get("blocks"):   # rendered at the bottom of the streamed message
            m.blocks = blocks_of(a)
        return {"ok": True, "channel": m.channel, "ts": m.ts, "message": m.as_api()}

    # -- AI apps: assistant.threads.* (the assistant container and threads) --

    def _ok(self, name: str) -> dict:
        r = prune(sample("api", name))
        r["ok"] = True
        return r

    def _thread_args(self, a: dict) -> tuple[str, str] | dict:
        channel, thread = a.get("channel_id") or "", a.get("thread_ts") or ""
        if not channel or not thread:
            return self._err("invalid_arguments")
        return channel, thread

    async def _m_assistant_threads_setStatus(self, a: dict) -> dict:
        place = self._thread_args(a)
        if isinstance(place, dict):
            return place
        if "status" not in a:
            return self._err("invalid_arguments")
        self.statuses.append({"channel_id": place[0], "thread_ts": place[1], "status": a["status"]})
        self.thread_status[place] = a["status"]
        return self._ok("assistant.threads.setStatus")

    async def _m_assistant_threads_setTitle(self, a: dict) -> dict:
        place = self._thread_args(a)
        if isinstance(place, dict):
            return place
        if not a.get("title"):
            return self._err("invalid_arguments")
        self.titles[place] = a["title"]
        return self._ok("assistant.threads.setTitle")

    async def _m_assistant_threads_setSuggestedPrompts(self, a: dict) -> dict:
        # With agent_view the prompts may sit at the top of the DM itself: no thread_ts (kept under thread "").
        place = self._thread_args(a) if a.get("thread_ts") else (a.get("channel_id") or "", "")
        if isinstance(place, dict) or not place[0]:
            return place if isinstance(place, dict) else self._err("invalid_arguments")
        prompts = a.get("prompts")
        if isinstance(prompts, str):
            prompts = json.loads(prompts)
        # Slack shows at most four; each needs a title (the button) and a message (what gets sent).
        if not prompts or len(prompts) > 4 or not all(p.get("title") and p.get("message") for p in prompts):
            return self._err("invalid_arguments")
        self.suggested_prompts[place] = {"title": a.get("title"), "prompts": prompts}
        return self._ok("assistant.threads.setSuggestedPrompts")

    def _replied(self, channel: str, thread_ts: str | None) -> None:
        """Slack clears a thread's status as soon as the app replies in it."""
        if thread_ts and self.thread_status.get((channel, thread_ts)):
            self.thread_status[(channel, thread_ts)] = ""

    async def _m_conversations_replies(self, a: dict) -> dict:
        channel, root = a.get("channel", ""), a.get("ts", "")
        msgs = [m for m in self.messages if m.channel == channel and (m.ts == root or m.thread_ts == root)]
        msgs = self._window(msgs, a)
        if not msgs and self.message(channel, root) is None:
            return self._err("thread_not_found")
        return {"ok": True, "messages": [m.as_api() for m in msgs], "has_more": False}

    async def _m_conversations_history(self, a: dict) -> dict:
        channel = a.get("channel", "")
        if channel in self.outside:
            return self._err("not_in_channel")
        msgs = [m for m in self.messages if m.channel == channel and not m.thread_ts]
        return {"ok": True, "messages": [m.as_api() for m in reversed(self._window(msgs, a))], "has_more": False}

    @staticmethod
    def _window(msgs: list[Message], a: dict) -> list[Message]:
        inclusive = str(a.get("inclusive", "")).lower() in ("1", "true")
        if a.get("oldest"):
            o = float(a["oldest"])
            msgs = [m for m in msgs if float(m.ts) > o or (inclusive and float(m.ts) == o)]
        if a.get("latest"):
            la = float(a["latest"])
            msgs = [m for m in msgs if float(m.ts) < la or (inclusive and float(m.ts) == la)]
        msgs = sorted(msgs, key=lambda m: float(m.ts))
        if a.get("limit"):
            msgs = msgs[: int(a["limit"])]
        return msgs
