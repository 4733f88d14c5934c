"""Confirm / Cancel buttons under a command's ephemeral reply (`/forget user:`), and their clicks.

The buttons are message components whose custom_id carries core's token (`teambridge_confirm:forget:<key>`, within
Discord's 100 characters). Clicks are matched by a discord.py DynamicItem template, not by a View kept in memory,
so a click on an old message or after a restart still gets an answer (core says the question is no longer open)
instead of Discord's "This interaction failed". A click is acknowledged at once with DEFERRED_UPDATE_MESSAGE
(type 6: deleting at the model provider may take longer than Discord's 3 s); core's command surface decides
(only the admin who asked, within the time, once), and the answer then replaces the question — buttons gone — or,
for a click that decides nothing, goes to the clicker alone as an ephemeral followup.
"""
from __future__ import annotations

import logging
import re
from typing import Awaitable, Callable

import discord

from bots.discord.events import author_of
from core.chat.confirm import Confirmation, ConfirmReply
from core.model import InboundMessage

log = logging.getLogger("teambridge.discord.confirm")

OnClick = Callable[[InboundMessage, str, bool], Awaitable[ConfirmReply]]   # (clicker, token, accepted)
PREFIX = "teambridge_"
TEMPLATE = PREFIX + r"(?P<action>confirm|cancel):(?P<token>[A-Za-z0-9_:.-]{1,80})"


def confirm_items(on_click: OnClick) -> type[discord.ui.DynamicItem]:
    """The DynamicItem class answering this adapter's Confirm / Cancel clicks (register it on the client)."""

    class ConfirmButton(discord.ui.DynamicItem[discord.ui.Button], template=TEMPLATE):
        def __init__(self, action: str, token: str, label: str = "") -> None:
            style = discord.ButtonStyle.danger if action == "confirm" else discord.ButtonStyle.secondary
            super().__init__(discord.ui.Button(label=label or action.title(), style=style,
                                               custom_id=f"{PREFIX}{action}:{token}"))
            self.action, self.token = action, token

        @classmethod
        async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item,
                                 match: re.Match[str]) -> "ConfirmButton":
            return cls(match["action"], match["token"])

        async def callback(self, interaction: discord.Interaction) -> None:
            await answer_click(interaction, self.token, self.action == "confirm", on_click)

    return ConfirmButton


def confirm_view(items: type[discord.ui.DynamicItem], confirmation: Confirmation) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(items("confirm", confirmation.token, confirmation.confirm_label))
    view.add_item(items("cancel", confirmation.token, confirmation.cancel_label))
    return view


async def answer_click(interaction: discord.Interaction, token: str, accepted: bool, on_click: OnClick) -> None:
    try:
        await interaction.response.defer()
    except discord.HTTPException as exc:   # expired or answered already (a redelivery): nothing to say
        log.info("confirmation click %s could not be acknowledged: %s", interaction.id, exc)
        return
    msg = InboundMessage(platform="discord", workspace=str(interaction.guild_id or ""),
                         channel=str(interaction.channel_id or ""), author=author_of(interaction.user), text="",
                         mentions_bot=True)
    reply = await on_click(msg, token, accepted)
    try:
        if reply.settled:
            await interaction.edit_original_response(content=reply.text, view=None)
        else:
            await interaction.followup.send(reply.text, ephemeral=True)
    except discord.HTTPException as exc:
        log.warning("could not answer confirmation click %s: %s", interaction.id, exc)
