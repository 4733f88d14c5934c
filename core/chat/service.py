"""ChatService: the one place where a message meets routing, access, the store, the backend and the reply.

Platform adapters call into this; nothing here knows a platform.
"""
from __future__ import annotations

import asyncio
import logging
import time
from contextlib import aclosing
from dataclasses import replace
from typing import Awaitable, Callable

from core.admin.observe import (ANSWERED, ERROR, FAILED, INTERRUPTED, REFUSED, STOPPED, NullObserver,
                                Observer, TurnReport)
from core.chat.access import check_access, is_admin
from core.chat.commands import AdminHandler, CommandSurface
from core.reply.citations import footnotes, number_citations
from core.reply.controls import AnswerControls
from core.reply.filelinks import FileLinks
from core.config.schema import Config
from core.files.attachments import PreparedInputs, Refused
from core.files.refusals import model_notes, not_supported, refusal_notice
from core.chat.limits import UsageLimiter
from core.chat.locks import KeyedLocks, TurnLocks
from core.text import clean
from core.model import (Author, BackendError, Citation, Completed, ConversationKey, InboundMessage, OutboundFile,
                        ReplyStopped, TextDelta, ToolUpdate, Usage, UserFacingError)
from core.config.policy import effective_limits
from core.ports import AssistantBackend, HostedInputs, PlatformAdapter, ReplyStream, ReplyTarget, Turn
from core.store.protocol import ConversationRecord, EventClaims, Store
from core.chat.routing import conversation_key, is_addressed, pick_assistant, preference_scope
from core.tools.approval import Approver
from core.reply.stream import EditStream
from core.reply.tail import INTERRUPTED_NOTICE, notice_line

log = logging.getLogger("teambridge.service")

