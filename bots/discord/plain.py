"""MESSAGE_CREATE read straight from the gateway's dict, for the messages most of the traffic is.

discord.py turns every MESSAGE_CREATE into a Message before a handler sees it: its author as a User and then a
Member, every mention a User or Member, attachments, embeds, components, and for a reply the replied-to message
as a second whole Message — about a quarter of the bot's CPU per message from the frame to the request to the
model, and more for each of the bot's own answers, which come back with their buttons and the message they reply
to. Here a *plain* message — type DEFAULT, not a reply, no attachments, embeds, stickers, components, poll,
thread, interaction or webhook, in a channel discord.py knows — is read from the payload itself into the same
facts translate() takes from the Message (bots/discord/events.py), and only once every field discord.py would
have read has a shape it would have accepted. Anything else, and any payload this reader does not fully
recognise, goes to discord.py's parser as before (then through unreadable() and translate()), so a bad payload
is still dropped there with one log line. A message written by a bot (this one's own answers included) is
passed over here, as translate() would: the bot never answers bots.

The reply target and the approval prompt need a message to reply to: a PartialMessage (channel + id) replies,
starts a thread and builds a message_reference exactly as the full Message would.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

import discord
from discord.state import ConnectionState
from discord.utils import parse_time

from bots.discord.events import MAX_CONTENT, ReplyChains, channel_place, mention_thread, strip_named
from core.config.schema import Config
from core.model import Author, InboundMessage
from core.text import clean

ADMINISTRATOR = discord.Permissions(administrator=True).value
# Keys discord.py reads as data[key] when present, whatever their value: a message with one is not plain.
_SPECIAL = frozenset({"message_reference", "thread", "poll", "interaction", "interaction_metadata", "application",
                      "role_subscription_data", "purchase_notification", "call"})
# Lists discord.py turns into objects one by one (attachments, embeds, ...): plain only when absent or empty.
_EMPTY = frozenset({"reactions", "attachments", "embeds", "sticker_items", "components", "message_snapshots"})
# Read with .get() and made into something when set (a webhook's id, an edit time).
_UNSET = frozenset({"webhook_id", "application_id", "edited_timestamp"})
_MEMBER_TIMES = ("joined_at", "premium_since", "communication_disabled_until")
# Read here (or, for the flags and the like, read by discord.py without a bearing on the InboundMessage; a value
# it cannot read is still dropped by it: tests/discord/test_discord_plain.py breaks every field in turn).
_READ = frozenset({"id", "type", "content", "channel_id", "guild_id", "author", "member", "mentions", "mention_roles",
                   "mention_everyone", "tts", "pinned", "flags", "nonce", "position", "activity",
                   "referenced_message"})   # (read by discord.py only with a message_reference: not plain)
# Every key of a message discord.py's Message reads, sorted by what this reader does with it: a newer discord.py
# reading another one fails the test that compares this with Message.__init__, before a message is read wrong.
KNOWN_KEYS = _SPECIAL | _EMPTY | _UNSET | _READ


class _Skip:
    """A message this reader recognised and the bot does not answer (one written by a bot)."""


SKIP = _Skip()


@dataclass(frozen=True, slots=True)
class PlainMessage:
    """What translate() would have taken from discord.py's Message of a plain message."""
    message: discord.PartialMessage   # to reply to (its channel: the channel or thread the message is in)
    workspace: str
    author: Author
    text: str
    is_direct: bool
    mentioned: bool

    def inbound(self, config: Config, chains: ReplyChains) -> InboundMessage:
        """The InboundMessage translate() makes of the same message (no reply chain: a plain message is no reply)."""
        message = self.message
        channel, thread, parents = channel_place(message.channel)
        if thread is None and not self.is_direct and self.mentioned:
            thread = mention_thread(config, channel, parents, message.id, chains)
        message_id = str(message.id)
        return InboundMessage(platform="discord", workspace=self.workspace, channel=channel, author=self.author,
                              text=self.text, thread=thread, is_direct=self.is_direct, mentions_bot=self.mentioned,
                              event_id=message_id, message_id=message_id, channel_parents=parents)


