"""An admin's view of conversations kept at OpenAI (Conversations API): their items, and deleting them. A thread
whose conversation is not made yet (its first answer is a stored response: core/backends/openai/first_turn.py) is
read from, and deleted as, that response."""
from __future__ import annotations

import openai

from core.admin.conversations import ShownItem, shown_item
from core.backends.openai.first_turn import FirstTurns


class OpenAIConversations:
    """`ConversationStore` over OpenAI's Conversations API (the history lives at OpenAI)."""

    def __init__(self, client: openai.AsyncOpenAI) -> None:
        self._client = client
        self._first = FirstTurns(client, None)

    async def items(self, conversation_id: str, *, pending: bool = False) -> list[ShownItem]:
        if pending:
            return [shown_item(item) for item in await self._first.items(conversation_id)]
        shown: list[ShownItem] = []
        async for item in self._client.conversations.items.list(conversation_id, order="asc", limit=100):
            shown.append(shown_item(item.model_dump()))
        return shown

    async def delete(self, conversation_id: str, *, pending: bool = False) -> bool:
        """False when OpenAI has no such conversation (deleted before, or expired)."""
        if pending:
            return await self._first.delete(conversation_id)
        try:
            await self._client.conversations.delete(conversation_id)
        except openai.NotFoundError:
            return False
        return True