THREAD_MEMORY_SECONDS = 90 * 86400  # a thread quiet this long needs a mention again
CONTAINER_IDLE_SECONDS = 20 * 60    # OpenAI expires a code interpreter container after ~20 idle minutes
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
            await _quietly(target.notice("Sorry, something went wrong on our side — please try again."))
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
            progress = _Progress(received)
            self.observer.turn_started(msg.platform, assistant.name)
            try:
                await self._turn(config, assistant, msg, key, target, backends[assistant.backend], progress,
                                 approver)
            finally:
                if progress.outcome == FAILED:
                    self.observer.backend_error(assistant.backend, progress.error)
                self.observer.turn_finished(progress.report(msg, assistant))

    async def _turn(self, config: Config, assistant, msg: InboundMessage, key: ConversationKey,
                    target: ReplyTarget, backend: AssistantBackend, progress: "_Progress",
                    approver: Approver | None = None) -> None:
        metadata = _metadata(msg, assistant.name)
        # The typing indicator goes out while the conversation is set up, not before it.
        typing: asyncio.Future | None = asyncio.ensure_future(_quietly(target.typing()))
        writes: list[asyncio.Future] = []  # store writes that run while the model answers; awaited at the end
        # From now on, follow-ups in this thread need no mention (and stay with this assistant). Written while
        # the conversation is set up, and stored before the first word shows: a follow-up sent the moment the
        # answer appears may reach another process, which reads this marker to know the thread is the bot's.
        marking: asyncio.Future | None = None
        if msg.thread:
            marking = asyncio.ensure_future(self._store.mark_thread(
                msg.platform, msg.channel, msg.thread, assistant.name, ttl=THREAD_MEMORY_SECONDS))
            writes.append(marking)
        try:
            turn, refused = await self._set_up(assistant, msg, key, metadata, backend, writes)
        except (UserFacingError, BackendError) as err:
            await typing
            await self._settle(writes, key)
            if isinstance(err, BackendError):
                log.warning("backend error before the answer for %s: %s", key.as_string(), err.message)
                progress.outcome, progress.error = FAILED, err.message
            else:
                progress.outcome = REFUSED  # the user's input (an unsupported file, ...): they were told why
            await target.notice(err.message if isinstance(err, UserFacingError) else notice_line(err.message))
            return
        except BaseException:
            typing.cancel()
            await self._settle(writes, key)
            progress.outcome = ERROR
            raise

        if approver is not None:
            turn = replace(turn, approver=approver)
        if refused:  # files left out: said before the answer, which goes on with the text and the other files
            await _quietly(target.notice(notice_line(refusal_notice(refused))))
        for server, why in await self._tools.unavailable(assistant) if self._tools is not None else ():
            await _quietly(target.notice(f"⚠️ The tool server “{server}” is unavailable right now ({why}); "
                                         "answering without its tools."))
        inflight: list[int] = []
        settled = False  # the reply shows its end: finished, or a notice saying why it stopped
        answer_id = ""

        async def on_posted(message_id: str) -> None:
            self.controls.posted(answer_id, message_id)
            # A reply goes on in a new message only once the one before is complete: from now on only this
            # message could be left cut off by a crash, so only it stays recorded.
            record = await self._store.add_inflight(msg.platform, msg.channel, message_id, msg.thread)
            await self._forget_inflight(inflight)
            inflight.append(record)

        stream: ReplyStream = target.open_stream(on_posted) or EditStream(target, on_posted=on_posted)
        answer_id = self.controls.begin(msg, assistant.name, stream.lifetime)
        citations: list[Citation] = []
        links = FileLinks()  # sandbox: links in the text -> the files as posted (held back until decided)
        try:
            async with aclosing(backend.run(turn)) as events:  # leaving early closes the model's stream
                async for event in events:
                    if typing is not None:  # the indicator must not land after the answer began
                        await typing
                        typing = None
                    if marking is not None:  # a failed write is logged by _settle, not raised here
                        await asyncio.wait((marking,))
                        marking = None
                    progress.saw(event)
                    await self._relay(event, stream, target, citations, assistant, msg, links)
            if rest := links.flush():
                await stream.text(rest)
            await stream.close(footnotes(number_citations(citations)))
            settled = True
            progress.outcome = ANSWERED
        except ReplyStopped:
            log.info("a reader stopped the reply for %s; the model's stream was closed", key.as_string())
            progress.outcome = STOPPED
            settled = await _shown(stream.close())  # ends the platform's stream quietly: no notice, nothing more
        except BackendError as err:
            log.warning("backend error for %s: %s", key.as_string(), err.message)
            progress.outcome, progress.error = FAILED, err.message
            if rest := links.flush():  # what was held back (a link waiting for its file) still shows
                await _quietly(stream.text(rest))
            settled = await _shown(stream.fail(err.message))
        except asyncio.CancelledError:
            # shutdown past its grace period: say so in the reply, then let the cancellation through
            progress.outcome = INTERRUPTED
            settled = await _shown(asyncio.shield(stream.fail(INTERRUPTED_NOTICE)))
            self.cut_off["marked" if settled else "unmarked"] += 1
            raise
        except Exception:
            log.exception("error while answering %s", key.as_string())
            settled = await _shown(stream.fail("Something went wrong while answering — please try again."))
        finally:
            if typing is not None:
                typing.cancel()
            await self._settle(writes, key)
            if settled:  # otherwise the record stays: the next start marks the reply as cut off
                await self._forget_inflight(inflight)
            await asyncio.shield(self.controls.end(answer_id, model=progress.model or assistant.model,
                                                   outcome=progress.outcome))

    async def _forget_inflight(self, inflight: list[int]) -> None:
        while inflight:
            await _quietly(self._store.remove_inflight(inflight.pop()))

    async def _set_up(self, assistant, msg: InboundMessage, key: ConversationKey, metadata: dict[str, str],
                      backend: AssistantBackend, writes: list[asyncio.Future]) -> tuple[Turn, tuple[Refused, ...]]:
        """The conversation (resumed or new), the attachments routed, the knowledge to search: the Turn; and the
        attachments left out (UserFacingError when they were all the message had)."""
        conversation_id, saving = await self._conversation_id(
            backend, key, assistant.name, metadata, new=bool(key.thread) and key.thread == msg.message_id)
        if saving is not None:
            writes.append(saving)
        if saving is not None and not msg.attachments:
            inputs = PreparedInputs()  # a new conversation has no earlier uploads to search
        else:
            if saving is not None:  # attachments are recorded on the conversation's row: it must exist
                await saving
            inputs = await self._prepare_inputs(assistant, msg, key, metadata, backend)
        text = clean(msg.text)  # adapters clean what they parse; the console's undecodable bytes arrive here too
        if inputs.refused and not text.strip() and len(inputs.refused) == len(msg.attachments):
            raise UserFacingError(notice_line(refusal_notice(inputs.refused, answering=False)))
        notes = inputs.notes + model_notes(inputs.refused)
        if notes:
            text = "\n".join((text, *notes)) if text else "\n".join(notes)
        knowledge_ids = (tuple(await self._knowledge.vector_store_ids(assistant.name))
                         if self._knowledge and assistant.tool("file_search") else ())
        return Turn(assistant=assistant, conversation_id=conversation_id, text=text, user_id=msg.author.id,
                    images=inputs.images, documents=inputs.documents,
                    hosted=HostedInputs(inputs.container_file_ids, knowledge_ids + inputs.vector_store_ids),
                    metadata=metadata), inputs.refused

    async def _relay(self, event, stream: ReplyStream, target: ReplyTarget, citations: list[Citation],
                     assistant, msg: InboundMessage, links: FileLinks) -> None:
        """One backend event to where it shows: the reply, an upload, the footnotes, the usage records."""
        match event:
            case TextDelta(text=delta):
                if shown := links.text(delta):
                    await stream.text(shown)
            case ToolUpdate():
                await stream.status(event)
            case OutboundFile():
                if shown := links.posted(event.name, await self._upload(target, event)):
                    await stream.text(shown)
            case Citation():
                citations.append(event)
            case Completed(usage=usage, containers=containers, model=billed):
                if containers:  # a container reused by a later turn is the same billed session
                    usage = replace(usage, code_interpreter_sessions=await self._new_sessions(containers))
                await self._store.record_usage(
                    assistant=assistant.name, platform=msg.platform, workspace=msg.workspace,
                    channel=msg.channel, user=msg.author.id, model=billed or assistant.model, usage=usage)
                self._limiter.add_tokens(msg.author.id, msg.channel, usage.input_tokens + usage.output_tokens)

    async def _new_sessions(self, containers: tuple[str, ...]) -> int:
        """How many of these code interpreter containers were not billed yet (they expire after ~20 idle min)."""
        new = 0
        for container in containers:
            new += await self._store.touch_container(container, ttl=CONTAINER_IDLE_SECONDS)
        return new

    @staticmethod
    async def _settle(writes: list[asyncio.Future], key: ConversationKey) -> None:
        """Wait for the store writes made during the turn; a failed one is logged (the answer was given)."""
        for write in writes:
            try:
                await asyncio.shield(write)
            except Exception:
                log.exception("a store write for %s failed: its next message may start a new conversation",
                              key.as_string())
        writes.clear()

    async def _conversation_id(self, backend: AssistantBackend, key: ConversationKey, assistant: str,
                               metadata: dict[str, str], *, new: bool = False) -> tuple[str, asyncio.Task | None]:
        """The backend conversation of this key, and — for a new one — the task saving it.

        The save runs while the model already answers (the turn awaits it before it ends, and the next turn of
        this conversation waits for this one), so the first word does not wait for an SQLite write."""
        record = None if new else await self._store.get_conversation(key, assistant)
        if record is not None:
            return record.backend_id, None  # resumed, not recreated: the history lives at the backend
        conversation_id = await backend.create_conversation(metadata)
        saving = asyncio.ensure_future(self._store.save_conversation(key, assistant, conversation_id, metadata))
        return conversation_id, saving

    async def _prepare_inputs(self, assistant, msg: InboundMessage, key: ConversationKey,
                              metadata: dict[str, str], backend: AssistantBackend) -> PreparedInputs:
        if self._files is None:
            return PreparedInputs(refused=not_supported([a.name or "file" for a in msg.attachments]))
        # also without attachments: documents uploaded earlier stay searchable through the conversation's store
        return await self._files.prepare(assistant, msg.attachments, key, metadata,
                                         capabilities=backend.capabilities)

    async def _upload(self, target: ReplyTarget, file: OutboundFile) -> str | None:
        """Posts the file; where it can be opened, when the platform says."""
        try:
            return await target.upload(file)
        except Exception:
            log.exception("upload of %s failed", file.name)
            await _quietly(target.notice(notice_line(f"Could not post the file {file.name}.")))
            return None

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
                await _quietly(self._store.add_inflight(reply.platform, reply.channel, reply.message_id,
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
        pending = {t for t in self._turns if t is not asyncio.current_task()}
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


class _Progress:
    """What the observer hears about one turn: when the first text came, the tokens, how it ended."""

    def __init__(self, received: float) -> None:
        self.received = received
        self.first_text: float | None = None
        self.usage = Usage()
        self.outcome = ERROR  # until the turn says otherwise
        self.error = ""
        self.model = ""       # as the backend billed it

    def saw(self, event) -> None:
        match event:
            case TextDelta(text=delta) if delta and self.first_text is None:
                self.first_text = time.monotonic()
            case Completed(usage=usage, model=model):
                self.usage = self.usage + usage
                self.model = model or self.model

    def report(self, msg: InboundMessage, assistant) -> TurnReport:
        now = time.monotonic()
        return TurnReport(msg.platform, assistant.name, msg.channel, msg.author.id, self.outcome,
                          now - self.received, None if self.first_text is None else self.first_text - self.received,
                          usage=self.usage, backend=assistant.backend, text=msg.text)


def _limits_for(config: Config, assistant):
    return effective_limits(config.limits, assistant.limits)


def _metadata(msg: InboundMessage, assistant: str) -> dict[str, str]:
    """Conversation metadata, as the tutorial labels threads (OpenAI: ≤16 keys, values ≤512 chars)."""
    data = {"platform": msg.platform, "workspace": msg.workspace, "channel": msg.channel,
            "thread": msg.thread or "", "user_id": msg.author.id, "user_name": msg.author.name,
            "assistant": assistant}
    return {k: clean(v[:512]) for k, v in data.items() if v}


async def _shown(awaitable) -> bool:
    """Whether the reply's last words (its end, or a notice) reached the platform."""
    try:
        await awaitable
    except Exception as exc:  # the platform refused it (channel gone, no access): one line, the record stays
        log.warning("could not show the end of a reply: %r", exc)
        return False
    return True


async def _quietly(awaitable) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("ignored error while reporting another")
