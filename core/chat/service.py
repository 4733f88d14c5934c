"""ChatService: the one place where a message meets routing, access, the store, the backend and the reply.

Platform adapters call into this; nothing here knows a platform. This module decides whether and who answers
(addressed? claimed once? accepting? which assistant, allowed, within limits?), holds the conversation's turn
lock, and keeps the service's life (commands' reset and assistant choice, shutdown, replies cut off by a
crash). Under the lock the answer itself is core/chat/turn.py's (the conversation set up by core/chat/setup.py,
its records kept by core/chat/records.py).
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import Awaitable, Callable

from core.admin.observe import FAILED, REFUSED, NullObserver, Observer, TurnReport
from core.chat.access import check_access, is_admin
from core.chat.commands import AdminHandler, CommandSurface
from core.chat.limits import UsageLimiter
from core.chat.locks import KeyedLocks, TurnLocks
from core.chat.records import TurnProgress, quietly
from core.chat.routing import conversation_key, is_addressed, pick_assistant, preference_scope
from core.chat.setup import ConversationSetup
from core.chat.turn import THREAD_MEMORY_SECONDS, AnswerTurn
from core.config.policy import effective_limits
from core.config.schema import Config
from core.files.attachments import PreparedInputs
from core.model import Author, InboundMessage
from core.ports import AssistantBackend, PlatformAdapter, ReplyTarget
from core.reply.controls import AnswerControls
from core.reply.tail import INTERRUPTED_NOTICE
from core.store.protocol import ConversationRecord, EventClaims, Store
from core.tools.approval import Approver

# INTERRUPTED_NOTICE, PreparedInputs, THREAD_MEMORY_SECONDS: named here too for those who import them from here
__all__ = ["ChatService", "INTERRUPTED_NOTICE", "PreparedInputs", "SHUTTING_DOWN_NOTICE", "THREAD_MEMORY_SECONDS"]

log = logging.getLogger("teambridge.service")

SHUTTING_DOWN_NOTICE = "teambridge is restarting — please ask again in a minute."


class ChatService:
    def __init__(self, config: Config, store: Store, backends: dict[str, AssistantBackend], *,
                 files=None, knowledge=None, limiter: UsageLimiter | None = None,
                 commands: dict[str, AdminHandler] | None = None,
                 turn_locks: TurnLocks | None = None, claims: EventClaims | None = None,
                 erase: Callable[[ConversationRecord], Awaitable[object]] | None = None,
                 tools=None, observer: Observer | None = None, controls: AnswerControls | None = None) -> None:
        self._config = config
        self._store = store
        self._backends = backends
        self._files = files            # core.files.attachments.AttachmentRouter (optional: no attachments without it)
        self._knowledge = knowledge    # core.files.knowledge.KnowledgeSync (optional: assistant vector stores)
        self._tools = tools            # core.tools.registry.ToolRegistry (optional: says when a tool server is down)
        self._limiter = limiter or UsageLimiter(store)
        # One turn at a time per conversation, and each event answered once: injected by the composition root
        # (database-backed when several processes share the store); the one-process defaults otherwise.
        self._locks: TurnLocks = turn_locks if turn_locks is not None else KeyedLocks()
        self._claims: EventClaims = claims if claims is not None else store
        # help, reset, assistant and the admin commands; clicks on their questions pass between processes
        self.commands = CommandSurface(self, commands, signals=store.signals())
        self._erase = erase            # deletes a conversation at its backend (assistants with reset_deletes)
        self._turns: set[asyncio.Task] = set()
        self._turn: tuple[tuple, AnswerTurn] | None = None   # see _answer_turn
        self._accepting = True
        self.cut_off = {"marked": 0, "unmarked": 0}   # replies interrupted by shutdown, by whether that shows
        self.observer: Observer = observer or NullObserver()  # logs and metrics; adapters report rate limits here
        # Stop / Retry / rating buttons on answers: the platforms hand their clicks to it (core/reply/controls.py)
        self.controls = controls or AnswerControls(
            store, lambda: self._config, on_rated=lambda *rated: self.observer.feedback(*rated))

    # ---- configuration (hot reload swaps it; a turn keeps the snapshot it started with) -----------------

    @property
    def config(self) -> Config:
        return self._config

    @property
    def store(self) -> Store:
        """For adapters that keep small platform mappings (e.g. which conversation a Discord message belongs to)."""
        return self._store

    def apply_config(self, config: Config, *, backends: dict[str, AssistantBackend] | None = None,
                     tools=None) -> None:
        """Swap the config for new turns. `backends`: rebuilt for the new config (e.g. a tool registry with new
        function tools, a new backend section); config and backends are swapped together, and a turn in flight
        keeps the pair it started with."""
        if backends is not None:
            self._backends = dict(backends)
        if tools is not None:
            self._tools = tools
        self._config = config

    def add_command(self, name: str, handler: AdminHandler, *, summary: str = "") -> None:
        """An admin command's handler (see CommandSurface.add)."""
        self.commands.add(name, handler, summary=summary)

    # ---- the main path -------------------------------------------------------------------------------------

    async def handle(self, msg: InboundMessage, target: ReplyTarget, *, approver: Approver | None = None) -> None:
        """`approver`: how this platform asks the person for approval of a tool call (None: it cannot; such
        calls are then not run)."""
        task = asyncio.current_task()
        if task is not None:
            self._turns.add(task)
        try:
            await self._handle(msg, target, approver, time.monotonic())
        except Exception:  # last line of defence: the adapter's task must never die silently
            log.exception("unhandled error for %s message in %s", msg.platform, msg.channel)
            await quietly(target.notice("Sorry, something went wrong on our side — please try again."))
        finally:
            if task is not None:
                self._turns.discard(task)

    async def _handle(self, msg: InboundMessage, target: ReplyTarget, approver: Approver | None = None,
                      received: float = 0.0) -> None:
        config, backends = self._config, self._backends
        # A message that starts its own thread (the thread's id is its own) finds nothing stored for that thread:
        # no marker and no thread-scoped conversation yet (a second delivery of it is dropped by the claim).
        new_thread = bool(msg.thread) and msg.thread == msg.message_id
        thread_assistant = (await self._store.thread_assistant(msg.platform, msg.channel, msg.thread)
                            if msg.thread and not new_thread else None)
        owns_thread = thread_assistant is not None
        if not is_addressed(config, msg, bot_owns_thread=owns_thread):
            return
        if msg.event_id and not await self._claims.claim_event(msg.platform, msg.event_id):
            log.info("duplicate delivery of %s event %s ignored", msg.platform, msg.event_id)
            return
        if not self._accepting:
            await target.notice(SHUTTING_DOWN_NOTICE, ephemeral=True)
            return

        preference = await self._store.get_preference(preference_scope(msg))
        if owns_thread and not msg.assistant:
            preference = thread_assistant
        name = pick_assistant(config, msg, preference=preference)
        assistant = config.assistants.get(name)
        if assistant is None:
            await target.notice(f"There is no assistant called “{name}”. Available: {', '.join(config.assistants)}.",
                                ephemeral=True)
            return
        refusal = check_access(config, assistant, msg)
        limits = _limits_for(config, assistant)
        if refusal is None and limits is not None:
            refusal = await self._limiter.admit(limits, msg)
        if refusal is not None:
            self.observer.turn_finished(TurnReport(msg.platform, assistant.name, msg.channel, msg.author.id, REFUSED,
                                                   time.monotonic() - received, None, text=msg.text, started=False))
            await target.notice(refusal, ephemeral=True)
            return

        key = conversation_key(assistant, msg)
        async with self._locks.hold(f"{key.as_string()}#{assistant.name}"):
            progress = TurnProgress(received)
            self.observer.turn_started(msg.platform, assistant.name)
            turn = self._answer_turn()
            try:
                await turn.run(assistant, msg, key, target, backends[assistant.backend], progress, approver)
            finally:
                if progress.outcome == FAILED:
                    self.observer.backend_error(assistant.backend, progress.error)
                self.observer.turn_finished(progress.report(msg, assistant))

    def _answer_turn(self) -> AnswerTurn:
        """What runs an answer, built from what the service holds now; kept while that stays the same (it holds
        no state of a turn), rebuilt once a reload swaps the tools (or attachments, knowledge) out."""
        files, knowledge, tools = self._files, self._knowledge, self._tools
        kept = self._turn
        if kept is None or kept[0][0] is not files or kept[0][1] is not knowledge or kept[0][2] is not tools:
            kept = self._turn = ((files, knowledge, tools), AnswerTurn(
                store=self._store, setup=ConversationSetup(self._store, self._files, self._knowledge),
                limiter=self._limiter, controls=self.controls, tools=self._tools, cut_off=self.cut_off))
        return kept[1]

    # ---- commands ------------------------------------------------------------------------------------------

    async def claim(self, platform: str, event_key: str) -> bool:
        return await self._claims.claim_event(platform, event_key)

    async def reset(self, msg: InboundMessage, *, user: str | None = None) -> str:
        """Start a new conversation here. `user`: an admin resetting someone else's conversation in this place."""
        config = self._config
        user = user if user and user != msg.author.id else None
        if user:
            if not is_admin(config, msg.author):
                return "Only admins can reset someone else's conversation."
            msg = replace(msg, author=Author(id=user, name=user))
        name = pick_assistant(config, msg, preference=await self._store.get_preference(preference_scope(msg)))
        assistant = config.assistants.get(name)
        if assistant is None:
            return f"There is no assistant called “{name}”."
        key = conversation_key(assistant, msg)
        async with self._locks.hold(f"{key.as_string()}#{assistant.name}"):
            record = await self._store.get_conversation(key, assistant.name)
            existed = await self._store.delete_conversation(key, assistant.name)
            backend = self._backends.get(assistant.backend)
            if record is not None and backend is not None and not backend.capabilities.server_history:
                await backend.session(record.backend_id).clear()   # history kept here: nothing left behind
        if record is not None and assistant.reset_deletes and self._erase is not None:
            try:  # reset_deletes: the old conversation goes at the backend too
                await self._erase(record)
            except Exception:
                log.exception("reset: could not delete conversation %s at the backend", record.backend_id)
        if existed:
            return f"Started a new conversation with {name}." if not user else \
                f"Reset {user}'s conversation with {name}."
        return (f"There was no earlier conversation with {name} here; the next message starts one." if not user
                else f"{user} had no conversation with {name} here.")

    async def choose_assistant(self, msg: InboundMessage, name: str) -> str:
        config = self._config
        assistant = config.assistants.get(name.strip())
        if assistant is None:
            return f"There is no assistant called “{name}”. Available: {', '.join(config.assistants)}."
        refusal = check_access(config, assistant, msg)
        if refusal is not None:
            return refusal
        await self._store.set_preference(preference_scope(msg), assistant.name)
        return f"You are now talking to {assistant.name}" + (f" — {assistant.description}" if assistant.description else ".")

    # ---- lifecycle -----------------------------------------------------------------------------------------

    async def recover_interrupted(self, adapter: PlatformAdapter, *, at_start: bool = True) -> int:
        """Replies left in flight by a crash: have the platform mark them as cut off. At start: this process's
        own (under its owner name) and those of processes gone; later (a periodic sweep, when several processes
        share the store): those of processes whose lease ran out. Each reply is taken by one process only."""
        count = 0
        for reply in await self._store.take_orphaned_inflight(adapter.name, own=at_start):
            try:
                await adapter.mark_interrupted(reply.channel, reply.message_id, reply.thread)
            except Exception as exc:  # put back: the next start (or sweep) tries again
                log.warning("could not mark %s message %s as interrupted (%r); will try again",
                            adapter.name, reply.message_id, exc)
                await quietly(self._store.add_inflight(reply.platform, reply.channel, reply.message_id,
                                                       reply.thread))
                continue
            count += 1
        return count

    def stop_accepting(self) -> None:
        """From now on a new message gets the "restarting" notice; answers in flight go on."""
        self._accepting = False

    async def shutdown(self, grace: float | None = None) -> int:
        """Stop taking messages, let answers in flight finish within `grace` seconds, interrupt the rest."""
        self._accepting = False
        grace = self._config.shutdown_grace_seconds if grace is None else grace
        # answers in flight, and other processes' Delete clicks being carried out here (core/chat/confirm_relay.py)
        pending = {t for t in self._turns | self.commands.tasks if t is not asyncio.current_task()}
        if pending:
            _, still_running = await asyncio.wait(pending, timeout=grace)
            for task in still_running:
                task.cancel()
            if still_running:
                await asyncio.wait(still_running, timeout=5)
            return len(still_running)
        return 0

    @property
    def turns_in_flight(self) -> int:
        return len(self._turns)


def _limits_for(config: Config, assistant):
    return effective_limits(config.limits, assistant.limits)
