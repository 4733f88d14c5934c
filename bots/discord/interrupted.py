"""An answer a previous run left half-written (a crash, a shutdown past its grace period): its last part is
marked as cut off on the next start (the runner finds the replies in flight in the store)."""
from __future__ import annotations

import logging

import discord

from bots.discord.pacing import Pacers
from bots.discord.target import LIMITS
from core.reply.tail import CURSOR, interrupted, undecorated

log = logging.getLogger("teambridge.discord")


async def mark_interrupted(client: discord.Client, pacers: Pacers, channel: str, message_id: str,
                           thread: str | None) -> None:
    # `thread` is either a Discord thread (a channel of its own) or the root message of a reply chain,
    # so look for the message in the channel first, then in the thread.
    for place in dict.fromkeys(p for p in (channel, thread) if p):
        partial = client.get_partial_messageable(int(place))
        try:
            msg = await partial.fetch_message(int(message_id))
        except discord.NotFound:
            continue
        msg = await _last_part(client, partial, msg)
        text = interrupted(msg.content)
        if text == msg.content:   # marked already (two records of one reply led here)
            return
        # view=None: a Stop button the answer showed goes with it (bots/discord/controls.py); one slot per request
        if len(text) <= LIMITS.max_chars:
            async with pacers.for_channel(int(place)):
                await msg.edit(content=text, view=None)
        else:  # no room left in that message: without its cursor, and the notice right below
            bare = undecorated(msg.content)
            if bare != msg.content or msg.components:
                async with pacers.for_channel(int(place)):
                    await msg.edit(content=bare, view=None)
            async with pacers.for_channel(int(place)):
                await msg.reply(interrupted(""), mention_author=False)
        return
    log.warning("interrupted reply %s in %s no longer exists", message_id, channel)


async def _last_part(client: discord.Client, partial, msg: discord.Message) -> discord.Message:
    """The part of a reply that was cut. A crash right after a new part was posted, before it was recorded,
    leaves the previous (complete) part recorded: the reply went on in messages that reply to it."""
    if CURSOR in msg.content:
        return msg
    me = client.user.id if client.user else None
    try:
        later = {m.reference.message_id: m async for m in partial.history(limit=25)
                 if m.author.id == me and m.reference is not None and m.reference.message_id}
    except discord.HTTPException as exc:
        log.info("could not read the messages after %s (%s)", msg.id, exc)
        return msg
    seen = {msg.id}
    while msg.id in later and later[msg.id].id not in seen:
        msg = later[msg.id]
        seen.add(msg.id)
    return msg
