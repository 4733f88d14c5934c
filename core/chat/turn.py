"""One answer, from the typing indicator to the reply's last words.

ChatService (core/chat/service.py) decides whether and who answers and holds the conversation's turn lock;
this runs the turn under it: the thread marked, the conversation set up (core/chat/setup.py), the model's events
relayed to the reply stream, and the end — finished, stopped by a reader, failed, or cut off by a shutdown —
shown. The records kept along the way are core/chat/records.py's.
"""
from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing

from core.admin.observe import ANSWERED, ERROR, FAILED, INTERRUPTED, REFUSED, STOPPED
from core.chat.limits import UsageLimiter
from core.chat.records import AnswerRecords, TurnProgress, quietly
from core.chat.setup import ConversationSetup, made, metadata
from core.files.refusals import refusal_notice
from core.model import (BackendError, Citation, Completed, ConversationKey, ConversationStarted, InboundMessage,
                        OutboundFile, ReplyStopped, TextDelta, ToolUpdate, UserFacingError)
from core.ports import AssistantBackend, ReplyStream, ReplyTarget
from core.reply.citations import footnotes, number_citations
from core.reply.controls import AnswerControls
from core.reply.filelinks import FileLinks
from core.reply.stream import EditStream
from core.reply.tail import INTERRUPTED_NOTICE, notice_line
from core.store.protocol import Store
from core.tools.approval import Approver

log = logging.getLogger("teambridge.service")

THREAD_MEMORY_SECONDS = 90 * 86400  # a thread quiet this long needs a mention again


