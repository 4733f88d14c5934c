"""Before an answer: the conversation (resumed or new), the attachments routed, the knowledge to search — the
`Turn` a backend runs. Built per turn by ChatService from what it holds then (a hot reload swaps them)."""
from __future__ import annotations

import asyncio
from typing import Any

from core.files.attachments import PreparedInputs, Refused
from core.files.refusals import model_notes, not_supported, refusal_notice
from core.model import ConversationKey, InboundMessage, UserFacingError
from core.ports import AssistantBackend, HostedInputs, Turn
from core.reply.tail import notice_line
from core.store.protocol import Store
from core.text import clean, has_surrogates
from core.tools.approval import Approver


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
                         if self._knowledge and assistant.tools and assistant.tool("file_search") else ())
        return Turn(assistant=assistant, conversation_id=conversation_id, text=text, user_id=msg.author.id,
                    images=inputs.images, documents=inputs.documents,
                    hosted=HostedInputs(inputs.container_file_ids, knowledge_ids + inputs.vector_store_ids),
                    metadata=metadata, approver=approver), inputs.refused

    async def _conversation_id(self, backend: AssistantBackend, key: ConversationKey, assistant: str,
                               metadata: dict[str, str], *, new: bool = False) -> tuple[str, asyncio.Future | None]:
        """The backend conversation of this key, and — for a new one — the task saving it.

        The save runs while the model already answers (the turn awaits it before it ends, and the next turn of
        this conversation waits for this one), so the first word does not wait for a store write."""
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


def metadata(msg: InboundMessage, assistant: str) -> dict[str, str]:
    """Conversation metadata, as the tutorial labels threads (OpenAI: ≤16 keys, values ≤512 chars)."""
    data = {"platform": msg.platform, "workspace": msg.workspace, "channel": msg.channel,
            "thread": msg.thread or "", "user_id": msg.author.id, "user_name": msg.author.name,
            "assistant": assistant}
    # One look for lone surrogates in all the values at once: the values are almost always clean.
    if has_surrogates("".join(data.values())):
        return {k: clean(v[:512]) for k, v in data.items() if v}
    return {k: v[:512] for k, v in data.items() if v}
