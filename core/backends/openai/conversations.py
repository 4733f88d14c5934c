"""An admin's view of conversations kept at OpenAI (Conversations API): their items, and deleting them."""
from __future__ import annotations

import openai

from core.admin.conversations import ShownItem, shown_item


class OpenAIConversations:
    """`ConversationStore` over OpenAI's Conversations API (the history lives at OpenAI)."""

    def __init__(self, client: openai.AsyncOpenAI) -> None:
        self._client = client

    async def items(self, conversation_id: str) -> list[ShownItem]:
        shown: list[ShownItem] = []
        async for item in self._client.conversations.items.list(conversation_id, order="asc", limit=100):
            shown.append(shown_item(item.model_dump()))
        return shown

    async def delete(self, conversation_id: str) -> bool:
        """False when OpenAI has no such conversation (deleted before, or expired)."""
        try:
            await self._client.conversations.delete(conversation_id)
        except openai.NotFoundError:
            return False
        return True
