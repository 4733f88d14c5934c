"""Payload builders for the stand-in Discord.

Shapes follow discord.py's TypedDicts (discord/types/*.py) and the official OpenAPI spec
(bots/standins/specs/discord/openapi.json): a missing key there is a hard KeyError inside discord.py.
"""
from __future__ import annotations

import itertools
import time
from datetime import datetime, timezone

DISCORD_EPOCH_MS = 1420070400000


class Snowflakes:
    """Increasing snowflake-like ids: discord.py's history and 'oldest' logic rely on the ordering."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._last = 0

    def next(self) -> str:
        value = ((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) + (next(self._counter) & 0x3FFFFF)
        value = max(value, self._last + 1)
        self._last = value
        return str(value)

    def next_on_shard(self, shard: int, count: int) -> str:
        """An id (a guild's) that Discord's formula puts on `shard` of `count`: (id >> 22) % count == shard.
        The timestamp part moves forward to the next millisecond that fits; ids stay increasing."""
        value = int(self.next())
        ms = value >> 22
        ms += (shard - ms) % count
        value = max((ms << 22) + (value & 0x3FFFFF), value)
        self._last = value
        return str(value)


def iso_now() -> str:
    return datetime.now(timezone.utc).isoformat()


def user(user_id: str, name: str, *, bot: bool = False) -> dict:
    return {
        "id": user_id,
        "username": name,
        "global_name": name,
        "discriminator": "0",
        "avatar": None,
        "public_flags": 0,
        "flags": 0,
        "bot": bot,
        "primary_guild": None,
    }


def member(u: dict, roles: list[str], *, permissions: str | None = None) -> dict:
    data = {
        "user": u,
        "nick": None,
        "roles": roles,
        "joined_at": iso_now(),
        "deaf": False,
        "mute": False,
        "flags": 0,  # discord.py: KeyError without it
        "pending": False,
    }
    if permissions is not None:
        data["permissions"] = permissions
    return data


def role(role_id: str, name: str, permissions: int, position: int) -> dict:
    return {
        "id": role_id,
        "name": name,
        "color": 0,
        "hoist": False,
        "position": position,
        "permissions": str(permissions),
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }


def text_channel(channel_id: str, guild_id: str, name: str, position: int = 0) -> dict:
    return {
        "id": channel_id,
        "type": 0,
        "guild_id": guild_id,
        "name": name,
        "position": position,
        "permission_overwrites": [],
        "nsfw": False,
        "parent_id": None,
        "topic": None,
        "last_message_id": None,
        "rate_limit_per_user": 0,
    }


def thread_channel(thread_id: str, guild_id: str, parent_id: str, name: str, owner_id: str) -> dict:
    return {
        "id": thread_id,
        "type": 11,  # public thread
        "guild_id": guild_id,
        "parent_id": parent_id,
        "name": name,
        "owner_id": owner_id,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "message_count": 0,
        "member_count": 1,
        "total_message_sent": 0,
        "flags": 0,
        "thread_metadata": {
            "archived": False,
            "auto_archive_duration": 1440,
            "archive_timestamp": iso_now(),
            "locked": False,
            "create_timestamp": iso_now(),
        },
    }


def attachment(att_id: str, filename: str, size: int, url: str, content_type: str | None) -> dict:
    data = {
        "id": att_id,
        "filename": filename,
        "size": size,
        "url": url,
        "proxy_url": url,
    }
    if content_type:
        data["content_type"] = content_type
    return data


def message(
    *,
    message_id: str,
    channel_id: str,
    author: dict,
    content: str,
    guild_id: str | None = None,
    member_data: dict | None = None,
    mentions: list[dict] | None = None,
    attachments: list[dict] | None = None,
    reference: dict | None = None,
    referenced: dict | None = None,
    flags: int = 0,
    edited: bool = False,
    interaction_id: str | None = None,
    webhook_id: str | None = None,
) -> dict:
    data = {
        "id": message_id,
        "channel_id": channel_id,
        "author": author,
        "content": content,
        "timestamp": iso_now(),
        "edited_timestamp": iso_now() if edited else None,
        "tts": False,
        "mention_everyone": False,
        "mentions": mentions or [],
        "mention_roles": [],
        "attachments": attachments or [],
        "embeds": [],
        "pinned": False,
        "type": 19 if reference else 0,  # 19 = REPLY, carries message_reference
        "flags": flags,
        "components": [],
    }
    if guild_id:
        data["guild_id"] = guild_id
    if member_data is not None:
        data["member"] = {k: v for k, v in member_data.items() if k != "user"}
    if reference:
        data["message_reference"] = reference
        data["referenced_message"] = referenced
    if webhook_id:
        data["webhook_id"] = webhook_id
    if interaction_id:
        data["type"] = 20  # CHAT_INPUT_COMMAND response
    return data
