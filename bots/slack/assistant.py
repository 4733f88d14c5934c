"""Slack's AI-app surface: the assistant container and its threads (manifest feature `assistant_view`).

When a person opens the container, Slack creates a DM thread and sends `assistant_thread_started`; what
they type then arrives as `message.im` events in that thread, and is answered like any DM thread (a
native stream, the "is thinking…" status from SlackReplyTarget.typing). This module adds what only that
surface has:
- suggested prompts, one per assistant the person may use (Slack shows at most four), set when the
  thread opens; picking one sends its message, which is answered by that assistant;
- the thread's title (the list of chats in the container), set from the first message;
- the channel the person is looking at (`assistant_thread_context_changed`), kept in memory.

bolt's AsyncAssistant middleware routes these events. Its default thread-context store is not used: it
reads the thread with conversations.replies (1 request/min for non-Marketplace apps) and rewrites our
first reply with legacy `text` + blocks to attach metadata, which would clobber the markdown answer.
"""
from __future__ import annotations

import logging
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, Optional

from slack_bolt.context.assistant.thread_context import AssistantThreadContext
from slack_bolt.context.assistant.thread_context_store.async_store import AsyncAssistantThreadContextStore
from slack_bolt.middleware.assistant.async_assistant import AsyncAssistant
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from core.chat.access import check_access
from core.config.schema import Config
from core.model import Author, InboundMessage
from bots.slack.events import strip_mention

log = logging.getLogger(__name__)

MAX_PROMPTS = 4            # Slack shows up to four suggested prompts
PROMPT_TITLE_CHARS = 60    # the prompt is a button: keep its label short
THREAD_TITLE_CHARS = 80
PROMPTS_HEADING = "Pick an assistant, or just ask"


@dataclass(frozen=True, slots=True)
class Prompt:
    assistant: str
    title: str          # the button
    message: str        # what Slack sends as the person's message when they pick it

    def as_api(self) -> dict[str, str]:
        return {"title": self.title, "message": self.message}


