"""ChatService: the one place where a message meets routing, access, the store, the backend and the reply.

Platform adapters call into this; nothing here knows a platform.
"""
from __future__ import annotations

from core.model import InboundMessage
from core.ports import ReplyTarget


class ChatService:
    """API used by the platform adapters (bots/*). Implementation in progress.

    async handle(msg, target) -> None
        Answer one message: de-duplicate (msg.event_id / message_id), route to an assistant, access check,
        per-conversation lock, attachments routed, backend run, reply streamed into `target`
        (target.open_stream() or core.streaming.EditStream over target.post/edit), files uploaded via
        target.upload, citations as footnotes, usage recorded. Never raises: errors end the reply with a
        one-line notice (or target.notice for refusals).
    async claim(platform, event_key) -> bool
        True the first time a key is seen (persisted in SQLite); adapters use it for event ids / channel+ts.
    async reset(msg) -> str
        Start a new conversation for the place/user of msg; returns the text to show the user.
    async choose_assistant(msg, name) -> str
        Set the user's assistant for this place; returns the text to show (error text for unknown names).
    assistant_names() -> list[str]
    help_text(platform) -> str
    async command(msg, text) -> str      # admin/other text commands ("usage", "reload"), returns reply text
    owns_thread(platform, channel, thread) -> bool  # True when the bot answered in this thread (follow-ups)
    """

    async def handle(self, msg: InboundMessage, target: ReplyTarget) -> None:  # pragma: no cover - stub
        raise NotImplementedError
