"""SlackAdapter: slack_bolt AsyncApp over Socket Mode (default) or HTTP (/slack/events), feeding ChatService.

Every listener only translates and schedules: bolt acks the envelope / HTTP request right away (Slack
retries anything not acked within 3 seconds), and the answer runs in a task this adapter tracks.
"""
from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, Mapping

import aiohttp
from aiohttp import web
from slack_bolt.app.async_app import AsyncApp

from core.admin.observe import Observer
from core.model import Author, InboundMessage, UserFacingError
from bots.slack.agent import AgentView
from core.store.shares import RateShares
from bots.slack.arrivals import MentionPath, RecentMessages, team_of
from bots.slack.approval import APPROVE, DENY, SlackApprovals
from bots.slack.controls import ACTION_IDS, SlackControls
from bots.slack.confirm import CANCEL, CONFIRM, SlackConfirmations
from bots.slack.assistant import AssistantThreads, chosen_assistant
from bots.slack.commands import SlashCommands
from bots.slack.events import (is_direct, mention_pattern, needs_thread_owner, reply_place, should_ignore,
                               to_inbound, worth_passing_on)
from bots.slack.files import SlackFiles
from bots.slack.http import SignedEndpoint
from bots.slack.interrupted import mark_interrupted
from bots.slack.parse import Drop, parse_message
from bots.slack.ratelimit import RateBudget, make_client
from bots.slack.socket_mode import CheckedSocketHandler, seed_authorization
from bots.slack.target import ReplyPlace, SlackReplyTarget, StreamSettings
from bots.slack.users import UserDirectory

log = logging.getLogger("teambridge.slack")
AUTHOR_WAIT = 0.25  # seconds a message waits for its author's name (users.info) before it goes on without

DEFAULT_API_URL = "https://slack.com/api/"


