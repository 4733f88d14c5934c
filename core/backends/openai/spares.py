"""Spare conversations: made ahead of time, so a new chat thread does not wait for POST /v1/conversations.

Every @mention that starts a Slack thread or a Discord conversation needs a new OpenAI Conversation before the
model can start; that is one more round trip in front of the first word. A few empty conversations are kept
ready instead: one is taken at once and labelled with its real metadata (conversations.update) while the first
answer streams. The pool fills lazily — only after the first conversation was needed — and refills in the
background; when it is empty, a conversation is created the ordinary way.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque

import openai
from openai import AsyncOpenAI

log = logging.getLogger(__name__)

SPARE_LABEL = {"teambridge": "spare"}


class SpareConversations:
    def __init__(self, client: AsyncOpenAI, size: int) -> None:
        self._client = client
        self._size = size
        self._spares: deque[str] = deque()
        self._filling: asyncio.Task | None = None
        self._labels: dict[str, asyncio.Task] = {}

    async def take(self, metadata: dict[str, str]) -> str:
        """A conversation for `metadata`: a spare (labelled in the background) or a new one. Raises openai.APIError."""
        conversation_id = self._spares.popleft() if self._spares else None
        self._refill()
        if conversation_id is None:
            conv = await self._client.conversations.create(metadata=metadata)
            return conv.id
        self._labels[conversation_id] = asyncio.ensure_future(self._label(conversation_id, metadata))
        return conversation_id

    async def labelled(self, conversation_id: str) -> None:
        """Wait until a spare taken for this conversation carries its metadata (no-op otherwise)."""
        task = self._labels.pop(conversation_id, None)
        if task is not None:
            await task

    async def aclose(self) -> None:
        if self._filling is not None:
            self._filling.cancel()
        if self._labels:
            await asyncio.wait(list(self._labels.values()), timeout=5)

    @property
    def ready(self) -> int:
        return len(self._spares)

    def _refill(self) -> None:
        if self._size and (self._filling is None or self._filling.done()):
            self._filling = asyncio.ensure_future(self._fill())

    async def _fill(self) -> None:
        while len(self._spares) < self._size:
            try:
                conv = await self._client.conversations.create(metadata=SPARE_LABEL)
            except openai.APIError as exc:  # the ordinary path still works; try again on the next demand
                log.warning("could not prepare a spare conversation: %s", exc)
                return
            self._spares.append(conv.id)

    async def _label(self, conversation_id: str, metadata: dict[str, str]) -> None:
        try:
            await self._client.conversations.update(conversation_id, metadata=metadata)
        except openai.APIError as exc:  # the answer does not depend on it; the label is for admins
            log.warning("could not label conversation %s with its metadata: %s", conversation_id, exc)