def shorten(text: str, limit: int) -> str:
    """One line of at most `limit` characters, cut at a word with an ellipsis (labels, not answers)."""
    line = " ".join(text.split())
    if len(line) <= limit:
        return line
    cut = line[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space >= limit // 2 else cut).rstrip(" ,;:—-") + "…"


def prompt_message(name: str) -> str:
    return f"Hi {name}, what can you help me with?"


def suggested_prompts(config: Config, may_use: Callable[[str], bool]) -> list[Prompt]:
    """One prompt per assistant the person may use: the one that answers DMs first, then config order."""
    first = config.slack.dm_assistant or config.slack.default_assistant or config.default_assistant
    names = sorted(config.assistants, key=lambda n: n != first)
    prompts = []
    for name in names:
        if not may_use(name):
            continue
        description = config.assistants[name].description
        title = shorten(f"{name}: {description}" if description else name, PROMPT_TITLE_CHARS)
        prompts.append(Prompt(assistant=name, title=title, message=prompt_message(name)))
    return prompts[:MAX_PROMPTS]


def chosen_assistant(config: Config, text: str) -> str | None:
    """The assistant whose suggested prompt this message is (picking a prompt sends its message verbatim)."""
    text = " ".join((text or "").split())
    return next((name for name in config.assistants if prompt_message(name) == text), None)


def thread_title(text: str, bot_user_id: str) -> str:
    return shorten(re.sub(r"<@[A-Z0-9]+(?:\|[^>]*)?>", "", strip_mention(text, bot_user_id)), THREAD_TITLE_CHARS)


class MemoryThreadContexts(AsyncAssistantThreadContextStore):
    """Where each assistant thread's person is looking (channel, team), newest threads kept."""

    def __init__(self, limit: int = 2_000) -> None:
        self._limit = limit
        self._contexts: OrderedDict[tuple[str, str], dict[str, str]] = OrderedDict()

    async def save(self, *, channel_id: str, thread_ts: str, context: Dict[str, str]) -> None:
        key = (channel_id, thread_ts)
        self._contexts[key] = dict(context)
        self._contexts.move_to_end(key)
        while len(self._contexts) > self._limit:
            self._contexts.popitem(last=False)

    async def find(self, *, channel_id: str, thread_ts: str) -> Optional[AssistantThreadContext]:
        context = self.get(channel_id, thread_ts)
        return AssistantThreadContext(context) if context else None

    def get(self, channel_id: str, thread_ts: str) -> dict[str, str] | None:
        return self._contexts.get((channel_id, thread_ts))


Accept = Callable[..., None]          # SlackAdapter._accept(event, body, context, *, kind, assistant)
Spawn = Callable[[Any, str], None]    # SlackAdapter._spawn(coro, name): a task the adapter tracks


class AssistantThreads:
    def __init__(self, service: Any, client: AsyncWebClient, *, author: Callable[..., Awaitable[Author]],
                 accept: Accept, spawn: Spawn, bot_user_id: Callable[[], str]) -> None:
        self._service = service
        self._client = client
        self._author = author
        self._accept = accept
        self._spawn = spawn
        self._bot_user_id = bot_user_id
        self.contexts = MemoryThreadContexts()
        # Threads opened since start-up whose first message has not come yet. A thread opened before a
        # restart keeps the title Slack gave it (the date); nothing else depends on this.
        self._untitled: OrderedDict[tuple[str, str], None] = OrderedDict()

    def middleware(self) -> AsyncAssistant:
        assistant = AsyncAssistant(app_name="teambridge", thread_context_store=self.contexts, logger=log)
        assistant.thread_started(self._on_thread_started)
        # Every message.im in a thread lands here (bolt cannot tell an assistant thread from a DM thread);
        # it is answered exactly like a DM, plus the title and the prompt choice.
        assistant.user_message(self._on_user_message)
        # assistant_thread_context_changed: bolt's default listener saves the context into self.contexts.
        return assistant

    # ---- listeners (bolt acked already) -------------------------------------------------------------

    async def _on_thread_started(self, event: dict, body: dict) -> None:
        thread = event["assistant_thread"]
        channel, thread_ts, user = thread["channel_id"], thread["thread_ts"], thread["user_id"]
        team = body.get("team_id") or (thread.get("context") or {}).get("team_id") or ""
        self._untitled[(channel, thread_ts)] = None
        while len(self._untitled) > 2_000:
            self._untitled.popitem(last=False)
        self._spawn(self._started(channel, thread_ts, user, team, thread.get("context") or {}),
                    f"slack-assistant-{channel}-{thread_ts}")

    async def _on_user_message(self, event: dict, body: dict, context: Any) -> None:
        key = (event.get("channel", ""), event.get("thread_ts", ""))
        title = thread_title(event.get("text", ""), self._bot_user_id())
        if key in self._untitled and title:
            del self._untitled[key]
            self._spawn(self._set_title(*key, title), f"slack-title-{key[0]}-{key[1]}")
        self._accept(event, body, context, kind="message",
                     assistant=chosen_assistant(self._service.config, event.get("text", "")))

    # ---- work ---------------------------------------------------------------------------------------

    async def _started(self, channel: str, thread_ts: str, user: str, team: str, context: dict) -> None:
        if context:
            await self.contexts.save(channel_id=channel, thread_ts=thread_ts, context=context)
        config = self._service.config
        author = await self._author(user, "", team=team)
        probe = InboundMessage(platform="slack", workspace=team, channel=channel, author=author, text="",
                               thread=thread_ts, is_direct=True)
        prompts = suggested_prompts(
            config, lambda name: check_access(config, config.assistants[name], probe) is None)
        if not prompts:
            return  # this person may use none of them here: the first message gets the refusal
        try:
            await self._client.assistant_threads_setSuggestedPrompts(
                channel_id=channel, thread_ts=thread_ts, title=PROMPTS_HEADING,
                prompts=[p.as_api() for p in prompts])
        except SlackApiError as e:
            # The thread works without them; nothing for the person to act on.
            log.warning("assistant.threads.setSuggestedPrompts failed in %s (%s)", channel, e.response.get("error"))

    async def _set_title(self, channel: str, thread_ts: str, title: str) -> None:
        try:
            await self._client.assistant_threads_setTitle(channel_id=channel, thread_ts=thread_ts, title=title)
        except SlackApiError as e:
            log.warning("assistant.threads.setTitle failed in %s (%s)", channel, e.response.get("error"))
