"""Controls on answers in Discord: buttons (message components) on the answer's message, and what a click does.

- While the answer is written, its current message has a **Stop** button; once it has ended, its last message
  has **👍**, **👎** and **Retry** (a failed answer: Retry only). The buttons ride on the edits and posts the
  reply makes anyway (an action row in `components`; `components: []` takes them off a finished part), so they
  cost no request of their own.
- A click arrives as INTERACTION_CREATE type 3 (MESSAGE_COMPONENT) with `data.custom_id`
  ("tb_answer:<action>:<answer id>", well under Discord's 100 characters) and the clicking member. The buttons
  belong to no discord.py View in the view store (a View per answer kept forever would be a leak, and none
  survives a restart anyway): the adapter's `on_interaction` hands them here and core.reply.controls decides.
- Discord shows "This interaction failed" unless a click is acknowledged within 3 s, and deciding may take
  longer (a Retry racing the answer's own record waits up to 5 s for it, a Stop passed on to another process up
  to 2 s). So every click is acknowledged first with a deferred update (type 6: nothing changes yet), and what
  the clicker sees follows on the interaction's webhook, which is outside the bot's global rate limit: an
  ephemeral followup (flag 64) when there is something to say (a stale message, someone who may not press it,
  a double click, a rating); for a Retry that goes ahead, an edit of the clicked message (PATCH @original) that
  takes its Retry away; otherwise nothing — the reply's own next edit shows what happened.
"""
from __future__ import annotations

import logging
from typing import Awaitable, Callable

import discord

from bots.discord.events import author_of
from core.model import InboundMessage
from core.reply.controls import Click, parse_action
from core.reply.lifetime import ReplyLifetime

log = logging.getLogger("teambridge.discord.controls")

PREFIX = "tb_answer:"


class _Buttons(discord.ui.View):
    """Only serialises the buttons: clicks reach DiscordControls through on_interaction, never a View."""

    def __init__(self) -> None:
        super().__init__(timeout=None)

    def is_dispatchable(self) -> bool:  # discord.py would otherwise keep it in its view store, per message
        return False


def _button(label: str, action: str, answer_id: str, style: discord.ButtonStyle) -> discord.ui.Button:
    return discord.ui.Button(label=label, style=style, custom_id=f"{PREFIX}{action}:{answer_id}")


def _actions(lifetime: ReplyLifetime | None, *, latest: bool, final: bool, edited: bool = True):
    """The buttons (label, action) for one message of an answer: Stop on the message being written, 👍 / 👎 and
    Retry on the last one once the answer has ended, none on the others (None: take away any it had). MISSING
    when the answer has no controls (its components are left as they are)."""
    if lifetime is None or not lifetime.answer_id:
        return discord.utils.MISSING
    if lifetime.state == "streaming":
        return (("Stop", "stop"),) if latest and not final and edited else None
    if not latest:
        return None
    if lifetime.state == "failed":
        return (("Retry", "retry"),)
    return (("👍", "up"), ("👎", "down"), ("Retry", "retry"))


def controls_view(lifetime: ReplyLifetime | None, *, latest: bool, final: bool, edited: bool = True):
    """The components for one message of an answer (see _actions) as a discord.py View."""
    actions = _actions(lifetime, latest=latest, final=final, edited=edited)
    if not actions:
        return actions
    view = _Buttons()
    for label, action in actions:
        view.add_item(_button(label, action, lifetime.answer_id, discord.ButtonStyle.secondary))
    return view


class _Row:
    """One action row of secondary buttons, as discord.py's message helper (`handle_message_parameters`) reads a
    View: the same components without building a View (~50 µs: its children, their weights, a future) on every
    post and edit of an answer."""

    __slots__ = ("_answer", "_actions")

    def __init__(self, answer: str, actions: tuple[tuple[str, str], ...]) -> None:
        self._answer = answer
        self._actions = actions

    def to_components(self) -> list[dict]:
        return [{"type": 1, "components": [
            {"type": 2, "style": discord.ButtonStyle.secondary.value, "disabled": False, "label": label,
             "custom_id": f"{PREFIX}{action}:{self._answer}"} for label, action in self._actions]}]

    def has_components_v2(self) -> bool:
        return False


def controls_row(lifetime: ReplyLifetime | None, *, latest: bool, final: bool):
    """controls_view() for discord.py's message helper alone (a channel message's POST and PATCH): the same
    components, no View."""
    actions = _actions(lifetime, latest=latest, final=final)
    if not actions:
        return actions
    return _Row(lifetime.answer_id, actions)


def _without_retry(interaction: discord.Interaction, answer_id: str):
    """The clicked message's controls after its Retry was used: 👍 / 👎 if it had them, else none."""
    message = interaction.message
    rated = message is not None and any(
        isinstance(child, discord.Button) and child.custom_id == f"{PREFIX}up:{answer_id}"
        for row in message.components if isinstance(row, discord.ActionRow) for child in row.children)
    if not rated:
        return None
    view = _Buttons()
    view.add_item(_button("👍", "up", answer_id, discord.ButtonStyle.secondary))
    view.add_item(_button("👎", "down", answer_id, discord.ButtonStyle.secondary))
    return view


class DiscordControls:
    """Handles clicks on answers' buttons for one Discord adapter."""

    def __init__(self, service, *,
                 answer: Callable[[InboundMessage, discord.Interaction], Awaitable[None]]) -> None:
        self._service = service
        self._answer = answer   # answers a message where the clicked answer is (the adapter's)

    @staticmethod
    def handles(interaction: discord.Interaction) -> bool:
        data = interaction.data or {}
        return (interaction.type == discord.InteractionType.component
                and str(data.get("custom_id", "")).startswith(PREFIX))

    async def on_click(self, interaction: discord.Interaction) -> None:
        custom_id = str((interaction.data or {}).get("custom_id", ""))
        try:
            await interaction.response.defer()   # first: deciding may take longer than Discord's 3 s
        except discord.HTTPException as exc:     # expired, or acknowledged already (a redelivered event)
            log.info("a click on an answer could not be acknowledged (%s): not acted on", exc)
            return
        kind, _, answer_id = custom_id.removeprefix(PREFIX).partition(":")
        action = parse_action(kind)
        if action is None or not answer_id:
            log.info("Discord answer control dropped: unreadable custom_id %r", custom_id[:100])
            return
        result = await self._service.controls.click(Click(action, answer_id, author_of(interaction.user),
                                                          "discord"))
        if result.note:
            await _quietly(interaction.followup.send(result.note, ephemeral=True))
        elif result.retry is not None:
            # Retry no longer applies to this answer: the clicked message loses the button
            await _quietly(interaction.edit_original_response(view=_without_retry(interaction, answer_id)))
        if result.retry is not None:
            await self._answer(result.retry, interaction)


async def _quietly(awaitable) -> None:
    try:
        await awaitable
    except discord.HTTPException as exc:   # the interaction's webhook lives 15 minutes: the click still did its part
        log.warning("could not answer a click on an answer: %s", exc)
