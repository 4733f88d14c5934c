"""A stand-in Slack for tests: Web API, Socket Mode websocket, url_private downloads, file uploads.

Runs an aiohttp server on 127.0.0.1 (random free port). Point the SDK at it with
``AsyncWebClient(base_url=fake.api_url)``; ``apps.connections.open`` hands out a ``ws://`` URL to the same
server. Response and event shapes are filled-in copies of bots/standins/specs/slack (java-slack-sdk samples).

What tests read back: ``fake.messages`` (every message with its final text, thread, edit history,
streaming state and task updates), ``fake.calls`` (every Web API call), ``fake.acks`` (Socket Mode acks),
``fake.responses`` (response_url posts), ``fake.ephemerals``, ``fake.uploads``, ``fake.rate_limited``,
``fake.call_peers`` (the client address of every Web API call: one address, one TCP connection).
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
import urllib.parse
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any, Callable

import aiohttp
from aiohttp import web

from bots.standins import SPECS as _ALL_SPECS

# A real API takes any number of connections at once: a burst of 200 new ones must not overflow the listen
# queue (aiohttp's default is 128) and wait out a SYN retry on a loaded machine.
BACKLOG = 1024

SPECS = _ALL_SPECS / "slack"

# Slack's published tiers, calls per minute per workspace (docs.slack.dev/apis/web-api/rate-limits).
TIERS: dict[str, int] = {
    "chat.startStream": 20, "chat.stopStream": 20,                      # Tier 2
    "chat.update": 50, "chat.delete": 50, "reactions.add": 50,           # Tier 3
    "conversations.replies": 50, "conversations.history": 50,
    "chat.appendStream": 100, "chat.postEphemeral": 100, "users.info": 100,  # Tier 4
    "files.getUploadURLExternal": 100, "files.completeUploadExternal": 100, "files.info": 100,
    "assistant.threads.setStatus": 100, "assistant.threads.setTitle": 100,
    "assistant.threads.setSuggestedPrompts": 100,
}
POST_MESSAGE_PER_CHANNEL = 60  # "special": about one per second per channel

_PLACEHOLDERS = ("", 123, 12345, 12.3)


def sample(kind: str, name: str) -> dict:
    return json.loads((SPECS / kind / f"{name}.json").read_text())


def prune(obj: Any) -> Any:
    """Drop the sample's placeholder values ("" / 123 / 12345) and containers left empty."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            v = prune(v)
            if v is None or (isinstance(v, (dict, list)) and not v):
                continue
            out[k] = v
        return out
    if isinstance(obj, list):
        return [x for x in (prune(v) for v in obj) if x is not None and x != {} and x != []]
    if not isinstance(obj, bool) and obj in _PLACEHOLDERS:
        return None
    return obj


@dataclass
class Message:
    channel: str
    ts: str
    user: str                          # author user id (the bot's user id for bot messages)
    text: str = ""                     # current text (markdown_text, text, or blocks' text)
    thread_ts: str | None = None
    is_bot: bool = False
    markdown: bool = False             # posted with markdown_text (standard Markdown rendering)
    history: list[str] = field(default_factory=list)  # every text the message had, in order
    streaming: bool = False
    stream_started: float = 0.0
    tasks: dict[str, dict] = field(default_factory=dict)
    files: list[dict] = field(default_factory=list)
    api_calls: int = 0                 # Web API calls that created or changed it
    blocks: list[dict] = field(default_factory=list)   # Block Kit blocks as last posted / updated

    def buttons(self) -> list[dict]:
        """The button elements of its actions blocks, each with its block_id."""
        return [{**e, "block_id": b.get("block_id", "")} for b in self.blocks if b.get("type") == "actions"
                for e in b.get("elements", []) if e.get("type") == "button"]

    def feedback_buttons(self) -> list[dict]:
        """Slack's 👍 / 👎 (feedback_buttons elements of context_actions blocks): their two buttons, each with
        the element's action_id and block_id."""
        return [{**e[side], "action_id": e.get("action_id", ""), "block_id": b.get("block_id", ""),
                 "element_type": "feedback_buttons"}
                for b in self.blocks if b.get("type") == "context_actions"
                for e in b.get("elements", []) if e.get("type") == "feedback_buttons"
                for side in ("positive_button", "negative_button")]

    def as_api(self) -> dict:
        m = {"type": "message", "ts": self.ts, "text": self.text, "user": self.user}
        if self.is_bot:
            m["bot_id"] = "BBOT"
        if self.thread_ts:
            m["thread_ts"] = self.thread_ts
        if self.files:
            m["files"] = self.files
        if self.blocks:
            m["blocks"] = self.blocks
        return m