_SNOWFLAKE = re.compile(r"[0-9]{1,19}").fullmatch   # (one call for what len/isascii/isdigit checked in three)


def _id(value: Any) -> int | None:
    """A snowflake as Discord sends it (a string of ASCII digits; 19 at most keeps it inside discord.py's
    unsigned 64-bit arrays), else None."""
    if type(value) is str and _SNOWFLAKE(value) is not None:
        return int(value)
    return None


def _user(data: Any) -> tuple[int, str, str | None] | None:
    """(id, username, global name) of a user object discord.py's User accepts (it reads these keys by index)."""
    if type(data) is not dict or "discriminator" not in data or "avatar" not in data:
        return None
    user_id, name, global_name = _id(data.get("id")), data.get("username"), data.get("global_name")
    if user_id is None or type(name) is not str or not (global_name is None or type(global_name) is str):
        return None
    return user_id, name, global_name


def _member(data: Any) -> bool:
    """A guild member object discord.py's Member accepts (roles and flags by index, times parsed, permissions an int)."""
    if type(data) is not dict or "flags" not in data:
        return False
    roles, nick = data.get("roles"), data.get("nick")
    if type(roles) is not list or not (nick is None or type(nick) is str):
        return False
    for role in roles:
        if _id(role) is None:
            return False
    for key in _MEMBER_TIMES:
        when = data.get(key)
        if when is not None:
            if type(when) is not str:
                return False
            try:
                parse_time(when)
            except ValueError:
                return False
    if "permissions" in data:
        try:
            int(data["permissions"])
        except (TypeError, ValueError):
            return False
    return True


def _author(guild: discord.Guild, user_id: int, member: dict) -> tuple[tuple[str, ...], bool]:
    """The member's roles (by position, as Member.roles lists them, @everyone left out) and whether the guild's
    permissions make them an administrator (Member.guild_permissions): the owner, or a role with Administrator."""
    roles = [role for role in map(guild.get_role, map(int, member["roles"])) if role is not None]
    default = guild.default_role
    if default:
        roles.append(default)
    if len(roles) > 1:
        roles.sort()
    if guild.owner_id == user_id:
        admin = True
    else:
        value = 0
        for role in roles:
            value |= role.permissions.value
        admin = bool(value & ADMINISTRATOR)
    return tuple(str(role.id) for role in roles if not role.is_default()), admin


def read_plain(data: Any, state: Any) -> PlainMessage | _Skip | None:
    """The message of a MESSAGE_CREATE payload if it is plain, SKIP if a bot wrote it, None for discord.py's parser.
    Reads only: nothing is remembered or changed until the message is known to be plain."""
    me = state.user
    if type(data) is not dict or me is None:
        return None
    author = data.get("author")
    author_id = _id(author.get("id")) if type(author) is dict else None
    if author_id is None:
        return None
    if author_id == me.id or author.get("bot", False):
        return SKIP
    kind = data.get("type")
    if kind != 0 or type(kind) is not int:
        return None
    keys = data.keys()
    if not keys.isdisjoint(_SPECIAL):
        return None
    for key in _EMPTY & keys:   # absent or [] (discord.py iterates them: None would fail there)
        if type(data[key]) is not list or data[key]:
            return None
    for key in _UNSET & keys:
        if data[key] is not None:
            return None
    content, message_id, channel_id = data.get("content"), _id(data.get("id")), _id(data.get("channel_id"))
    if type(content) is not str or len(content) > MAX_CONTENT or message_id is None or channel_id is None:
        return None
    user = _user(author)
    mentions, role_ids = data.get("mentions"), data.get("mention_roles")
    if user is None or type(mentions) is not list or type(role_ids) is not list:
        return None
    _, name, global_name = user
    direct = "guild_id" not in data
    if not direct and _id(data["guild_id"]) is None:
        return None
    channel, guild = state._get_guild_channel(data)   # what discord.py's parser starts with
    if isinstance(channel, discord.PartialMessageable) or (guild is None) != direct:
        return None   # a channel or guild discord.py does not know (yet)
    try:
        message = discord.PartialMessage(channel=channel, id=message_id)
    except TypeError:   # a kind of channel PartialMessage does not take
        return None
    if direct:
        if "member" in data:
            return None
        roles: tuple[str, ...] = ()
        admin = False
        display = global_name or name
    else:
        member = data.get("member")
        if guild.get_member(author_id) is not None or not _member(member):
            return None   # (a member discord.py has cached would be used as it is cached)
        roles, admin = _author(guild, author_id, member)
        display = member.get("nick") or global_name or name
    names, mentioned = _mention_names(mentions, guild, me.id)
    if names is None:
        return None
    if guild is not None:
        role_mentions = [_id(role) for role in role_ids]
        if None in role_mentions:
            return None
        if not mentioned and guild.me is not None:
            # The bot's managed role (added when it joined) counts as a mention of the bot, as in mentions_me().
            bot_roles = {role.id for role in guild.me.roles if role.managed}
            mentioned = any(role in bot_roles for role in role_mentions)
    return PlainMessage(message=message, workspace=str(guild.id) if guild is not None else "",
                        author=Author(id=str(author_id), name=display, roles=roles, is_admin=admin),
                        text=clean(strip_named(content, names)), is_direct=direct, mentioned=mentioned)


