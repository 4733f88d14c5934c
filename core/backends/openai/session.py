"""Conversations at OpenAI: the server keeps each conversation's items (a Session with server_side=True).

A Responses request that names the conversation gets its items prepended, and the request's input and
output are appended to it on completion: a turn sends only what is new.
"""
from __future__ import annotations

from typing import Any, Sequence

import openai
from openai import AsyncOpenAI

from core.backends import errors
from core.backends.direct import DirectJSON
from core.backends.openai.spares import SpareConversations, SpareLedger
from core.backends.responses.items import from_conversation_item, to_input
from core.model import HistoryItem

WHO = "OpenAI"
_MAX_ITEMS_PER_CALL = 20     # POST /v1/conversations/{id}/items takes at most 20


def clean_metadata(metadata: dict[str, Any]) -> dict[str, str]:
    """OpenAI metadata: at most 16 pairs, keys up to 64 and values up to 512 characters."""
    if len(metadata) <= 16:   # (every turn's: one comprehension, not a check per pair)
        return {str(k)[:64]: str(v)[:512] for k, v in metadata.items()}
    out: dict[str, str] = {}
    for k, v in metadata.items():
        if len(out) == 16:
            break
        out[str(k)[:64]] = str(v)[:512]
    return out


class ConversationSession:
    server_side = True

    def __init__(self, client: AsyncOpenAI, conversation_id: str) -> None:
        self._client = client
        self.session_id = conversation_id

    async def get_items(self, limit: int | None = None) -> list[HistoryItem]:
        try:
            if limit is None:
                raw = [i async for i in self._client.conversations.items.list(self.session_id, order="asc", limit=100)]
            else:
                page = await self._client.conversations.items.list(self.session_id, order="desc", limit=limit)
                raw = list(reversed(page.data))
        except openai.APIError as exc:
            raise errors.as_backend_error(exc, WHO) from exc
        return [h for h in map(from_conversation_item, raw) if h is not None]

    async def add_items(self, items: Sequence[HistoryItem]) -> None:
        wire = to_input(items)
        try:
            for start in range(0, len(wire), _MAX_ITEMS_PER_CALL):
                await self._client.conversations.items.create(self.session_id,
                                                              items=wire[start:start + _MAX_ITEMS_PER_CALL])
        except openai.APIError as exc:
            raise errors.as_backend_error(exc, WHO) from exc

    async def clear(self) -> None:
        try:
            await self._client.conversations.delete(self.session_id)
        except openai.NotFoundError:
            pass                     # already gone: the state we wanted
        except openai.APIError as exc:
            raise errors.as_backend_error(exc, WHO) from exc


class ConversationSessions:
    """Creates conversations (from a pool of spares when there is one) and opens sessions on them."""

    def __init__(self, client: AsyncOpenAI, spare_conversations: int = 0, ledger: SpareLedger | None = None, *,
                 direct: DirectJSON | None = None) -> None:
        self._client = client
        self._spares = SpareConversations(client, spare_conversations, ledger=ledger, direct=direct)

    async def create(self, metadata: dict[str, str]) -> str:
        try:
            return await self._spares.take(clean_metadata(metadata))
        except openai.APIError as exc:
            raise errors.as_backend_error(exc, WHO) from exc

    async def take_ready(self, metadata: dict[str, str]) -> str | None:
        """A spare conversation if one is ready now (no request to OpenAI waited for), else None."""
        return await self._spares.take_ready(clean_metadata(metadata))

    def open(self, conversation_id: str) -> ConversationSession:
        return ConversationSession(self._client, conversation_id)

    def prepare(self) -> None:
        """At the start of a long-running process: spare conversations made now, before the first new thread."""
        self._spares.prepare()

    async def ready(self, conversation_id: str) -> None:
        """Wait until a spare taken for this conversation carries its metadata (no-op otherwise)."""
        await self._spares.labelled(conversation_id)

    async def aclose(self) -> None:
        await self._spares.aclose()