class AnswerTurn:
    """Built per turn from what the service holds when the turn starts (a hot reload swaps it for later turns).
    `tools`: core.tools.registry.ToolRegistry (None: no tool servers to report as down); `cut_off`: the
    service's count of replies interrupted by a shutdown, by whether that shows."""

    def __init__(self, *, store: Store, setup: ConversationSetup, limiter: UsageLimiter,
                 controls: AnswerControls, tools=None, cut_off: dict[str, int]) -> None:
        self._store = store
        self._setup = setup
        self._limiter = limiter
        self._controls = controls
        self._tools = tools
        self._cut_off = cut_off

    async def run(self, assistant, msg: InboundMessage, key: ConversationKey, target: ReplyTarget,
                  backend: AssistantBackend, progress: TurnProgress, approver: Approver | None = None) -> None:
        records = AnswerRecords(self._store, self._limiter, msg, assistant, key)
        writes = records.writes
        # The typing indicator: targets set it up and return at once (a timer: it goes out only when the first
        # words are slow to come), so it is awaited here rather than given a task of its own per answer.
        try:
            await target.typing()
        except Exception:
            log.exception("the typing indicator failed for %s", key.as_string())
        # From now on, follow-ups in this thread need no mention (and stay with this assistant). Written while
        # the conversation is set up, and stored before the first word shows: a follow-up sent the moment the
        # answer appears may reach another process, which reads this marker to know the thread is the bot's.
        marking: asyncio.Future | None = None
        if msg.thread:
            marking = asyncio.get_running_loop().create_task(self._store.mark_thread(
                msg.platform, msg.channel, msg.thread, assistant.name, ttl=THREAD_MEMORY_SECONDS))
            writes.append(marking)
        labels = metadata(msg, assistant.name)
        try:
            turn, refused = await self._setup.turn(assistant, msg, key, labels, backend, writes,
                                                   approver=approver)
        except (UserFacingError, BackendError) as err:
            await records.settle()
            if isinstance(err, BackendError):
                log.warning("backend error before the answer for %s: %s", key.as_string(), err.message)
                progress.outcome, progress.error = FAILED, err.message
            else:
                progress.outcome = REFUSED  # the user's input (an unsupported file, ...): they were told why
            await target.notice(err.message if isinstance(err, UserFacingError) else notice_line(err.message))
            return
        except BaseException:
            await records.settle()
            progress.outcome = ERROR
            raise

        if refused:  # files left out: said before the answer, which goes on with the text and the other files
            await quietly(target.notice(notice_line(refusal_notice(refused))))
        for server, why in (await self._tools.unavailable(assistant)
                            if self._tools is not None and assistant.tools else ()):
            await quietly(target.notice(f"⚠️ The tool server “{server}” is unavailable right now ({why}); "
                                        "answering without its tools."))
        settled = False  # the reply shows its end: finished, or a notice saying why it stopped
        answer_id = ""

        async def on_posted(message_id: str) -> None:
            self._controls.posted(answer_id, message_id)
            await records.posted(message_id)

        stream: ReplyStream = target.open_stream(on_posted) or EditStream(target, on_posted=on_posted)
        answer_id = self._controls.begin(msg, assistant.name, stream.lifetime, conversation_id=turn.conversation_id)
        citations: list[Citation] = []
        links = FileLinks()  # sandbox: links in the text -> the files as posted (held back until decided)
        try:
            async with aclosing(backend.run(turn)) as events:  # leaving early closes the model's stream
                async for event in events:
                    if marking is not None:  # a failed write is logged by settle(), not raised here
                        await asyncio.wait((marking,))
                        marking = None
                    if type(event) is TextDelta and progress.first_text is not None:
                        # most events: the answer's text going on (the relay's first case, without its dispatch)
                        if shown := links.text(event.text):
                            await stream.text(shown)
                        continue
                    progress.saw(event)
                    if isinstance(event, ConversationStarted):   # where the history is: not for the reply
                        records.conversation_started(event.conversation_id, event.pending, labels)
                        self._controls.link(answer_id, event.conversation_id)
                        continue
                    await self._relay(event, stream, target, citations, links, records)
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
                await quietly(stream.text(rest))
            settled = await _shown(stream.fail(err.message))
        except asyncio.CancelledError:
            # shutdown past its grace period: say so in the reply, then let the cancellation through
            progress.outcome = INTERRUPTED
            settled = await _shown(asyncio.shield(stream.fail(INTERRUPTED_NOTICE)))
            self._cut_off["marked" if settled else "unmarked"] += 1
            raise
        except Exception:
            log.exception("error while answering %s", key.as_string())
            settled = await _shown(stream.fail("Something went wrong while answering — please try again."))
        finally:
            await records.settle()
            if settled:  # otherwise the record stays: the next start marks the reply as cut off
                await records.forget_inflight()
            await asyncio.shield(self._controls.end(answer_id, model=progress.model or assistant.model,
                                                    outcome=progress.outcome))
        if records.pending:   # after the answer (the reader has it), before the turn lock is released
            await self._make_conversation(backend, key, assistant.name, records.pending, labels,
                                          unless_erased=records.pending_saved())

    async def _make_conversation(self, backend: AssistantBackend, key: ConversationKey, assistant: str,
                                 pending: str, labels: dict[str, str], *, unless_erased: bool) -> None:
        """The conversation of a first turn that went before it existed, made from the stored answer; until it
        is, the thread's row names that answer, and its next message makes the conversation (core/chat/setup.py)."""
        try:
            conversation_id = await backend.make_conversation(pending, labels)
        except BackendError as err:
            log.warning("could not make the conversation of %s from its first answer %s (%s); the thread keeps the "
                        "stored answer and its next message tries again", key.as_string(), pending, err.message)
            return
        if await asyncio.shield(made(self._store, key, assistant, pending, conversation_id, labels,
                                     unless_erased=unless_erased)):
            return
        # Erased while its first answer was being written (the erasing does not wait for the turn): what was
        # just made from it is deleted too, not left at OpenAI holding a person's words nobody can name.
        log.info("%s was erased during its first answer: the conversation made from it is deleted again",
                 key.as_string())
        try:
            await backend.session(conversation_id).clear()
        except BackendError as err:
            log.warning("could not delete the conversation %s of the erased %s (%s)", conversation_id,
                        key.as_string(), err.message)

    async def _relay(self, event, stream: ReplyStream, target: ReplyTarget, citations: list[Citation],
                     links: FileLinks, records: AnswerRecords) -> None:
        """One backend event to where it shows: the reply, an upload, the footnotes, the usage records."""
        match event:
            case TextDelta(text=delta):
                if shown := links.text(delta):
                    await stream.text(shown)
            case ToolUpdate():
                await stream.status(event)
            case OutboundFile():
                if shown := links.posted(event.name, await _upload(target, event)):
                    await stream.text(shown)
            case Citation():
                citations.append(event)
            case Completed():
                await records.completed(event)


async def _upload(target: ReplyTarget, file: OutboundFile) -> str | None:
    """Posts the file; where it can be opened, when the platform says."""
    try:
        return await target.upload(file)
    except Exception:
        log.exception("upload of %s failed", file.name)
        await quietly(target.notice(notice_line(f"Could not post the file {file.name}.")))
        return None


async def _shown(awaitable) -> bool:
    """Whether the reply's last words (its end, or a notice) reached the platform."""
    try:
        await awaitable
    except Exception as exc:  # the platform refused it (channel gone, no access): one line, the record stays
        log.warning("could not show the end of a reply: %r", exc)
        return False
    return True
