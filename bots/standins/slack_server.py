"""A stand-in Slack for tests: Web API, Socket Mode websocket, url_private downloads, file uploads.

Runs an aiohttp server on 127.0.0.1 (random free port). Point the SDK at it with
``AsyncWebClient(base_url=fake.api_url)``; ``apps.connections.open`` hands out a ``ws://`` URL to the same
server. Response and event shapes are filled-in copies of bots/standins/specs/slack (java-slack-sdk samples).

What tests read back: ``fake.messages`` (every message with its final text, thread, edit history,
streaming state and task updates), ``fake.calls`` (every Web API call), ``fake.acks`` (Socket Mode acks),
``fake.responses`` (response_url posts), ``fake.ephemerals``, ``fake.uploads``, ``fake.rate_limited``,
``fake.call_peers`` (the client address of every Web API call: one address, one TCP connection).

Here: the server, the state, the Web API's dispatch (auth, rate limits) and reading the store. By job, in
modules of their own: the message methods (slack_methods.py), files (slack_files.py), what people do
(slack_people.py), delivering to the app over Socket Mode or HTTP (slack_socket.py), the rate tiers
(slack_limits.py) and the spec samples and `Message` (slack_shapes.py).
"""
from __future__ import annotations

import asyncio
import itertools
import json
import urllib.parse
from typing import Any, Callable

from aiohttp import web

from bots.standins.http import listen
from bots.standins.slack_files import FileMethods
from bots.standins.slack_limits import POST_MESSAGE_PER_CHANNEL, TIERS, RateWindows
from bots.standins.slack_methods import MessageMethods
from bots.standins.slack_people import PeopleActions
from bots.standins.slack_shapes import SPECS, Message, prune, sample  # noqa: F401  (imported from here)
from bots.standins.slack_socket import Delivery

class FakeSlack(MessageMethods, FileMethods, PeopleActions, Delivery):
    def __init__(self, *, bot_token: str = "xoxb-test", app_token: str = "xapp-test",
                 signing_secret: str = "test-signing-secret", team_id: str = "T0TEAM",
                 bot_user_id: str = "UBOT", bot_id: str = "BBOT",
                 rate_minute: float | None = None, retry_after: int = 1,
                 tiers: dict[str, int] | None = None,
                 post_message_per_channel: int = POST_MESSAGE_PER_CHANNEL,
                 streaming_error: str | None = None,
                 stream_max_chars: int = 12_000, stream_ttl: float = 300.0,
                 users: dict[str, str] | None = None, files_read_scope: bool = True) -> None:
        self.bot_token, self.app_token, self.signing_secret = bot_token, app_token, signing_secret
        self.team_id, self.bot_user_id, self.bot_id = team_id, bot_user_id, bot_id
        # rate_minute: how long Slack's "minute" lasts here. None = no limits. Tests shrink it.
        self.rate_minute = rate_minute
        self.retry_after = retry_after
        self.tiers = dict(TIERS, **(tiers or {}))
        self._limits = RateWindows(self.tiers, post_message_per_channel)
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
        self.port = await listen(self._runner)
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
        return self.rate_minute is not None and self._limits.over(method, args, self.rate_minute)