class SlackAdapter:
    name = "slack"

    def __init__(self, service: Any, *, bot_token: str, app_token: str | None = None,
                 signing_secret: str | None = None, api_url: str = DEFAULT_API_URL,
                 mode: str | None = None, http_host: str = "0.0.0.0", http_port: int | None = None,
                 rate_minute: float = 60.0, stream: StreamSettings = StreamSettings(),
                 ping_interval: float = 10.0, user_ttl: float = 3600.0) -> None:
        self._service = service
        self._bot_token, self._app_token, self._signing_secret = bot_token, app_token, signing_secret
        self._mode = mode
        self._http_host, self._http_port = http_host, http_port
        self._stream = stream
        self._ping_interval = ping_interval
        self.budget = RateBudget(minute=rate_minute)
        self.budget.on_wait = lambda seconds: self._observer().budget_wait("slack", seconds)
        self.client = make_client(bot_token, api_url, self.budget, on_429=lambda: _rate_limited(self._observer()))
        self._session: aiohttp.ClientSession | None = None
        self._shares: RateShares | None = None
        self._files = SlackFiles(token=bot_token, client=self.client, session=self._http_session, api_url=api_url)
        self.users = UserDirectory(self.client, ttl=user_ttl, budget=self.budget)
        self._recent = RecentMessages()
        self._mentions = MentionPath(self._accept, self._recent, bot_user_id=lambda: self._bot_user_id,
                                     team=lambda: self._team)
        self._tasks: set[asyncio.Task] = set()
        self._native_refused = False
        self._status_ok = True
        self._team = ""
        self._bot_user_id = ""
        self._app: AsyncApp | None = None
        self._socket: CheckedSocketHandler | None = None
        self._runner: web.AppRunner | None = None
        self.http_url: str | None = None      # http://host:port/slack/events once started in HTTP mode
        self._commands = SlashCommands(service, self.client, answer=self._answer, author=self._author)
        self.approvals = SlackApprovals(self.client, config=lambda: self._service.config, author=self._author,
                                        signals=service.store.signals(), spawn=self._spawn)
        self.controls = SlackControls(self.client, service=service, author=self._author, answer=self._answer)
        self._confirmations = SlackConfirmations(service, author=self._author)
        self.assistant_threads = AssistantThreads(service, self.client, author=self._author, accept=self._accept,
                                                  spawn=self._spawn, bot_user_id=lambda: self._bot_user_id)
        self.agent = AgentView(service, self.client, author=self._author,
                               thread_context=self.assistant_threads.contexts.get)

    def _observer(self) -> Observer:
        """The service's observer (logs, metrics), looked up when used: told about 429s and budget waits."""
        return self._service.observer

    # ---- construction from the environment --------------------------------------------------------

    @staticmethod
    def missing_credentials(config: Any, env: Mapping[str, str]) -> list[str]:
        needed = ["SLACK_BOT_TOKEN", "SLACK_APP_TOKEN" if config.slack.mode == "socket" else "SLACK_SIGNING_SECRET"]
        return [name for name in needed if not env.get(name)]

    @classmethod
    def from_env(cls, service: Any, env: Mapping[str, str]) -> "SlackAdapter | None":
        config = service.config
        if not config.slack.enabled or cls.missing_credentials(config, env):
            return None
        return cls(service, bot_token=env["SLACK_BOT_TOKEN"], app_token=env.get("SLACK_APP_TOKEN") or None,
                   signing_secret=env.get("SLACK_SIGNING_SECRET") or None,
                   api_url=env.get("SLACK_API_URL") or DEFAULT_API_URL, mode=config.slack.mode)

    # ---- lifecycle --------------------------------------------------------------------------------

    def _http_session(self) -> aiohttp.ClientSession:
        """The adapter's one HTTP session: every Web API call (ours and bolt's per-request clients, which copy
        `client.session`) and every file download reuse its keep-alive connections. Without it slack_sdk
        opens a new ClientSession, and so a new TCP (and TLS) connection, for every single call."""
        if self._session is None or self._session.closed:
            # aiohttp's pool holds at most 100 connections: a burst of more simultaneous calls waits for a
            # free (warm) one rather than opening hundreds of TLS connections to Slack at once.
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))
            self.client.session = self._session
        return self._session

    async def start(self) -> None:
        slack = self._service.config.slack
        mode = self._mode or slack.mode
        self._http_session()
        auth = await self.client.auth_test()
        self._team, self._bot_user_id = str(auth.get("team_id", "")), str(auth.get("user_id", ""))
        mention_pattern(self._bot_user_id)   # compiled now, not in front of the first message's request
        # Slack's tiers count per app per workspace: processes on one database split them (core/store/shares.py)
        self._shares = self._service.store.rate_shares(f"slack:{self._team}:{self._bot_user_id}",
                                                       window=self.budget.window)
        await self.budget.share_with(self._shares)
        self._app = AsyncApp(
            client=self.client, name="teambridge",
            signing_secret=self._signing_secret or "",
            # Socket Mode envelopes are not signed; HTTP requests must be (bad signatures get a 401).
            request_verification_enabled=mode == "http",
            ignoring_self_events_enabled=True,
        )
        # The assistant container (AI apps): thread started / context changed, and every message.im in a
        # thread, which this middleware hands to the same path as the listeners below.
        self._app.assistant(self.assistant_threads.middleware())
        self._app.event("app_mention")(self._on_app_mention)
        self._app.event("message")(self._on_message)
        # The agent surface (agent_view): the DM opened (suggested prompts), what the person is looking at
        self._app.event("app_home_opened")(self._on_home_opened)
        self._app.event("app_context_changed")(self._on_context_changed)
        # any command name: the configured one may change on reload; the manifest decides what Slack sends
        self._app.command(re.compile(r"^/.+"))(self._on_command)
        self._app.action(re.compile(f"^({APPROVE}|{DENY})$"))(self._on_approval)
        self._app.action(re.compile(ACTION_IDS))(self._on_control)   # Stop, Retry, 👍 / 👎 on answers
        self._app.action(re.compile(f"^({CONFIRM}|{CANCEL})$"))(self._on_confirm)
        self._app.error(self._on_error)
        seed_authorization(self._app, auth)
        if mode == "http":
            port = slack.http_port if self._http_port is None else self._http_port
            self.endpoint = SignedEndpoint(self._app, self._signing_secret or "")
            self._runner = web.AppRunner(self.endpoint.web_app("/slack/events"), access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self._http_host, port)
            await site.start()
            bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            host = "127.0.0.1" if self._http_host in ("0.0.0.0", "") else self._http_host
            self.http_url = f"http://{host}:{bound}/slack/events"
            log.info("Slack HTTP mode listening on %s", self.http_url)
        else:
            if not self._app_token:
                raise RuntimeError("Slack Socket Mode needs SLACK_APP_TOKEN")
            # apps.connections.open goes through app.client, so SLACK_API_URL applies to it as well
            self._socket = CheckedSocketHandler(self._app, self._app_token, ping_interval=self._ping_interval,
                                                 events=self._mentions.take)
            await self._socket.connect_async()
            log.info("Slack Socket Mode connected (team %s)", self._team)

    async def wait_dead(self) -> str:
        """Never returns: slack_sdk makes a dropped Socket Mode connection again by itself, and an HTTP
        endpoint does not drop (`connected` says whether it is up right now)."""
        await asyncio.Event().wait()
        return ""

    @property
    def connected(self) -> bool:
        """Receiving events: the Socket Mode websocket is open, or the HTTP endpoint listens (for /readyz).
        slack_sdk reconnects a dropped socket by itself; this is False while it does."""
        if self._runner is not None:
            return True
        sockets = self._socket.client if self._socket is not None else None
        session = getattr(sockets, "current_session", None)
        return bool(sockets is not None and not sockets.closed and session is not None and not session.closed)

    async def stop_receiving(self) -> None:
        """No new events (shutdown's first step); answers in flight keep their Web API session."""
        if self._socket is not None:
            await self._socket.close_async()
            self._socket = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def stop(self) -> None:
        await self.stop_receiving()
        self.approvals.close()
        if self._tasks:
            grace = self._service.config.shutdown_grace_seconds
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
        if self._shares is not None:
            await self._shares.close()
            self._shares = None
        if self._session is not None:
            self.client.session = None
            await self._session.close()
            self._session = None

    async def wait_idle(self) -> None:
        """Wait until every answer scheduled so far is done (tests, shutdown)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    # ---- interrupted replies ---------------------------------------------------------------------

    async def mark_interrupted(self, channel: str, message_id: str, thread: str | None) -> None:
        await mark_interrupted(self.client, channel, message_id, thread)

    # ---- listeners (run after bolt acked) ---------------------------------------------------------

    async def _ignore(self) -> None:
        return None

    async def _on_home_opened(self, event: dict, body: dict) -> None:
        self._spawn(self.agent.home_opened(event, str(body.get("team_id") or "")), "slack-home-opened")

    async def _on_context_changed(self, event: dict, body: dict) -> None:
        self.agent.context_changed(event, str(body.get("team_id") or ""))

    async def _on_error(self, error: Exception, body: dict) -> None:
        log.error("Slack listener error: %s (%s)", error, (body or {}).get("type"), exc_info=error)

    async def _on_app_mention(self, event: dict, body: dict, context: dict) -> None:
        self._accept(event, body, context, kind="app_mention")

    async def _on_message(self, event: dict, body: dict, context: dict) -> None:
        # With agent_view the suggested prompts sit on the DM itself: picking one sends a top-level DM message,
        # which chooses its assistant (assistant_view threads arrive through AssistantThreads instead).
        chosen = chosen_assistant(self._service.config, event.get("text", "")) if is_direct(event) else None
        self._accept(event, body, context, kind="message", assistant=chosen)

    async def _on_command(self, ack: Any, body: dict, respond: Any) -> None:
        await ack()  # within Slack's 3 seconds; the reply goes to response_url
        self._spawn(self._commands.run(body, respond), f"slack-command-{body.get('trigger_id')}")

    async def _on_confirm(self, ack: Any, body: dict, respond: Any = None) -> None:
        await ack()  # within Slack's 3 seconds; the answer goes to the click's response_url
        self._spawn(self._confirmations.on_action(body, respond), f"slack-confirm-{body.get('trigger_id')}")

    async def _on_approval(self, ack: Any, body: dict) -> None:
        await ack()  # within Slack's 3 seconds; the decision is applied after
        self._spawn(self.approvals.on_action(body), f"slack-approval-{body.get('trigger_id')}")

    async def _on_control(self, ack: Any, body: dict) -> None:
        await ack()
        self._spawn(self.controls.on_action(body), f"slack-control-{body.get('trigger_id')}")

    def _accept(self, raw: dict, body: dict, context: Any, *, kind: str, assistant: str | None = None) -> None:
        event = parse_message(raw)
        if isinstance(event, Drop):
            log.info("Slack %s event dropped: %s", kind, event.reason)
            return
        if should_ignore(event):
            return
        bot_user_id = ((getattr(context, "bot_user_id", None) or context.get("bot_user_id") if context is not None
                        else None) or self._bot_user_id)
        if not worth_passing_on(event, kind=kind, bot_user_id=bot_user_id, config=self._service.config):
            return
        team = team_of(body, event, self._team)
        if not self._recent.first_sight(team, event["channel"], event["ts"]):
            return
        follow_up = needs_thread_owner(event, kind=kind, bot_user_id=bot_user_id, config=self._service.config)
        self._spawn(self._process(event, team=team, bot_user_id=bot_user_id, assistant=assistant,
                                  follow_up=follow_up),
                    f"slack-{event.get('channel')}-{event.get('ts')}")

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("Slack task %s failed", task.get_name(), exc_info=task.exception())

    async def _process(self, event: dict, *, team: str, bot_user_id: str, assistant: str | None = None,
                       follow_up: bool = False) -> None:
        dm_threads = self._service.config.slack.agent_view
        place = reply_place(event, team=team, dm_threads=dm_threads)
        if follow_up and not await self._bot_owns_thread(event):
            return  # a thread reply without a mention, in a thread the bot is not in: people talking
        try:
            # A message needs only the id to be answered (access and limits go by id): the name is waited for
            # briefly. Commands still wait, since admin rights come from the same look-up.
            author = await self._author(event["user"], "", team=team, wait=AUTHOR_WAIT)
            max_mb = self._service.config.slack.max_file_mb
            attachments = await self._files.attachments(event.get("files") or [], max_mb=max_mb)
            msg = to_inbound(event, team=team, bot_user_id=bot_user_id, author=author, attachments=attachments,
                             dm_threads=dm_threads, assistant=assistant, place=place)
        except UserFacingError as e:
            if await self._first_delivery(event):
                await self._target(place).notice(f"⚠️ {e.message}")
            return
        except Exception as e:
            log.exception("could not read Slack event in %s", event.get("channel"))
            if await self._first_delivery(event):
                await self._target(place).notice(f"⚠️ Sorry, I could not read that message ({type(e).__name__}).")
            return
        await self._answer(msg, place)

    async def _bot_owns_thread(self, event: dict) -> bool:
        # the same (cached) store read the service does first; here it saves the users.info call
        return await self._service.store.thread_assistant("slack", event["channel"], event["thread_ts"]) is not None

    async def _first_delivery(self, event: dict) -> bool:
        """Claims the message (as the service would) so a problem with it is reported once, not once per
        delivery (app_mention + message.*, retries)."""
        return await self._service.claim("slack", f"{event['channel']}:{event['ts']}")

    async def _answer(self, msg: InboundMessage, place: ReplyPlace) -> None:
        try:   # a DM about "this channel": what the person is looking at, when the bot may read it
            msg = await self.agent.with_context(msg)
        except Exception:
            log.exception("could not add what the person is looking at to their message; answering without it")
        target = self._target(place)
        approver = self.approvals.approver(channel=place.channel, thread_ts=place.thread_ts,
                                           before_prompt=target.settle_status)
        try:
            await self._service.handle(msg, target, approver=approver)
        finally:   # however the turn ended (a failed set-up, a shutdown): no thinking status after it
            target.settle_status()

    def _target(self, place: ReplyPlace) -> SlackReplyTarget:
        return SlackReplyTarget(
            self.client, place,
            native_streaming=lambda: self._service.config.slack.native_streaming and not self._native_refused,
            on_refused=self._refuse_native, status_supported=lambda: self._status_ok,
            on_status_refused=self._refuse_status, stream=self._stream, budget=self.budget, spawn=self._spawn)

    def _refuse_native(self, error: str) -> None:
        self._native_refused = True

    def _refuse_status(self) -> None:
        self._status_ok = False

    async def _author(self, user_id: str, fallback_name: str, *, team: str = "",
                      wait: float | None = None) -> Author:
        return await self.users.author(user_id, team=team or self._team, fallback_name=fallback_name, wait=wait)


def _rate_limited(observer: Observer) -> None:
    """A 429 from Slack that slack_sdk is about to retry after its Retry-After."""
    observer.rate_limited("slack")
    observer.retried("slack")
