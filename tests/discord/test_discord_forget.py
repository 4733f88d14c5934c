"""`/forget user:` on Discord: an ephemeral question with Delete / Cancel buttons that only the admin who asked
can press; other clickers, double clicks and stale clicks get a clear private answer and delete nothing.
Real discord.py against the stand-in Discord; the real ChatService and ConversationAdmin over SQLite."""
from __future__ import annotations

import copy

from core.admin.conversations import ConversationAdmin, ForgetCommand
from tests.fakes.discord_world import world

FLAG_EPHEMERAL = 64


class RecordingConversations:
    """Our ConversationStore port, recording deletions (the CLI tests drive the real one against OpenAI's stand-in)."""

    def __init__(self) -> None:
        self.deleted: list[str] = []

    async def items(self, conversation_id: str, *, pending: bool = False):
        return []

    async def delete(self, conversation_id: str, *, pending: bool = False) -> bool:
        self.deleted.append(conversation_id)
        return True


async def settled(d, rec):
    await d.wait_for(lambda: rec.callbacks, timeout=30)
    return rec.callbacks[0]


async def test_forget_asks_with_buttons_that_only_the_asking_admin_can_press(tmp_path):
    async with world(tmp_path) as w:
        d, ch = w.discord, w.channel("general")
        root, other_admin, bob = d.add_user("root", admin=True), d.add_user("ops", admin=True), d.add_user("bob")
        backend = RecordingConversations()
        forget = ForgetCommand(lambda: ConversationAdmin(w.service.config, w.store, {"openai": backend}))
        w.service.commands.add("forget", forget, confirm=forget)
        await d.user_message(ch, d.alice, "basil?", mention_bot=True)
        await d.wait_for(lambda: "You said: basil?" in d.bot_text(ch), timeout=30)
        assert len(await w.store.list_conversations()) == 1

        refused = await d.slash(ch, bob, "forget", {"user": d.alice})
        await d.wait_for(lambda: refused.original_id and d.messages[refused.original_id].content, timeout=30)
        assert d.messages[refused.original_id].content == "Only admins can use “forget”."

        asked = await d.slash(ch, root, "forget", {"user": d.alice})
        question = await d.wait_for(lambda: asked.original_id and (m := d.messages[asked.original_id]).buttons()
                                    and m, timeout=30)
        assert question.ephemeral and question.content.startswith(f"This deletes 1 conversation of {d.alice['id']}")
        assert [b["label"] for b in question.buttons()] == ["Delete", "Cancel"]
        stale = copy.deepcopy(question)    # what a slow client still shows after the first click

        # another admin's click: told privately, the question and its buttons stay
        click = await d.click(question, "Delete", other_admin)
        assert (await settled(d, click))["type"] == 6
        await d.wait_for(lambda: click.followup_ids, timeout=30)
        note = d.messages[click.followup_ids[0]]
        assert note.content == "Only the admin who asked can confirm this." and note.ephemeral
        assert question.buttons() and backend.deleted == []

        click = await d.click(question, "Delete", root)
        await d.wait_for(lambda: not question.buttons(), timeout=30)
        assert question.content.startswith("Deleted 1 conversation.")
        assert backend.deleted and await w.store.list_conversations() == []

        # a double click on the buttons a slow client still shows: nothing is deleted twice
        twice = await d.click(stale, "Delete", root)
        await settled(d, twice)
        await d.wait_for(lambda: question.content == "This was already confirmed.", timeout=30)
        assert len(backend.deleted) == 1
