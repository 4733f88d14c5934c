"""Before an answer: the conversation (resumed or new), the attachments routed, the knowledge to search — the
`Turn` a backend runs. Built per turn by ChatService from what it holds then (a hot reload swaps them)."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from core.files.attachments import PreparedInputs, Refused
from core.files.refusals import model_notes, not_supported, refusal_notice
from core.model import BackendError, ConversationKey, InboundMessage, UserFacingError
from core.ports import AssistantBackend, HostedInputs, Turn
from core.reply.tail import notice_line
from core.store.protocol import ConversationRecord, Store
from core.text import clean, has_surrogates
from core.tools.approval import Approver

log = logging.getLogger("teambridge.service")


NO_INPUTS = PreparedInputs()   # (frozen values: one each, shared by the turns that have none)
NO_HOSTED = HostedInputs()


class ConversationSetup:
    """`files`: core.files.attachments.AttachmentRouter (None: no attachments); `knowledge`:
    core.files.knowledge.KnowledgeSync (None: no assistant vector stores)."""

    def __init__(self, store: Store, files: Any = None, knowledge: Any = None) -> None:
        self._store = store
        self._files = files
        self._knowledge = knowledge

    async def turn(self, assistant, msg: InboundMessage, key: ConversationKey, metadata: dict[str, str],
                   backend: AssistantBackend, writes: list[asyncio.Future], *,
                   approver: Approver | None = None) -> tuple[Turn, tuple[Refused, ...]]:
        """The Turn, and the attachments left out (UserFacingError when they were all the message had). A new
        conversation's save is appended to `writes`: it runs while the model answers. `approver`: how the
        platform asks a person to approve a tool call (None: it cannot)."""
        new = bool(key.thread) and key.thread == msg.message_id
        conversation_id, saving = await self._conversation_id(
            backend, key, assistant.name, metadata, new=new, first_turn=not msg.attachments)
        if saving is not None:
            writes.append(saving)
        if (saving is not None or new) and not msg.attachments:
            # A new conversation, or a thread this message starts, has no earlier uploads to search: nothing to
            # read from the store in front of the request.
            inputs = NO_INPUTS
        else:
            if saving is not None:  # attachments are recorded on the conversation's row: it must exist
                await saving
            inputs = await self._prepare_inputs(assistant, msg, key, metadata, backend)
        text = clean(msg.text)  # adapters clean what they parse; the console's undecodable bytes arrive here too
        if inputs.refused and not text.strip() and len(inputs.refused) == len(msg.attachments):
            raise UserFacingError(notice_line(refusal_notice(inputs.refused, answering=False)))
        notes = inputs.notes + model_notes(inputs.refused) if inputs.refused else inputs.notes
        if notes:
            text = "\n".join((text, *notes)) if text else "\n".join(notes)
        knowledge_ids = (tuple(await self._knowledge.vector_store_ids(assistant.name))
                         if self._knowledge and assistant.tools and assistant.tool("file_search") else ())
        return Turn(assistant=assistant, conversation_id=conversation_id, text=text, user_id=msg.author.id,
                    images=inputs.images, documents=inputs.documents,
                    hosted=(HostedInputs(inputs.container_file_ids, knowledge_ids + inputs.vector_store_ids)
                            if inputs.container_file_ids or knowledge_ids or inputs.vector_store_ids else NO_HOSTED),
                    metadata=metadata, approver=approver, cache_key=key.digest(assistant.name)), inputs.refused

    async def _conversation_id(self, backend: AssistantBackend, key: ConversationKey, assistant: str,
                               metadata: dict[str, str], *, new: bool = False,
                               first_turn: bool = False) -> tuple[str, asyncio.Future | None]:
        """The backend conversation of this key, and — for a new one — the task saving it. "" (nothing saved yet):
        a new thread's first turn goes before its conversation exists (`first_turn`: the message allows it — an
        attachment is recorded on the conversation's row — and the backend offers it, with no spare ready); the
        turn saves where its history is when the backend says (ConversationStarted).

        The save runs while the model already answers (the turn awaits it before it ends, and the next turn of
        this conversation waits for this one), so the first word does not wait for a store write."""
        record = None if new else await self._store.get_conversation(key, assistant)
        if record is not None and not record.pending:
            return record.backend_id, None  # resumed, not recreated: the history lives at the backend
        if record is not None:
            return await self._made_late(backend, key, record)
        if first_turn and backend.capabilities.deferred_conversations:
            conversation_id = await backend.ready_conversation(metadata)
            if conversation_id is None:
                return "", None
        else:
            conversation_id = await backend.create_conversation(metadata)
        saving = asyncio.get_running_loop().create_task(
            self._store.save_conversation(key, assistant, conversation_id, metadata))
        return conversation_id, saving

    async def _made_late(self, backend: AssistantBackend, key: ConversationKey,
                         record: ConversationRecord) -> tuple[str, asyncio.Future | None]:
        """A thread whose first turn's conversation was not made after its answer (a crash, a shutdown, OpenAI
        away for a moment): made now from the stored first answer, before this turn reads it as history."""
        try:
            conversation_id = await backend.make_conversation(record.backend_id, record.metadata)
        except BackendError as err:
            log.warning("could not make the conversation of %s from its stored first answer %s (%s); the thread "
                        "keeps it and its next message tries again", key.as_string(), record.backend_id,
                        err.message)
            raise
        log.info("made the conversation %s of %s from its stored first answer %s", conversation_id,
                 key.as_string(), record.backend_id)
        return conversation_id, asyncio.ensure_future(
            made(self._store, key, record.assistant, record.backend_id, conversation_id, record.metadata))

    async def _prepare_inputs(self, assistant, msg: InboundMessage, key: ConversationKey,
                              metadata: dict[str, str], backend: AssistantBackend) -> PreparedInputs:
        if self._files is None:
            return PreparedInputs(refused=not_supported([a.name or "file" for a in msg.attachments]))
        # also without attachments: documents uploaded earlier stay searchable through the conversation's store
        return await self._files.prepare(assistant, msg.attachments, key, metadata,
                                         capabilities=backend.capabilities)


async def made(store: Store, key: ConversationKey, assistant: str, pending: str, conversation_id: str,
               metadata: dict[str, str], *, unless_erased: bool = True) -> bool:
    """A pending conversation made: the thread's row names it, and the answers recorded under the stored
    first answer's id are its answers (erasing it erases them). False: the thread was erased (`/forget`, an
    admin's delete, retention) while the conversation was being made — it is not brought back (`unless_erased`:
    the pending row is known to have been written)."""
    if unless_erased:
        record = await store.get_conversation(key, assistant)
        if record is None or not record.pending or record.backend_id != pending:
            return False
    await store.save_conversation(key, assistant, conversation_id, metadata)
    await store.relink_answers(pending, conversation_id)
    return True


def metadata(msg: InboundMessage, assistant: str) -> dict[str, str]:
    """Conversation metadata, as the tutorial labels threads (OpenAI: ≤16 keys, values ≤512 chars)."""
    data = {"platform": msg.platform, "workspace": msg.workspace, "channel": msg.channel,
            "thread": msg.thread or "", "user_id": msg.author.id, "user_name": msg.author.name,
            "assistant": assistant}
    # One look for lone surrogates in all the values at once: the values are almost always clean.
    if has_surrogates("".join(data.values())):
        return {k: clean(v[:512]) for k, v in data.items() if v}
    return {k: v[:512] for k, v in data.items() if v}