def _mention_names(mentions: list, guild: discord.Guild | None, me_id: int) -> tuple[dict[str, str] | None, bool]:
    """`<@id>` -> "@display name" for the people mentioned, the bot's own mention -> "" (strip_mentions()), and
    whether the bot is among them; (None, False) when an entry is not one discord.py reads the same way."""
    names: dict[str, str] = {}
    mentioned = False
    for mention in mentions:
        if type(mention) is not dict or not mention:
            return None, False
        user_id = _id(mention.get("id"))
        if user_id is None:
            return None, False
        if guild is not None and guild.get_member(user_id) is not None:
            if user_id != me_id:
                return None, False   # (its name would come from discord.py's cache)
            mentioned = True
            continue
        user = _user(mention)
        if user is None:
            return None, False
        display = user[2] or user[1]
        if guild is not None and "member" in mention:
            member = mention["member"]
            if not _member(member):
                return None, False
            display = member.get("nick") or display
        if user_id == me_id:
            mentioned = True
        else:
            names[str(user_id)] = "@" + display
    names[str(me_id)] = ""
    return names, mentioned


# The channels whose last_message_id discord.py's parse_message_create keeps.
_LAST_MESSAGE_KEPT = (discord.TextChannel, discord.VoiceChannel, discord.Thread, discord.StageChannel)


def reads_as_payload(state: ConnectionState) -> bool:
    """Whether discord.py, set up as this state is, takes a message's author and mentions from the payload too.
    It does without the members intent or with an empty member cache (store_user_no_intents): then nothing it
    holds is fresher or staler than the payload. With a member cache, its Users and Members could carry names
    the payload no longer has, and the two readings could differ: the plain reader stays out."""
    return state.member_cache_flags.value == 0 and state.store_user.__func__ is ConnectionState.store_user_no_intents


def take_plain_messages(state: Any, on_plain: Callable[[PlainMessage], None]) -> None:
    """From now on a plain MESSAGE_CREATE goes to `on_plain` (which must not raise: it runs in the gateway's
    reader) instead of discord.py's parser and `on_message`; a bot's message goes nowhere; any other message
    to the parser that was in place (bots/discord/gateway.guard_parsers: it drops what it cannot read)."""
    if not reads_as_payload(state):
        return
    parsers = state.parsers
    full = parsers["MESSAGE_CREATE"]

    def parse(data: Any) -> None:
        try:
            plain = read_plain(data, state)
        except Exception:   # a shape this reader did not foresee: discord.py's parser decides, as before
            plain = None
        if plain is None:
            full(data)
        elif plain is not SKIP:
            channel = plain.message.channel
            if channel.__class__ in _LAST_MESSAGE_KEPT:   # what discord.py's parser does after the Message
                channel.last_message_id = plain.message.id
            on_plain(plain)   # type: ignore[arg-type]

    parsers["MESSAGE_CREATE"] = parse
