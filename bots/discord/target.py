"""ReplyTarget implementations: a channel/thread/DM reply, and a slash-command (interaction) reply."""
from __future__ import annotations

import asyncio
import io
import logging

import discord

from bots.discord.events import ReplyChains
from bots.discord.pacing import Pacer, Pacers
from bots.discord.text import split, to_discord
from core.model import OutboundFile
from core.ports import Limits, ReplyStream
from core.streaming import WARNING

log = logging.getLogger("teambridge.discord")

LIMITS = Limits(max_chars=2000, edit_interval=1.0)
DEFAULT_FILE_LIMIT = 10 * 1024 * 1024  # per file since 2025-01-16; boosts raise it per guild
TYPING_REFRESH = 8.0                   # Discord shows "typing" for ~10 s per trigger
TYPING_MAX = 120.0
NO_PINGS = discord.AllowedMentions.none()  # model output must never ping @everyone or users


def _too_big(file: OutboundFile, limit: int) -> str | None:
    """The notice for a file over Discord's upload limit here (Discord would answer 413 / 40005)."""
    if len(file.data) <= limit:
        return None
    return (f"{WARNING}{file.name} is {len(file.data) / 1_048_576:.1f} MB, more than Discord accepts here "
            f"({limit / 1_048_576:.0f} MB), so it was not posted.")


class _Typing:
    """Keeps "is typing…" visible until the first message of the reply goes out."""

    def __init__(self, channel: discord.abc.Messageable, pacers: Pacers) -> None:
        self._channel = channel
        self._pacers = pacers
        self._task: asyncio.Task | None = None
        self._started = False
        self._stopped = False

    async def start(self) -> None:
        """Show the indicator now, then refresh it in the background until stop()."""
        if self._started or self._stopped:
            return
        self._started = True
        if await self._trigger() and not self._stopped:
            self._task = asyncio.create_task(self._refresh())

    def stop(self) -> None:
        self._stopped = True
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def _trigger(self) -> bool:
        try:
            # Typing is cosmetic: when the global budget is used up right now (many answers at once), skip
            # it rather than queue it in front of the answers themselves; the next refresh tries again.
            async with self._pacers.global_.slot_if_free() as free:
                if free:
                    await self._channel._state.http.send_typing(self._channel.id)  # POST /channels/{id}/typing
            return True
        except discord.HTTPException as exc:  # typing is cosmetic: log and carry on with the answer
            log.warning("typing indicator failed in %s: %s", self._channel.id, exc)
            return False

    async def _refresh(self) -> None:
        loop = asyncio.get_running_loop()
        until = loop.time() + TYPING_MAX
        try:
            while loop.time() < until:
                await asyncio.sleep(TYPING_REFRESH)
                if not await self._trigger():
                    return
        except asyncio.CancelledError:
            pass


class ChannelTarget:
    """Answer to a message: the first part replies to it, each further part replies to the previous one
    (so a reply to any part continues the same conversation)."""

    limits = LIMITS

    def __init__(self, channel: discord.abc.Messageable, *, pacers: Pacers, chains: ReplyChains,
                 reply_to: discord.Message | None, root: int | None, file_limit: int | None = None) -> None:
        self._channel = channel
        self._pacers = pacers
        self._chains = chains
        self._reply_to: discord.Message | discord.PartialMessage | None = reply_to
        self._root = root
        self._messages: dict[str, discord.Message] = {}
        self._typing = _Typing(channel, pacers)
        guild = getattr(channel, "guild", None)
        self._file_limit = file_limit or (guild.filesize_limit if guild is not None else DEFAULT_FILE_LIMIT)

    @property
    def channel_id(self) -> int:
        return self._channel.id

    def _pace(self):
        return self._pacers.for_channel(self._channel.id)

    async def _send(self, **kwargs) -> discord.Message:
        self._typing.stop()
        reference = self._reply_to
        async with self._pace():
            msg = await self._channel.send(reference=reference.to_reference(fail_if_not_exists=False)
                                           if reference is not None else None,
                                           mention_author=False, allowed_mentions=NO_PINGS, **kwargs)
        self._messages[str(msg.id)] = msg
        self._reply_to = msg
        if self._root is not None:
            await self._chains.remember_bot_message(msg.id, self._root)
        return msg

    async def post(self, text: str) -> str:
        return str((await self._send(content=to_discord(text))).id)

    async def edit(self, message_id: str, text: str) -> None:
        msg = self._messages.get(message_id) or self._channel.get_partial_message(int(message_id))
        async with self._pace():
            await msg.edit(content=to_discord(text), allowed_mentions=NO_PINGS)

    async def upload(self, file: OutboundFile) -> None:
        if (refusal := _too_big(file, self._file_limit)) is not None:
            await self.notice(refusal)
            return
        await self._send(file=discord.File(io.BytesIO(file.data), filename=file.name))

    async def notice(self, text: str, *, ephemeral: bool = False) -> None:
        # Only interaction replies can be ephemeral; in a channel a notice is a normal reply.
        for part in split(text):
            await self._send(content=part)

    async def typing(self) -> None:
        await self._typing.start()

    def open_stream(self, on_posted) -> ReplyStream | None:
        return None


