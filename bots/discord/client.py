"""DiscordAdapter: discord.py Client + slash commands (bots/discord/slash.py), wired to core's ChatService.

Composition root usage:
    adapter = DiscordAdapter.from_env(service, os.environ)   # None when DISCORD_BOT_TOKEN is missing
    await adapter.start()                                    # returns once connected (READY)
    await adapter.stop()
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Mapping, Protocol

import aiohttp
import discord

from bots.discord import endpoints
from bots.discord.approval import DiscordApprovals
from bots.discord.delivery import Delivery
from bots.discord.controls import DiscordControls
from bots.discord.commands import MemoryDigests, SyncDigests, build_tree, sync_if_changed
from bots.discord.events import ReplyChains, RootStore, translate, unreadable
from bots.discord.confirm import confirm_items
from bots.discord.files import CdnFetcher
from bots.discord.gateway import describe, fatal, gateway_intents, gateway_open, guard_parsers, make_client
from bots.discord.gateway_turns import take_turns
from bots.discord.interrupted import mark_interrupted
from bots.discord.invite import invite_url
from bots.discord.paced_http import pace_requests
from bots.discord.plain import PlainMessage, take_plain_messages
from bots.discord.session import GatewaySession
from bots.discord.pacing import Pacers
from bots.discord.slash import SlashCommands
from bots.discord.target import TYPING_DELAY, ChannelTarget
from core.admin.observe import Observer
from core.model import InboundMessage
from core.store.shares import RateShares

log = logging.getLogger("teambridge.discord")

INTENT_HELP = ("Discord refused the Message Content intent: enable it in the Developer Portal → Bot → "
               "Privileged Gateway Intents (Message Content Intent), then restart.")
TOKEN_HELP = ("Discord rejected DISCORD_BOT_TOKEN (401 Unauthorized): copy the bot token again from the "
              "Developer Portal → Bot → Reset Token.")
ERROR_NOTICE = "Sorry, something went wrong on our side — please try again."


class DiscordStore(RootStore, SyncDigests, Protocol):
    """What the adapter keeps in core's Store (core.store.protocol.Store has it)."""

    def rate_shares(self, scope: str, *, window: float, refresh: float = 1.0) -> RateShares: ...


class DiscordStartupError(RuntimeError):
    """Discord can't be started; the message says what to do."""


