"""Slack's agent surface (manifest feature `agent_view`, the Agent messaging experience): what the person is looking
at, offered to the model when they ask about "this channel", and the suggested prompts when they open the DM.

- `app_context_changed` (only sent with agent_view) says what the person is viewing, as `context.entities` ordered
  by relevance: `slack#/types/channel_id` (value: the channel id), `slack#/types/message_context` (value:
  {channel_id, message_ts}), canvases and lists; `{}` when nothing. Kept per (team, person), newest people kept.
  The assistant container's `assistant_thread_context_changed` (assistant_view, the older surface) says the same
  per thread; AssistantThreads keeps that one, and `viewing()` takes the thread's first.
- A message in the DM that asks about "this channel" (or conversation, discussion) gets the channel's latest
  messages appended as context — only when the bot may read that channel (conversations.history answers; Slack
  refuses `not_in_channel` otherwise) and the person is looking at it right now, so nothing reaches the model that
  the person could not read themselves.
- `app_home_opened` with `tab == "messages"` replaces assistant_thread_started under agent_view: the suggested
  prompts are set on the DM itself (no thread_ts: in agent mode they sit at the top of the conversation).
Docs relied on are listed in docs/slack.md ("Agent surface").
"""
from __future__ import annotations

import logging
import re
from collections import OrderedDict
from dataclasses import replace
from typing import Any, Awaitable, Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from core.chat.access import check_access
from core.model import Author, InboundMessage
from bots.slack.assistant import PROMPTS_HEADING, suggested_prompts

log = logging.getLogger(__name__)

CHANNEL = "slack#/types/channel_id"
MESSAGE = "slack#/types/message_context"
HISTORY_LIMIT = 15          # conversations.history: ≤15 per call for new non-Marketplace apps anyway
LINE_CHARS = 500            # one message of the channel, shortened, in the context
ASKS_ABOUT_HERE = re.compile(r"\b(this|current|the current)\s+(channel|conversation|discussion)\b", re.IGNORECASE)


def viewed_channel(context: Any) -> str | None:
    """The channel an `app_context_changed` context names first (a channel, or the channel of a message)."""
    entities = context.get("entities") if isinstance(context, dict) else None
    for entity in entities if isinstance(entities, list) else ():
        if not isinstance(entity, dict):
            continue
        value = entity.get("value")
        if entity.get("type") == CHANNEL and isinstance(value, str) and value:
            return value
        if entity.get("type") == MESSAGE and isinstance(value, dict) and isinstance(value.get("channel_id"), str):
            return value["channel_id"]
    return None


class AgentView:
    def __init__(self, service: Any, client: AsyncWebClient, *, author: Callable[..., Awaitable[Author]],
                 thread_context: Callable[[str, str], dict[str, str] | None], limit: int = 5_000) -> None:
        self._service = service
        self._client = client
        self._author = author
        self._thread_context = thread_context   # AssistantThreads.contexts.get (assistant_view threads)
        self._limit = limit
        self._viewing: OrderedDict[tuple[str, str], str] = OrderedDict()   # (team, user) -> channel id

    # ---- events (bolt acked already) ------------------------------------------------------------------

    def context_changed(self, event: dict, team: str) -> None:
        user = event.get("user")
        if not isinstance(user, str) or not user:
            log.info("app_context_changed without a user dropped")
            return
        key = (team, user)
        channel = viewed_channel(event.get("context"))
        if channel is None:
            self._viewing.pop(key, None)   # looking at nothing we can name (a canvas, a list, nothing)
            return
        self._viewing[key] = channel
        self._viewing.move_to_end(key)
        while len(self._viewing) > self._limit:
            self._viewing.popitem(last=False)

    async def home_opened(self, event: dict, team: str) -> None:
        """`app_home_opened`: on the Messages tab (the DM with the app, agent_view), the suggested prompts."""
        if event.get("tab") != "messages":
            return
        channel, user = event.get("channel"), event.get("user")
        if not isinstance(channel, str) or not isinstance(user, str) or not channel or not user:
            return
        config = self._service.config
        author = await self._author(user, "", team=team)
        probe = InboundMessage(platform="slack", workspace=team, channel=channel, author=author, text="",
                               is_direct=True)
        prompts = suggested_prompts(config, lambda name: check_access(config, config.assistants[name], probe) is None)
        if not prompts:
            return
        try:
            await self._client.assistant_threads_setSuggestedPrompts(
                channel_id=channel, title=PROMPTS_HEADING, prompts=[p.as_api() for p in prompts])
        except SlackApiError as e:
            log.warning("assistant.threads.setSuggestedPrompts failed in %s (%s)", channel, e.response.get("error"))

    # ---- the message path -------------------------------------------------------------------------------

    def viewing(self, msg: InboundMessage) -> str | None:
        """The channel the person is looking at while writing this DM, if Slack said."""
        if msg.thread:
            context = self._thread_context(msg.channel, msg.thread)
            if context and context.get("channel_id"):
                return context["channel_id"]
        return self._viewing.get((msg.workspace, msg.author.id))

    async def with_context(self, msg: InboundMessage) -> InboundMessage:
        """`msg` with the viewed channel's latest messages appended, when it is a DM asking about "this channel"
        and the bot may read that channel; else `msg` as it was."""
        if not msg.is_direct or not ASKS_ABOUT_HERE.search(msg.text):
            return msg
        channel = self.viewing(msg)
        if channel is None or channel == msg.channel:
            return msg
        try:
            found = await self._client.conversations_history(channel=channel, limit=HISTORY_LIMIT)
        except SlackApiError as e:   # not_in_channel, channel_not_found, missing_scope: the bot may not read it
            log.info("not offering %s as context (%s)", channel, e.response.get("error"))
            return msg
        lines = []
        for m in reversed(found.get("messages") or []):   # Slack answers newest first
            if not isinstance(m, dict) or m.get("subtype") not in (None, "thread_broadcast", "file_share"):
                continue
            text = " ".join(str(m.get("text") or "").split())
            if not text:
                continue
            who = await self._name(m, msg.workspace)
            lines.append(f"{who}: {text[:LINE_CHARS]}{'…' if len(text) > LINE_CHARS else ''}")
        if not lines:
            return msg
        context = (f"[Context from Slack: the user is looking at the channel <#{channel}> while asking this. "
                   f"Its latest messages, oldest first:\n" + "\n".join(lines) + "\n]")
        return replace(msg, text=f"{msg.text}\n\n{context}")

    async def _name(self, message: dict, team: str) -> str:
        user = message.get("user")
        if not isinstance(user, str) or not user:
            return str(message.get("username") or "a bot")
        try:
            author = await self._author(user, "", team=team, wait=2.0)
        except Exception:
            return user
        return author.name or user