class InteractionTarget:
    """Answer to a slash command that was deferred with thinking=True: the first part edits the original
    response (@original), further parts and files are followups on the interaction webhook."""

    limits = LIMITS

    def __init__(self, interaction: discord.Interaction, *, chains: ReplyChains, root: int | None,
                 original_id: int | None) -> None:
        self._interaction = interaction
        self._chains = chains
        self._root = root
        self._original_id = original_id
        self._original_used = False
        self._followups: dict[str, discord.WebhookMessage] = {}
        # Interaction webhooks have their own bucket per token (outside the global limit).
        self._pacer = Pacer(5, 2.0)
        self._file_limit = interaction.filesize_limit or DEFAULT_FILE_LIMIT

    @property
    def answered(self) -> bool:
        return self._original_used

    async def _remember(self, message_id: int) -> None:
        if self._root is not None:
            await self._chains.remember_bot_message(message_id, self._root)

    async def post(self, text: str) -> str:
        async with self._pacer.slot():
            return await self._post(text)

    async def _post(self, text: str) -> str:
        if not self._original_used:
            self._original_used = True
            msg = await self._interaction.edit_original_response(content=to_discord(text), allowed_mentions=NO_PINGS)
            self._original_id = msg.id
            await self._remember(msg.id)
            return str(msg.id)
        msg = await self._interaction.followup.send(content=to_discord(text), wait=True, allowed_mentions=NO_PINGS)
        self._followups[str(msg.id)] = msg
        await self._remember(msg.id)
        return str(msg.id)

    async def edit(self, message_id: str, text: str) -> None:
        async with self._pacer.slot():
            await self._edit(message_id, text)

    async def _edit(self, message_id: str, text: str) -> None:
        if self._original_id is not None and message_id == str(self._original_id):
            await self._interaction.edit_original_response(content=to_discord(text), allowed_mentions=NO_PINGS)
        else:
            await self._interaction.followup.edit_message(int(message_id), content=to_discord(text),
                                                          allowed_mentions=NO_PINGS)

    async def upload(self, file: OutboundFile) -> None:
        if (refusal := _too_big(file, self._file_limit)) is not None:
            await self.notice(refusal)
            return
        dfile = discord.File(io.BytesIO(file.data), filename=file.name)
        async with self._pacer.slot():
            if not self._original_used:
                self._original_used = True
                await self._interaction.edit_original_response(attachments=[dfile])
                return
            msg = await self._interaction.followup.send(file=dfile, wait=True)
        await self._remember(msg.id)

    async def notice(self, text: str, *, ephemeral: bool = False) -> None:
        parts = split(text)
        if not self._original_used:
            # The defer was public, so the "thinking…" message can't turn ephemeral: the notice replaces it.
            await self.post(parts[0])
            parts = parts[1:]
        for part in parts:
            async with self._pacer.slot():
                await self._interaction.followup.send(content=part, ephemeral=ephemeral,
                                                      allowed_mentions=NO_PINGS)

    async def typing(self) -> None:
        return None  # the deferred response already shows "<bot> is thinking…"

    def open_stream(self, on_posted) -> ReplyStream | None:
        return None
