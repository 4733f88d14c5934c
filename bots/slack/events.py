"""Slack event payloads -> what the service needs (pure functions, no I/O)."""
from __future__ import annotations

import re
from functools import lru_cache

from core.config.schema import Config
from core.model import Attachment, Author, InboundMessage
from core.chat.routing import is_addressed
from bots.slack.markdown import unescape
from bots.slack.target import ReplyPlace

# Subtypes that are a person saying something. Everything else (message_changed, message_deleted,
# message_replied, channel_join, bot_message, ...) is dropped: our own streamed edits alone produce a
# message_changed per flush.
ANSWERED_SUBTYPES = frozenset({"", "file_share", "thread_broadcast"})


def should_ignore(event: dict) -> bool:
    if event.get("subtype", "") not in ANSWERED_SUBTYPES:
        return True
    if event.get("bot_id") or event.get("hidden"):
        return True  # other bots (ours is dropped by bolt's IgnoringSelfEvents already)
    return not event.get("user") or not event.get("channel") or not event.get("ts")


_SPACES = re.compile(r"[ \t]{2,}")   # compiled on import, not at the first message (re's cache would)


@lru_cache(maxsize=16)   # one bot user per workspace; asked about twice per message
def mention_pattern(bot_user_id: str) -> re.Pattern[str]:
    """Compiled once per bot user (~1 ms): the adapter asks for it when it learns its id, so its first message
    does not pay for it."""
    return re.compile(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>")


def mentions(text: str, bot_user_id: str) -> bool:
    return bool(bot_user_id) and bool(mention_pattern(bot_user_id).search(text or ""))


def strip_mention(text: str, bot_user_id: str) -> str:
    if bot_user_id:
        text = mention_pattern(bot_user_id).sub("", text or "")
    return unescape(_SPACES.sub(" ", text or "").strip())


def is_direct(event: dict) -> bool:
    return event.get("channel_type") == "im" or str(event.get("channel", "")).startswith("D")


def addressed(event: dict, *, kind: str, bot_user_id: str, config: Config, bot_owns_thread: bool,
              mentioned: bool | None = None) -> bool:
    """Core's own rule for whether the bot is addressed, on the raw event (no I/O). `mentioned`: whether the
    text mentions the bot, when the caller knows already."""
    if mentioned is None:
        mentioned = mentions(event.get("text", ""), bot_user_id)
    probe = InboundMessage(platform="slack", workspace=event.get("team", ""), channel=event.get("channel", ""),
                           author=Author(id=event.get("user", "")), text="", thread=event.get("thread_ts"),
                           is_direct=is_direct(event), mentions_bot=kind == "app_mention" or mentioned)
    return is_addressed(config, probe, bot_owns_thread=bot_owns_thread)


def worth_passing_on(event: dict, *, kind: str, bot_user_id: str, config: Config) -> bool:
    """Cheap early filter, before any Web API call (users.info, files.info): core's own rule for whether
    the bot is addressed, taking a thread reply as one in a thread the bot owns (checked next, see
    `needs_thread_owner`). A mention or a DM is addressed whatever else core's rule looks at (every mention
    passes here: no probe message is built for it)."""
    if kind == "app_mention" or is_direct(event):
        return True
    if mentions(event.get("text", ""), bot_user_id):
        return True
    return addressed(event, kind=kind, bot_user_id=bot_user_id, config=config, bot_owns_thread=True, mentioned=False)


def needs_thread_owner(event: dict, *, kind: str, bot_user_id: str, config: Config) -> bool:
    """True for a message that is for the bot only if the bot owns its thread (a follow-up without a
    mention): whether it does is a store read, done before the author is looked up with users.info."""
    return bool(event.get("thread_ts")) and not addressed(event, kind=kind, bot_user_id=bot_user_id,
                                                          config=config, bot_owns_thread=False)


def reply_place(event: dict, *, team: str, dm_threads: bool = False) -> ReplyPlace:
    """Channel messages are answered in a thread (started on the message itself); DMs in place,
    or in their thread when the user wrote in one. `dm_threads` (slack.agent_view, Slack's Agent messaging
    experience): each DM message is a thread root, answered in its own thread like a channel message."""
    thread = event.get("thread_ts") or (None if is_direct(event) and not dm_threads else event["ts"])
    return ReplyPlace(channel=event["channel"], thread_ts=thread, user=event["user"], team=team)


def to_inbound(event: dict, *, team: str, bot_user_id: str, author: Author,
               attachments: tuple[Attachment, ...] = (), assistant: str | None = None,
               dm_threads: bool = False, place: ReplyPlace | None = None) -> InboundMessage:
    """`place`: the event's reply_place when the caller has it already (the same arguments)."""
    if place is None:
        place = reply_place(event, team=team, dm_threads=dm_threads)
    text = event.get("text", "")
    return InboundMessage(
        platform="slack", workspace=team, channel=event["channel"], author=author,
        text=strip_mention(text, bot_user_id), thread=place.thread_ts, attachments=attachments,
        is_direct=is_direct(event), mentions_bot=mentions(text, bot_user_id),
        # app_mention and message.* deliver one mention twice with different event_ids but the same
        # channel + ts: key on the message so it is answered once, whichever arrives first (or again).
        event_id=f"{event['channel']}:{event['ts']}", message_id=event["ts"], assistant=assistant)
