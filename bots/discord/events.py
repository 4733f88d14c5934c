"""Gateway messages -> core InboundMessage.

Conversation threading on Discord:
- a Discord thread is the conversation: channel = parent channel, thread = thread id;
- in a plain channel, an @mention starts a conversation rooted at the user's message (thread = its id);
  replying to any of the bot's messages continues the conversation of that reply chain (llmcord-style walk
  along `message.reference`);
- DMs are one conversation per user (thread None), and so are channels where the bot answers everything.
"""
from __future__ import annotations

import logging
import re
from collections import OrderedDict
from typing import Protocol

import discord

from bots.discord.files import CdnFetcher, max_bytes, to_attachment
from core.config.schema import Config
from core.model import Author, InboundMessage
from core.text import clean
from core.chat.routing import route_for

log = logging.getLogger("teambridge.discord")

_ANSWERABLE = (discord.MessageType.default, discord.MessageType.reply)
MAX_CHAIN = 40
CHAIN_MEMORY_SECONDS = 90 * 86400  # replies to bot messages older than this start a new conversation


class RootStore(Protocol):
    """The part of core's Store that ReplyChains persists through (core.store.protocol.Store has it)."""

    async def reply_root(self, platform: str, message_id: str) -> str | None: ...
    async def save_reply_root(self, platform: str, message_id: str, root: str, *, ttl: float) -> None: ...


class ReplyChains:
    """Finds the conversation root of a reply chain. Remembers what it resolved (bounded, in memory) and,
    given a store, which conversation each of the bot's own messages belongs to — across restarts.

    Why persist: most bot messages could be re-resolved after a restart by walking `message.reference`
    with one REST fetch per hop, but an /ask answer's followup parts are interaction webhook messages
    without any reference, so a reply to one of them would start a new conversation. The mapping lives
    in the store (reply roots), so every process on a shared database finds it too.
    """

    def __init__(self, size: int = 5000, *, store: RootStore | None = None) -> None:
        self._roots: OrderedDict[int, int] = OrderedDict()
        self._size = size
        self._store = store

    def remember(self, message_id: int, root: int) -> None:
        self._roots[message_id] = root
        self._roots.move_to_end(message_id)
        while len(self._roots) > self._size:
            self._roots.popitem(last=False)

    async def remember_bot_message(self, message_id: int, root: int) -> None:
        """One of the bot's messages belongs to the conversation rooted at `root`: remember it for good."""
        self.remember(message_id, root)
        if self._store is None:
            return
        try:
            await self._store.save_reply_root("discord", str(message_id), str(root), ttl=CHAIN_MEMORY_SECONDS)
        except Exception:  # the reply is out already; only a later reply to this message is affected
            log.exception("could not store the conversation of Discord message %s", message_id)

    async def _known(self, message_id: int) -> int | None:
        root = self._roots.get(message_id)
        if root is not None or self._store is None:
            return root
        try:
            stored = await self._store.reply_root("discord", str(message_id))
        except Exception:  # fall back to walking the chain over REST
            log.exception("could not look up the conversation of Discord message %s", message_id)
            return None
        if stored is None or not stored.isdigit():
            return None
        self.remember(message_id, int(stored))
        return int(stored)

    async def root_of(self, message: discord.Message, me_id: int) -> int:
        """Root of the conversation `message` (one of the bot's messages, or a user's) belongs to."""
        seen: list[int] = []
        current: discord.Message | None = message
        root = message.id
        for _ in range(MAX_CHAIN):
            if current is None:
                break
            known = await self._known(current.id) if current.author.id == me_id else self._roots.get(current.id)
            if known is not None:
                root = known
                break
            seen.append(current.id)
            root = current.id
            ref = current.reference
            if ref is None or ref.message_id is None:
                break
            parent = await self.resolve(current, ref)
            # A user message that replies to someone other than the bot is a root of its own.
            if current.author.id != me_id and (parent is None or parent.author.id != me_id):
                break
            if parent is None:
                break
            current = parent
        for mid in seen:
            self.remember(mid, root)
        return root

    @staticmethod
    async def resolve(message: discord.Message, ref: discord.MessageReference) -> discord.Message | None:
        resolved = ref.resolved
        if isinstance(resolved, discord.Message):
            return resolved
        if isinstance(resolved, discord.DeletedReferencedMessage):
            return None
        cached = ref.cached_message
        if cached is not None:
            return cached
        try:
            return await message.channel.fetch_message(ref.message_id)
        except discord.HTTPException as exc:
            log.info("could not fetch message %s of a reply chain: %s", ref.message_id, exc)
            return None


# Compiled once, at import: a pattern per mentioned id (the bot's own included) was compiled on first sight,
# in the way of the first message that named it.
_USER_MENTION = re.compile(r"<@!?(\d+)>")
_SPACES = re.compile(r"[ \t]{2,}")


def strip_mentions(message: discord.Message, me_id: int) -> str:
    """The bot's mention removed, other people's mentions as @their name (other `<@…>` kept as they are)."""
    names = {str(user.id): "@" + user.display_name for user in message.mentions if user.id != me_id}
    names[str(me_id)] = ""
    return strip_named(message.content, names)


def strip_named(content: str, names: dict[str, str]) -> str:
    """`<@id>` / `<@!id>` replaced by names[id] where it has one, runs of spaces and tabs made one, trimmed."""
    def named(match: re.Match[str]) -> str:
        return names.get(match.group(1), match.group(0))

    return _SPACES.sub(" ", _USER_MENTION.sub(named, content)).strip()