class DiscordAdapter:
    name = "discord"

    def __init__(self, service, *, token: str, endpoints_: endpoints.Endpoints | None = None,
                 pacers: Pacers | None = None,
                 guild_ready_timeout: float = 2.0, store: DiscordStore | None = None,
                 typing_delay: float = TYPING_DELAY, reconnect_backoff: tuple[float, float] = (1.0, 60.0)) -> None:
        self._service = service
        self._token = token
        self._endpoints = endpoints_ or endpoints.Endpoints()
        self._cdn = CdnFetcher(self._endpoints.api_url)
        # What was last synced (slash commands) and which conversation each bot message belongs to: in the store,
        # so they survive a restart and every process on a shared database sees them; without one, for this run.
        self._state = store if store is not None else MemoryDigests()
        self._store = store
        self._shares: RateShares | None = None
        self._pacers = pacers or Pacers()
        # per answer: its first message queued with its first text; the whole answer if it ended meanwhile
        self._delivery = Delivery(self._pacers, clock=self._pacers.clock)
        observer: Observer = service.observer   # logs and metrics: told about 429s and budget waits
        self._pacers.on_wait = lambda seconds: observer.budget_wait("discord", seconds)
        self._guild_ready_timeout = guild_ready_timeout
        self._typing_delay = typing_delay  # 0: "is typing…" at once, even when the answer is about to start
        self._chains = ReplyChains(store=store)
        self._client: discord.Client | None = None
        self._task: asyncio.Task | None = None
        self._backoff = reconnect_backoff
        self._dead: asyncio.Future[str] | None = None   # set when the gateway gives up for good
        self._stopping = False
        self.reconnects = 0          # gateway connections re-made after one ended with an error
        self.dropped_events = 0      # gateway events discord.py could not parse (dropped, one log line each)
        self.plain_messages = 0      # messages read from the gateway's payload, without discord.py's Message
        self._saved = None
        self.invite_url: str | None = None
        self.synced_scopes: list[str] = []
        self.approvals = DiscordApprovals(config=lambda: self._service.config)
        self.controls = DiscordControls(service, answer=self._answer_again)

    # ---- composition ------------------------------------------------------------------------------

    @staticmethod
    def missing_credentials(config, env: Mapping[str, str]) -> list[str]:
        return [] if (env.get("DISCORD_BOT_TOKEN") or "").strip() else ["DISCORD_BOT_TOKEN"]

    @classmethod
    def from_env(cls, service, env: Mapping[str, str], **kwargs) -> "DiscordAdapter | None":
        token = (env.get("DISCORD_BOT_TOKEN") or "").strip()
        if not token:
            return None
        kwargs.setdefault("store", service.store)
        return cls(service, token=token, endpoints_=endpoints.Endpoints.from_env(env), **kwargs)

    @property
    def client(self) -> discord.Client:
        assert self._client is not None, "start() first"
        return self._client

    def _config(self):
        return self._service.config.discord  # re-read each time: hot reload may swap it

    # ---- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        self._saved = endpoints.apply(self._endpoints)
        client = make_client(self._config(), intents=gateway_intents(),
                              guild_ready_timeout=self._guild_ready_timeout,
                              allowed_mentions=discord.AllowedMentions.none(),
                              # discord.py keeps the last 1,000 messages (with their authors) by default
                              # and, for a cached one, copies it on every MESSAGE_UPDATE. Nothing here
                              # reads that cache: a reply's parent arrives with the event itself
                              # (`referenced_message`) and ReplyChains keeps its own roots.
                              max_messages=None,
                              member_cache_flags=discord.MemberCacheFlags.none(),
                              chunk_guilds_at_startup=False,
                              # discord.py retries a 429 by itself and offers no hook: count them here
                              http_trace=_rate_limit_trace(self._service.observer))
        self._client = client
        pace_requests(client.http, self._pacers.global_)   # its own requests (login, command sync) count too
        take_turns(client.http)   # a burst's first messages go ahead while its later frames still arrive
        confirmations = confirm_items(self._service.commands.confirm)
        slash = SlashCommands(self._service, chains=self._chains, approvals=self.approvals, cdn=self._cdn,
                              confirm_items=confirmations)
        self._tree = build_tree(client, specs=self._service.commands.specs("discord"),
                                assistants=list(self._service.config.assistants),
                                on_ask=slash.on_ask, on_text=slash.on_text_command)
        client.event(self.on_message)
        client.event(self.on_interaction)
        client.add_dynamic_items(confirmations)   # Confirm / Cancel under a command's reply
        # Most messages skip discord.py's Message; installed first, so that the guard below wraps it as well: a
        # failure anywhere in reading a MESSAGE_CREATE drops that event with one log line, never the connection.
        take_plain_messages(client._connection, self._take_plain)
        guard_parsers(client, self._parse_failed)
        self._dead = asyncio.get_running_loop().create_future()
        try:
            await client.login(self._token)
        except discord.LoginFailure:
            await self._abort()
            raise DiscordStartupError(TOKEN_HELP) from None
        except Exception:
            await self._abort()
            raise
        if self._store is not None:   # the 50 requests/s are per bot: processes on one database split them
            self._shares = self._store.rate_shares(f"discord:{client.application_id}",
                                                   window=self._pacers.global_.period, refresh=0.25)
            await self._pacers.share_with(self._shares)
        self.invite_url = invite_url(client.application_id)
        log.info("Discord: logged in as %s. Invite the bot with: %s", client.user, self.invite_url)
        if not self._config().runs_shard_zero:   # several shard processes: one of them syncs, not each
            log.info("Discord: slash commands are synced by the process that runs shard 0")
        else:
            try:
                self.synced_scopes = await sync_if_changed(self._tree, client.application_id,
                                                           list(self._config().guilds), self._state)
            except discord.HTTPException as exc:  # the bot still works for mentions and DMs
                log.error("Discord: syncing slash commands failed: %s", exc)

        ready = asyncio.create_task(client.wait_until_ready())
        session = GatewaySession(client)   # kept across reconnects
        self._task = asyncio.create_task(self._supervise(client, session), name="discord-gateway")
        done, _ = await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:
            ready.cancel()
            exc = self._task.exception()
            await self._abort()
            if isinstance(exc, discord.PrivilegedIntentsRequired):
                raise DiscordStartupError(INTENT_HELP) from None
            if isinstance(exc, discord.ConnectionClosed) and exc.code == 4004:
                raise DiscordStartupError(TOKEN_HELP) from None
            raise DiscordStartupError(f"Discord gateway connection failed: {exc!r}") from exc
        self._task.add_done_callback(self._gateway_ended)

    async def _supervise(self, client: discord.Client, session: GatewaySession) -> None:
        """discord.py's own reconnect covers network errors and Discord closing the socket; any other exception
        ends `connect()` for good, and the process would stay up answering nothing. Connect again with a
        growing pause instead, resuming the same session (bots/discord/session.py), so that the messages sent
        meanwhile are replayed. Only a failure before the first READY (bad token, missing intent: start()
        reports those) or one that cannot heal by retrying ends the gateway, and then `wait_dead()` says so."""
        first, ceiling = self._backoff
        delay = first
        while True:
            try:
                await session.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stopping:
                    return
                # discord.py closes the client itself on close codes it cannot recover from (4004, ...)
                if not client.is_ready() or fatal(exc) or client.is_closed():
                    raise
                log.error("Discord: gateway connection ended (%s); reconnecting in %.1f s", describe(exc), delay)
                session.left_off()
                if client.ws is not None:
                    with contextlib.suppress(Exception):
                        await client.ws.close(code=4000)
                await asyncio.sleep(delay)
                delay = min(delay * 2, ceiling)
                self.reconnects += 1
            else:
                if self._stopping:
                    return
                raise ConnectionError("Discord gateway connection ended")  # closed, and not by stop()

    def _gateway_ended(self, task: asyncio.Task) -> None:
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        reason = INTENT_HELP if isinstance(exc, discord.PrivilegedIntentsRequired) else \
            f"gateway connection ended: {describe(exc)}"
        log.error("Discord: %s", reason)
        if self._dead is not None and not self._dead.done():
            self._dead.set_result(reason)

    def _parse_failed(self, event: str, exc: BaseException) -> None:
        self.dropped_events += 1
        log.warning("Discord: dropped a %s event discord.py could not read (%s)", event, describe(exc))

    @property
    def connected(self) -> bool:
        """Connected to the gateway and past READY: what a readiness probe reports for Discord."""
        client, task = self._client, self._task
        return (client is not None and task is not None and not task.done() and not client.is_closed()
                and client.is_ready() and gateway_open(client))

    async def wait_dead(self) -> str:
        """Returns (the reason) once the gateway has given up for good; a supervisor should then restart us."""
        assert self._dead is not None, "start() first"
        return await asyncio.shield(self._dead)

    async def _abort(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._saved is not None:
            endpoints.restore(self._saved)
            self._saved = None

    async def stop_receiving(self) -> None:
        """Nothing to close yet: the gateway stays up so that a message arriving during shutdown is told
        "restarting" (the service refuses it); closing the client would also close the HTTP session that the
        answers in flight still edit through."""

    async def stop(self) -> None:
        self._stopping = True
        if self._dead is not None and not self._dead.done():
            self._dead.set_result("stopped")
        if self._client is not None:
            await self._client.close()
        if self._task is not None:
            _, pending = await asyncio.wait({self._task}, timeout=5)
            for task in pending:  # pausing before a reconnect
                task.cancel()
            try:
                await self._task
            except (Exception, asyncio.CancelledError) as exc:  # already reported by _gateway_ended
                log.debug("gateway task ended with %r", exc)
        if self._shares is not None:
            await self._shares.close()
            self._shares = None
        if self._saved is not None:
            endpoints.restore(self._saved)
            self._saved = None

    async def mark_interrupted(self, channel: str, message_id: str, thread: str | None) -> None:
        await mark_interrupted(self.client, self._pacers, channel, message_id, thread)

    # ---- messages ---------------------------------------------------------------------------------

    async def on_message(self, message: discord.Message) -> None:
        """A message discord.py parsed (the ones bots/discord/plain.py does not read itself: replies, files, ...)."""
        client = self.client
        if client.user is None:
            return
        reason = unreadable(message)
        if reason is not None:
            log.info("Discord message %s dropped: %s", message.id, reason)
            return
        try:
            full = self._service.config  # one snapshot: hot reload may swap it
            inbound = await translate(message, client.user, full, self._chains, cdn=self._cdn)
        except Exception:
            log.exception("could not read Discord message %s in %s", message.id, message.channel.id)
            await self._quiet_reply(message, ERROR_NOTICE)
            return
        if inbound is not None:
            await self._answer(message, inbound, full.discord)

    def _take_plain(self, plain: PlainMessage) -> None:
        """A plain message read from the gateway's payload (bots/discord/plain.py): answered in a task of its own,
        as discord.py runs on_message; called in the gateway's reader, so nothing here may raise."""
        self.plain_messages += 1
        asyncio.get_running_loop().create_task(self._answer_plain(plain))

    async def _answer_plain(self, plain: PlainMessage) -> None:
        message = plain.message
        try:
            full = self._service.config  # one snapshot: hot reload may swap it
            inbound = plain.inbound(full, self._chains)
        except Exception:
            log.exception("could not read Discord message %s in %s", message.id, message.channel.id)
            await self._quiet_reply(message, ERROR_NOTICE)
            return
        try:
            await self._answer(message, inbound, full.discord)
        except Exception:   # what discord.py's event runner would log for on_message
            log.exception("Discord message %s: answering failed", message.id)

    async def _answer(self, message: discord.Message | discord.PartialMessage, inbound: InboundMessage,
                      config) -> None:
        try:
            channel: discord.abc.Messageable = message.channel
            if (config.auto_thread and inbound.mentions_bot and inbound.thread == str(message.id)
                    and isinstance(message.channel, discord.TextChannel)):
                thread = await self._start_thread(message, inbound.text)
                if thread is not None:
                    channel = thread
            root = int(inbound.thread) if inbound.thread and channel is message.channel else None
            target = ChannelTarget(channel, pacers=self._pacers, chains=self._chains,
                                   reply_to=message if channel is message.channel else None, root=root,
                                   typing_delay=self._typing_delay, delivery=self._delivery)
        except Exception:
            log.exception("could not read Discord message %s in %s", message.id, message.channel.id)
            await self._quiet_reply(message, ERROR_NOTICE)
            return
        approver = self.approvals.approver(channel, reply_to=message if channel is message.channel else None)
        await self._service.handle(inbound, target, approver=approver)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Clicks on answers' buttons (Stop, Retry, 👍 / 👎); slash commands and approvals go their own ways."""
        if DiscordControls.handles(interaction):
            await self.controls.on_click(interaction)

    async def _answer_again(self, inbound: InboundMessage, interaction: discord.Interaction) -> None:
        """Retry: the question answered again where the clicked answer is, as a reply to it."""
        channel = interaction.channel
        if channel is None or not isinstance(channel, discord.abc.Messageable):
            log.warning("retry of a Discord answer: no channel to answer in")
            return
        root = int(inbound.thread) if inbound.thread and inbound.thread != str(channel.id) else None
        target = ChannelTarget(channel, pacers=self._pacers, chains=self._chains, reply_to=interaction.message,
                               root=root, typing_delay=self._typing_delay, delivery=self._delivery)
        await self._service.handle(inbound, target, approver=self.approvals.approver(channel))

    async def _start_thread(self, message: discord.Message | discord.PartialMessage,
                            text: str) -> discord.Thread | None:
        name = (text.splitlines()[0] if text.strip() else f"Chat with {self.client.user.name}")[:90] or "Chat"
        try:
            async with self._pacers.for_global():
                return await message.create_thread(name=name, auto_archive_duration=1440)
        except discord.HTTPException as exc:
            if exc.code == 160004:  # redelivered event: the thread exists already (its id is the message id)
                existing = message.guild.get_thread(message.id) if message.guild else None
                if existing is not None:
                    return existing
            log.warning("could not create a thread for %s (%s); answering in the channel", message.id, exc)
            return None

    async def _quiet_reply(self, message: discord.Message | discord.PartialMessage, text: str) -> None:
        try:
            await message.reply(text, mention_author=False)
        except discord.HTTPException as exc:
            log.warning("could not send a notice in %s: %s", message.channel.id, exc)


def _rate_limit_trace(observer: Observer) -> aiohttp.TraceConfig:
    """Every 429 Discord answers is one rate limit and, as discord.py retries it after Retry-After, one retry."""
    trace = aiohttp.TraceConfig()

    async def on_request_end(session, context, params: aiohttp.TraceRequestEndParams) -> None:
        if params.response.status == 429:
            observer.rate_limited("discord")
            observer.retried("discord")

    trace.on_request_end.append(on_request_end)
    return trace
