"""Controls on answers in Slack: Block Kit buttons on the answer's message, and what a click does.

What the reader sees (docs.slack.dev, Block Kit reference: `markdown` block, `actions` block with `button`
elements, `context_actions` block with a `feedback_buttons` element):
- while the answer is written with chat.postMessage + chat.update (DMs, busy workspaces): a **Stop** button under
  the text. An answer streamed with Slack's native stream (chat.startStream) has Slack's own stop control instead
  (bots/slack/stream.py: `stopped_by_user`), since a streaming message takes no blocks of ours until it ends;
- once it has ended: Slack's feedback buttons (👍 / 👎) and a **Retry** button under its last message (a failed
  answer gets Retry only). The native stream gets them with the chat.stopStream call that ends it (no extra
  call); an edited answer with its final chat.update; an answer posted when ready with its last chat.postMessage.

The blocks are drawn by bots/slack/answer_blocks.py. Every button carries the answer's id (`value`); a click
arrives as a `block_actions` payload (Socket Mode `interactive` envelope, or a signed form POST in HTTP mode) with the action's `action_id`, `value`
and the clicking `user`; bolt acks it at once and core.reply.controls decides. Anything that cannot be served
(a stale message, someone who may not press Stop or Retry, a double click) gets one ephemeral line.
"""
from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

from slack_sdk.errors import SlackApiError

from bots.slack.answer_blocks import PREFIX
from bots.slack.target import ReplyPlace
from core.model import Author, InboundMessage
from core.reply.controls import Click, parse_action

log = logging.getLogger("teambridge.slack.controls")
ACTION_IDS = f"^{PREFIX}"   # every control's action_id starts with it (one bolt listener)


class SlackControls:
    """Handles clicks on answers' buttons for one Slack adapter."""

    def __init__(self, client: Any, *, service: Any, author: Callable[..., Awaitable[Author]],
                 answer: Callable[[InboundMessage, ReplyPlace], Awaitable[None]]) -> None:
        self._client = client
        self._service = service
        self._author = author
        self._answer = answer      # answers a message in a place, as if it had just arrived (the adapter's)

    async def on_action(self, body: dict) -> None:
        """A click on Stop, Retry, 👍 or 👎 (already acked)."""
        action = (body.get("actions") or [{}])[0]
        if not isinstance(action, dict):
            action = {}
        kind, _, answer_id = str(action.get("value") or "").partition(":")
        user = body.get("user") if isinstance(body.get("user"), dict) else {}
        container = body.get("container") if isinstance(body.get("container"), dict) else {}
        channel = (body.get("channel") or {}).get("id") if isinstance(body.get("channel"), dict) else None
        channel = channel or container.get("channel_id", "")
        thread_ts = container.get("thread_ts") or None
        clicked = parse_action(kind)
        if clicked is None or not answer_id or not user.get("id") or not channel:
            log.info("Slack answer control dropped: unreadable action %r", action.get("action_id"))
            return
        team = (body.get("team") or {}).get("id", "") if isinstance(body.get("team"), dict) else ""
        clicker = await self._author(user["id"], user.get("name", ""), team=team)
        result = await self._service.controls.click(Click(clicked, answer_id, clicker, "slack"))
        if result.note:
            await self._ephemeral(channel, user["id"], thread_ts, result.note)
        if result.retry is not None:
            msg = result.retry
            place = ReplyPlace(channel=msg.channel, thread_ts=msg.thread, user=msg.author.id,
                               team=msg.workspace or team)
            await self._answer(msg, place)

    async def _ephemeral(self, channel: str, user: str, thread_ts: str | None, text: str) -> None:
        try:
            await self._client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)
        except SlackApiError as e:
            log.warning("could not tell %s about a click on an answer (%s)", user, e.response.get("error"))