def author_of(user: discord.abc.User) -> Author:
    roles: tuple[str, ...] = ()
    admin = False
    # A member whose guild discord.py does not know (a payload with a member but no usable guild_id) has no
    # roles to read: treated as a plain user, not an error.
    if isinstance(user, discord.Member) and user.guild is not None:
        roles = tuple(str(r.id) for r in user.roles if not r.is_default())
        admin = user.guild_permissions.administrator
    return Author(id=str(user.id), name=user.display_name, roles=roles, is_admin=admin)


def mentions_me(message: discord.Message, me: discord.ClientUser) -> bool:
    me_id = me.id
    for user in message.mentions:
        if user.id == me_id:
            return True
    # The bot's managed role (added when it joined) counts as a mention of the bot, as users expect.
    guild = message.guild
    if guild is not None and guild.me is not None:
        bot_roles = {r.id for r in guild.me.roles if r.managed}
        return any(r.id in bot_roles for r in message.role_mentions)
    return False


async def replied_to_me(message: discord.Message, me_id: int, chains: ReplyChains) -> bool:
    ref = message.reference
    if ref is None or ref.message_id is None:
        return False
    parent = await chains.resolve(message, ref)
    return parent is not None and parent.author.id == me_id


def channel_place(channel) -> tuple[str, str | None, tuple[str, ...]]:
    """(channel, thread, parents) for InboundMessage. Threads report their parent as the channel."""
    if isinstance(channel, discord.Thread):
        parent = channel.parent
        parents = (str(parent.category_id),) if parent is not None and parent.category_id else ()
        return str(channel.parent_id), str(channel.id), parents
    category = getattr(channel, "category_id", None)
    return str(channel.id), None, ((str(category),) if category else ())


MAX_CONTENT = 4_000   # Discord's own limit (with Nitro); longer is not from Discord


def unreadable(message: discord.Message) -> str | None:
    """The parse step's last check, after discord.py built the Message: what about it cannot be from Discord,
    or None. discord.py keeps some fields as the payload gave them (content, attachment fields) and leaves
    others unset when the payload lacks them, so a malformed event can reach us with, say, a dict for content
    or no author; such a message is dropped with one log line."""
    # Attributes read directly (an unset one raises AttributeError): this runs for every message on the server.
    try:
        try:
            author, channel = message.author, message.channel
            author_id = author.id
        except AttributeError:
            return "no author or channel"
        if channel is None or not isinstance(author_id, int):
            return "no author or channel"
        try:
            name, message_id = author.name, message.id
        except AttributeError:
            return "the author has no name"
        if not isinstance(name, str) or not isinstance(message_id, int):
            return "the author has no name"
        try:
            content = message.content
        except AttributeError:
            content = None
        if not isinstance(content, str):
            return "content is not text"
        if len(content) > MAX_CONTENT:
            return f"content of {len(content):,} characters"
        try:
            attachments = message.attachments
        except AttributeError:
            attachments = None
        for att in attachments or ():
            if not (isinstance(att.url, str) and isinstance(att.filename, str) and isinstance(att.size, int)):
                return "an attachment without url, name or size"
    except Exception as exc:  # a property of a half-built object raising
        return f"unreadable ({type(exc).__name__})"
    return None


def mention_thread(config: Config, channel: str, parents: tuple[str, ...], message_id: int,
                   chains: ReplyChains) -> str | None:
    """The conversation a mention in a plain channel starts: rooted at itself — except where the bot answers
    everything (one conversation for the channel)."""
    route = route_for(config, "discord", channel, parents)  # core's lookup: the channel, then its category
    if route and route.respond_without_mention:
        return None
    chains.remember(message_id, message_id)
    return str(message_id)


async def translate(message: discord.Message, me: discord.ClientUser, config: Config,
                    chains: ReplyChains, *, cdn: CdnFetcher | None = None) -> InboundMessage | None:
    """None for messages the bot never looks at (its own, other bots', system messages)."""
    if message.author.id == me.id or message.author.bot or message.type not in _ANSWERABLE:
        return None
    is_direct = message.guild is None
    reply_to_me = await replied_to_me(message, me.id, chains)
    mentioned = mentions_me(message, me) or reply_to_me
    channel, thread, parents = channel_place(message.channel)
    limit = max_bytes(config.discord.max_file_mb)
    if thread is None and not is_direct:
        # In a plain channel the conversation is a reply chain: a reply continues the chain's conversation,
        # a mention starts one rooted at itself — except where the bot answers everything (one conversation).
        if reply_to_me:
            thread = str(await chains.root_of(message, me.id))
        elif mentioned:
            thread = mention_thread(config, channel, parents, message.id, chains)
    message_id = str(message.id)
    return InboundMessage(
        platform="discord",
        workspace=str(message.guild.id) if message.guild else "",
        channel=channel,
        author=author_of(message.author),
        text=clean(strip_mentions(message, me.id)),
        thread=thread,
        attachments=tuple(to_attachment(a, max_bytes=limit, cdn=cdn) for a in message.attachments),
        is_direct=is_direct,
        mentions_bot=mentioned,
        event_id=message_id,
        message_id=message_id,
        channel_parents=parents,
    )