def _blocks(a: dict) -> list[dict]:
    blocks = a.get("blocks") or []
    return json.loads(blocks) if isinstance(blocks, str) else list(blocks)


class FakeSlack:
    def __init__(self, *, bot_token: str = "xoxb-test", app_token: str = "xapp-test",
                 signing_secret: str = "test-signing-secret", team_id: str = "T0TEAM",
                 bot_user_id: str = "UBOT", bot_id: str = "BBOT",
                 rate_minute: float | None = None, retry_after: int = 1,
                 tiers: dict[str, int] | None = None,
                 streaming_error: str | None = None,
                 stream_max_chars: int = 12_000, stream_ttl: float = 300.0,
                 users: dict[str, str] | None = None, files_read_scope: bool = True) -> None:
        self.bot_token, self.app_token, self.signing_secret = bot_token, app_token, signing_secret
        self.team_id, self.bot_user_id, self.bot_id = team_id, bot_user_id, bot_id
        # rate_minute: how long Slack's "minute" lasts here. None = no limits. Tests shrink it.
        self.rate_minute = rate_minute
        self.retry_after = retry_after
        self.tiers = dict(TIERS, **(tiers or {}))
        self.streaming_error = streaming_error
        self.stream_max_chars, self.stream_ttl = stream_max_chars, stream_ttl
        self.users = users if users is not None else {"U1": "alice", "U2": "bob"}
        self.files_read_scope = files_read_scope  # False: the token lacks files:read (login page on download)

        self.messages: list[Message] = []
        self.calls: list[tuple[str, dict]] = []
        self.call_peers: list[tuple[str, Any]] = []  # (method, the client's address): which TCP connection
        self.rate_limited: list[str] = []
        self.acks: dict[str, dict] = {}
        self.responses: list[dict] = []        # posts to response_url (replace_original updates the one clicked)
        self._response_channels: dict[str, str] = {}   # response_url id -> the channel it answers in
        self._clicked_on: dict[str, str] = {}           # a click's response_url id -> the response clicked on
        self.ephemerals: list[dict] = []
        self.statuses: list[dict] = []         # assistant.threads.setStatus calls, in order
        self.thread_status: dict[tuple[str, str], str] = {}   # (channel, thread_ts) -> status shown now
        self.titles: dict[tuple[str, str], str] = {}          # assistant.threads.setTitle
        self.suggested_prompts: dict[tuple[str, str], dict] = {}  # {"title", "prompts": [{"title", "message"}]}
        self.stopped_streams: set[tuple[str, str]] = set()    # streams a reader pressed "stop" on
        self.expired: list[str] = []           # streams Slack finalised because they ran past stream_ttl
        self.uploads: dict[str, dict] = {}     # file_id -> {"name", "data", "length", "completed"}
        self.files: dict[str, dict] = {}       # user files by id (for url_private)
        self.file_bytes: dict[str, bytes] = {}
        self.downloads: list[tuple[str, bool]] = []  # (file_id, authorized)
        self.file_redirects: dict[str, str] = {}     # file_id -> where its download redirects to
        self.connections_opened = 0
        self.http_events_url: str | None = None  # set by tests for HTTP mode delivery
        self.outside: set[str] = set()           # channels the bot is not a member of (history: not_in_channel)

        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        self._windows: dict[str, deque[float]] = defaultdict(deque)
        self._sockets: list[web.WebSocketResponse] = []
        # Slack spreads Socket Mode envelopes over an app's open connections; True does so round-robin (several
        # processes), False sends each to the newest connection.
        self.spread = False
        self._turn = 0
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ---- lifecycle ------------------------------------------------------------------------

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base}/api/"  # must end with "/": the SDK joins method names with urljoin

    async def start(self) -> "FakeSlack":
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_get("/link/", self._socket)
        app.router.add_get("/files-pri/{team_file}/{name}", self._url_private)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_post("/response/{rid}", self._response_url)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=BACKLOG)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner:
            await self._runner.cleanup()

    async def __aenter__(self) -> "FakeSlack":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
        """Wait until predicate() is truthy (re-checked on every change and every 50 ms)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {what or predicate}")
            async with self._changed:
                try:
                    await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))
                except asyncio.TimeoutError:
                    pass

    def _new_ts(self) -> str:
        return f"{1_700_000_000 + next(self._ts)}.{next(self._ids):06d}"

    # ---- reading the store -----------------------------------------------------------------

    def message(self, channel: str, ts: str) -> Message | None:
        return next((m for m in self.messages if m.channel == channel and m.ts == ts), None)

    def bot_messages(self, channel: str | None = None, thread_ts: str | None = None, *,
                     top_level: bool = False) -> list[Message]:
        out = [m for m in self.messages if m.is_bot and (channel is None or m.channel == channel)]
        if thread_ts is not None:
            out = [m for m in out if m.thread_ts == thread_ts]
        if top_level:
            out = [m for m in out if m.thread_ts is None]
        return out

    def thread_text(self, channel: str, thread_ts: str) -> str:
        """What a reader of the thread sees from the bot, messages joined in order."""
        return "".join(m.text for m in self.bot_messages(channel, thread_ts))

    def calls_to(self, method: str) -> list[dict]:
        return [args for m, args in self.calls if m == method]

    # ---- Web API ---------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        body = await request.read()
        ctype = request.headers.get("Content-Type", "")
        if body:
            if "json" in ctype:
                args.update(json.loads(body))
            else:
                args.update(dict(urllib.parse.parse_qsl(body.decode())))
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip() or args.pop("token", "")
        self.calls.append((method, args))
        self.call_peers.append((method, request.transport.get_extra_info("peername") if request.transport else None))
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        if token != expected:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if self._over_limit(method, args):
            self.rate_limited.append(method)
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                     headers={"Retry-After": str(self.retry_after)})
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        try:
            result = await handler(args)
        finally:
            await self._notify()
        return web.json_response(result)

    def _over_limit(self, method: str, args: dict) -> bool:
        if self.rate_minute is None:
            return False
        if method == "chat.postMessage":
            key, limit = f"{method}:{args.get('channel')}", POST_MESSAGE_PER_CHANNEL
        elif method in self.tiers:
            key, limit = method, self.tiers[method]
        else:
            return False
        now = time.monotonic()
        window = self._windows[key]
        while window and window[0] <= now - self.rate_minute:
            window.popleft()
        if len(window) >= limit:
            return True
        window.append(now)
        return False

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
                    blocks=_blocks(a))
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
        m.blocks = _blocks(a)
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
            m.blocks = _blocks(a)
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

    # -- files --

    def add_file(self, name: str, data: bytes, mimetype: str, *, filetype: str = "",
                 size: int | None = None, user: str = "U1") -> dict:
        """A file a user uploaded, shaped like MessageFileSharePayload's files[0]."""
        fid = f"F{next(self._ids):08d}"
        base = sample("events", "MessageFileSharePayload")["event"]["files"][0]
        f = prune(base)
        f.update(id=fid, created=int(time.time()), timestamp=int(time.time()), name=name, title=name,
                 mimetype=mimetype, filetype=filetype or name.rsplit(".", 1)[-1], pretty_type=filetype or name,
                 user=user, mode="hosted", size=len(data) if size is None else size, is_external=False,
                 url_private=f"{self.base}/files-pri/{self.team_id}-{fid}/{name}",
                 url_private_download=f"{self.base}/files-pri/{self.team_id}-{fid}/{name}?download=1",
                 permalink=f"https://teambridge-test.slack.com/files/{user}/{fid}/{name}")
        self.files[fid] = f
        self.file_bytes[fid] = data
        return f

    async def _url_private(self, request: web.Request) -> web.StreamResponse:
        fid = request.match_info["team_file"].split("-", 1)[-1]
        authorized = request.headers.get("Authorization") == f"Bearer {self.bot_token}"
        self.downloads.append((fid, authorized))
        await self._notify()
        if fid in self.file_redirects:
            raise web.HTTPFound(self.file_redirects[fid])
        if not authorized or not self.files_read_scope:
            # What Slack does without files:read (or without a token): a 200 with its sign-in page.
            return web.Response(text="<!DOCTYPE html><html><head><title>Slack</title></head>"
                                     "<body>Sign in to Slack</body></html>", content_type="text/html")
        if fid not in self.file_bytes:
            return web.Response(status=404, text="file not found")
        return web.Response(body=self.file_bytes[fid], content_type=self.files[fid]["mimetype"])

    async def _m_files_info(self, a: dict) -> dict:
        f = self.files.get(a.get("file", ""))
        return {"ok": True, "file": f} if f else self._err("file_not_found")

    async def _m_files_getUploadURLExternal(self, a: dict) -> dict:
        if not a.get("filename") or not a.get("length"):
            return self._err("invalid_arguments")
        fid = f"F{next(self._ids):08d}"
        self.uploads[fid] = {"name": a["filename"], "length": int(a["length"]), "data": None, "completed": False}
        r = prune(sample("api", "files.getUploadURLExternal"))
        r.update(ok=True, upload_url=f"{self.base}/upload/{fid}", file_id=fid)
        for k in ("error", "warning", "needed", "provided", "response_metadata"):
            r.pop(k, None)
        return r

    async def _upload(self, request: web.Request) -> web.Response:
        fid = request.match_info["file_id"]
        if fid not in self.uploads:
            return web.Response(status=404, text="unknown upload")
        data = await request.read()
        self.uploads[fid]["data"] = data
        await self._notify()
        return web.Response(text=f"OK - {len(data)}")

    async def _m_files_completeUploadExternal(self, a: dict) -> dict:
        files = json.loads(a.get("files", "[]"))
        out = []
        for item in files:
            up = self.uploads.get(item.get("id", ""))
            if up is None or up["data"] is None:
                return self._err("file_not_found" if up is None else "file_upload_not_complete")
            if len(up["data"]) != up["length"]:
                return self._err("file_size_mismatch")
            up["completed"] = True
            up["title"] = item.get("title") or up["name"]
            up["channel"], up["thread_ts"] = a.get("channel_id"), a.get("thread_ts")
            f = prune(sample("api", "files.completeUploadExternal"))["files"][0]
            f.update(id=item["id"], name=up["name"], title=up["title"], size=len(up["data"]),
                     permalink=f"https://teambridge-test.slack.com/files/{self.bot_user_id}/{item['id']}/{up['name']}")
            up["permalink"] = f["permalink"]
            out.append(f)
        if a.get("channel_id"):
            m = Message(channel=a["channel_id"], ts=self._new_ts(), user=self.bot_user_id,
                        text=a.get("initial_comment", ""), thread_ts=a.get("thread_ts") or None, is_bot=True,
                        files=[{"id": f["id"], "name": f["name"]} for f in out], api_calls=1)
            self.messages.append(m)
        return {"ok": True, "files": out}

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
        payload = {
            "type": "block_actions",
            "user": {"id": user, "username": self.users.get(user, user), "name": self.users.get(user, user),
                     "team_id": self.team_id},
            "api_app_id": "A0APP", "token": "fake-verification-token",
            "container": {"type": "message", "message_ts": self._new_ts(), "channel_id": channel,
                          "is_ephemeral": True},
            "trigger_id": f"{next(self._ids)}.{rid}",
            "team": {"id": self.team_id, "domain": "teambridge-test"}, "enterprise": None,
            "is_enterprise_install": False, "channel": {"id": channel, "name": "general"},
            "state": {"values": {}}, "response_url": f"{self.base}/response/{rid}",
            "actions": [{"action_id": button["action_id"], "block_id": block_id, "text": button["text"],
                         "value": button.get("value", ""), **({"style": button["style"]} if "style" in button else {}),
                         "type": "button", "action_ts": f"{time.time():.6f}"}],
        }
        if self.http_events_url:
            status, _ = await self.post_http(self.http_events_url,
                                             urllib.parse.urlencode({"payload": json.dumps(payload)}),
                                             content_type="application/x-www-form-urlencoded")
            return str(status)
        return await self.send_envelope("interactive", payload)

    # ---- Socket Mode -----------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json({"type": "hello", "num_connections": len(self._sockets),
                            "connection_info": {"app_id": "A0APP"},
                            "debug_info": {"host": "fake-slack", "approximate_connection_time": 18060}})
        await self._notify()
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    data = json.loads(msg.data)
                    if "envelope_id" in data:
                        self.acks[data["envelope_id"]] = data
                        await self._notify()
        finally:
            self._sockets.remove(ws)
        return ws

    async def wait_connected(self, timeout: float = 30.0, *, count: int = 1) -> None:
        await self.wait_for(lambda: sum(not ws.closed for ws in self._sockets) >= count, timeout, "socket connection")

    async def send_envelope(self, kind: str, payload: dict, *, retry_attempt: int = 0,
                            retry_reason: str = "") -> str:
        envelope_id = str(uuid.uuid4())
        envelope = {"envelope_id": envelope_id, "type": kind, "payload": payload,
                    "accepts_response_payload": kind != "events_api"}
        if kind == "events_api":
            envelope.update(retry_attempt=retry_attempt, retry_reason=retry_reason)
        await self.wait_connected()
        open_ = [ws for ws in self._sockets if not ws.closed]
        if self.spread:
            self._turn += 1
            ws = open_[self._turn % len(open_)]
        else:
            ws = open_[-1]
        await ws.send_str(json.dumps(envelope))
        return envelope_id

    async def wait_ack(self, envelope_id: str, timeout: float = 3.0) -> dict:
        """Slack's deadline: an envelope not acked within 3 seconds is retried."""
        return await self.wait_for(lambda: self.acks.get(envelope_id), timeout, f"ack of {envelope_id}")

    async def disconnect_all(self) -> None:
        for ws in list(self._sockets):
            await ws.close()

    # ---- building and delivering events (shapes from bots/standins/specs/slack/events) -------------

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

    async def deliver(self, body: dict, *, retry_attempt: int = 0) -> str:
        """Send an event callback the way the app is connected: Socket Mode envelope or signed HTTP POST."""
        if self.http_events_url:
            status, _ = await self.post_http(self.http_events_url, json.dumps(body),
                                             retry_num=retry_attempt or None)
            return str(status)
        return await self.send_envelope("events_api", body, retry_attempt=retry_attempt,
                                        retry_reason="timeout" if retry_attempt else "")

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

    async def slash_command(self, text: str, *, command: str = "/teambridge", user: str = "U1",
                            channel: str = "C1") -> str:
        rid = uuid.uuid4().hex[:12]
        self._response_channels[rid] = channel
        payload = {"token": "fake-verification-token", "team_id": self.team_id, "team_domain": "teambridge-test",
                   "channel_id": channel, "channel_name": "general", "user_id": user,
                   "user_name": self.users.get(user, user), "command": command, "text": text,
                   "api_app_id": "A0APP", "is_enterprise_install": "false",
                   "response_url": f"{self.base}/response/{rid}", "trigger_id": f"{next(self._ids)}.{rid}"}
        if self.http_events_url:
            status, _ = await self.post_http(self.http_events_url, urllib.parse.urlencode(payload),
                                             content_type="application/x-www-form-urlencoded")
            return str(status)
        return await self.send_envelope("slash_commands", payload)

    async def click(self, message: Message, text: str, *, user: str = "U1") -> str:
        """A person clicks the button labelled `text` on a bot message: Slack sends a block_actions payload
        (https://docs.slack.dev/reference/interaction-payloads/block_actions-payload) as a Socket Mode
        `interactive` envelope, or form-encoded (`payload=`) and signed in HTTP mode."""
        [button] = [b for b in message.buttons() + message.feedback_buttons() if b["text"]["text"] == text]
        rid = uuid.uuid4().hex[:12]
        container = {"type": "message", "message_ts": message.ts, "channel_id": message.channel,
                     "is_ephemeral": False}
        if message.thread_ts:
            container["thread_ts"] = message.thread_ts
        payload = {
            "type": "block_actions",
            "user": {"id": user, "username": self.users.get(user, user), "name": self.users.get(user, user),
                     "team_id": self.team_id},
            "api_app_id": "A0APP", "token": "fake-verification-token", "container": container,
            "trigger_id": f"{next(self._ids)}.{rid}",
            "team": {"id": self.team_id, "domain": "teambridge-test"}, "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": message.channel, "name": "general"},
            "message": {**message.as_api(), "bot_id": self.bot_id, "blocks": message.blocks},
            "state": {"values": {}},
            "response_url": f"{self.base}/response/{rid}",
            "actions": [{"action_id": button["action_id"], "block_id": button["block_id"],
                         "text": button["text"], "value": button.get("value", ""),
                         **({"style": button["style"]} if "style" in button else {}),
                         "type": button.get("element_type", "button"), "action_ts": f"{time.time():.6f}"}],
        }
        if self.http_events_url:
            status, _ = await self.post_http(self.http_events_url,
                                             urllib.parse.urlencode({"payload": json.dumps(payload)}),
                                             content_type="application/x-www-form-urlencoded")
            return str(status)
        return await self.send_envelope("interactive", payload)

    # ---- HTTP mode ---------------------------------------------------------------------------

    def sign(self, body: str, timestamp: int, secret: str | None = None) -> str:
        base = f"v0:{timestamp}:{body}".encode()
        return "v0=" + hmac.new((secret or self.signing_secret).encode(), base, hashlib.sha256).hexdigest()

    async def post_http(self, url: str, body: str, *, secret: str | None = None, retry_num: int | None = None,
                        content_type: str = "application/json") -> tuple[int, str]:
        ts = int(time.time())
        headers = {"Content-Type": content_type, "X-Slack-Request-Timestamp": str(ts),
                   "X-Slack-Signature": self.sign(body, ts, secret)}
        if retry_num:
            headers.update({"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"})
        async with aiohttp.ClientSession() as s:
            async with s.post(url, data=body.encode(), headers=headers) as r:
                return r.status, await r.text()
