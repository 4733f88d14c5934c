"""Discord's slash commands: /ask answered like a mention (the deferred "thinking…" response becomes the reply),
every other command through core's command surface, its answer visible to the caller only (with Confirm / Cancel
under it when the command asks first: bots/discord/confirm.py)."""
from __future__ import annotations

import logging

import discord

from bots.discord.approval import DiscordApprovals
from bots.discord.commands import discord_usage
from bots.discord.confirm import confirm_view
from bots.discord.events import ReplyChains, author_of, channel_place
from bots.discord.files import CdnFetcher, max_bytes, to_attachment
from bots.discord.target import InteractionTarget
from bots.discord.text import split
from core.model import InboundMessage

log = logging.getLogger("teambridge.discord")


class SlashCommands:
    """The handlers the command tree (bots/discord/commands.py `build_tree`) calls. `confirm_items`: the
    DynamicItem class the client registered for Confirm / Cancel clicks."""

    def __init__(self, service, *, chains: ReplyChains, approvals: DiscordApprovals, cdn: CdnFetcher,
                 confirm_items: type[discord.ui.DynamicItem]) -> None:
        self._service = service
        self._chains = chains
        self._approvals = approvals
        self._cdn = cdn
        self._confirm_items = confirm_items

    def _inbound(self, interaction: discord.Interaction, text: str, *, thread: str | None = None,
                 attachments=()) -> InboundMessage:
        channel_obj = interaction.channel
        if channel_obj is not None:
            channel, in_thread, parents = channel_place(channel_obj)
        else:
            channel, in_thread, parents = str(interaction.channel_id), None, ()
        return InboundMessage(
            platform="discord",
            workspace=str(interaction.guild_id or ""),
            channel=channel,
            author=author_of(interaction.user),
            text=text,
            thread=in_thread or thread,
            attachments=tuple(attachments),
            is_direct=interaction.guild_id is None,
            mentions_bot=True,  # a slash command is always addressed to the bot
            event_id=str(interaction.id),
            message_id=str(interaction.id),
            channel_parents=parents,
        )

    async def _defer(self, interaction: discord.Interaction, *, ephemeral: bool) -> int | None | bool:
        """Acknowledge within Discord's 3 s. False when this interaction was acknowledged already
        (redelivered after a gateway resume)."""
        try:
            response = await interaction.response.defer(thinking=True, ephemeral=ephemeral)
        except discord.InteractionResponded:
            return False
        except discord.HTTPException as exc:
            if exc.code in (40060, 10062):  # already acknowledged / expired: another delivery handles it
                log.info("interaction %s was acknowledged already (%s)", interaction.id, exc.code)
                return False
            raise
        return response.message_id if response is not None else None

    async def on_ask(self, interaction: discord.Interaction, prompt: str, file: discord.Attachment | None) -> None:
        original = await self._defer(interaction, ephemeral=False)
        if original is False:
            return
        limit = max_bytes(self._service.config.discord.max_file_mb)  # re-read: hot reload may swap the config
        attachments = [to_attachment(file, max_bytes=limit, cdn=self._cdn)] if file is not None else []
        in_thread = isinstance(interaction.channel, discord.Thread)
        # In a plain channel or DM the answer's message roots the conversation, so replying to it continues.
        root = original if (original and not in_thread and interaction.guild_id) else None
        inbound = self._inbound(interaction, prompt, thread=str(root) if root else None, attachments=attachments)
        target = InteractionTarget(interaction, chains=self._chains, root=root, original_id=original or None)
        if root:
            await self._chains.remember_bot_message(root, root)
        approver = self._approvals.approver(interaction.channel) if interaction.channel is not None else None
        await self._service.handle(inbound, target, approver=approver)
        if not target.answered:  # nothing was said (e.g. duplicate): don't leave "thinking…" forever
            try:
                await interaction.delete_original_response()
            except discord.HTTPException as exc:
                log.info("could not remove the pending response of %s: %s", interaction.id, exc)

    async def on_text_command(self, interaction: discord.Interaction, command: str, argument: str) -> None:
        if await self._defer(interaction, ephemeral=True) is False:
            return
        inbound = self._inbound(interaction, f"{command} {argument}".strip())
        answer = await self._service.commands.run(inbound, command, argument, style=discord_usage)
        parts = split(answer.text or "Done.")
        if answer.confirm is not None:   # the command asks first: Confirm / Cancel under its reply
            view = confirm_view(self._confirm_items, answer.confirm)
            await interaction.edit_original_response(content=parts[0], view=view)
            view.stop()   # clicks go to the DynamicItem, which also answers them after a restart
        else:
            await interaction.edit_original_response(content=parts[0])
        for part in parts[1:]:
            await interaction.followup.send(content=part, ephemeral=True)
