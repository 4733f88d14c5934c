"""`teambridge conversations show` for a backend that keeps the history here: its Session's items, in order."""
from __future__ import annotations

from core.admin.conversations import LocalConversations, ShownItem
from core.model import AssistantItem, FunctionCallItem, FunctionOutputItem, SummaryItem, UserItem


class Session:
    """Our Session port with fixed items (the real LocalSession is covered by the backend contract suite)."""

    def __init__(self) -> None:
        self.cleared = False

    async def get_items(self, limit=None):
        return [SummaryItem("They talked about soup.", 3), UserItem("And this?", ("menu.png",)),
                FunctionCallItem("c1", "query_weather", '{"city": "Paris"}'), FunctionOutputItem("c1", "20, Windy"),
                AssistantItem("Windy, 20 degrees.")]

    async def clear(self) -> None:
        self.cleared = True


async def test_local_history_is_shown_oldest_first_and_deleting_clears_it():
    session = Session()
    local = LocalConversations(lambda conversation_id: session)
    assert await local.items("conv_local_1") == [
        ShownItem("summary", "(3 earlier turns condensed) They talked about soup."),
        ShownItem("user", "And this? [image menu.png]"),
        ShownItem("tool", 'called query_weather({"city": "Paris"})'),
        ShownItem("tool", "result: 20, Windy"),
        ShownItem("assistant", "Windy, 20 degrees."),
    ]
    assert await local.delete("conv_local_1") is True and session.cleared
