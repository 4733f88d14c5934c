"""Approval of tool calls in Discord: a message in the conversation's channel with Approve / Deny buttons.

The buttons are message components of a discord.py View; a click arrives as a component interaction
(INTERACTION_CREATE, type 3), which discord.py routes to the View of that message. Only the person who asked or
an admin decides (the clicker's guild permissions come with the interaction); anyone else gets an ephemeral
"not yours to approve". The decision — or the time running out — is written into the message and the
buttons are removed. The arguments are shown in a code block and no mention in them can ping (the client
sends with allowed_mentions none).
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any, Callable

import discord

from bots.discord.events import author_of
from core.tools.approval import APPROVED, DENIED, TIMEOUT, ApprovalRequest, Decision, may_decide

log = logging.getLogger("teambridge.discord.approval")

NOT_YOURS = "This tool call is not yours to approve: only the person who asked or an admin can decide."
MAX_CONTENT = 2000


class _ApprovalView(discord.ui.View):
    def __init__(self, request: ApprovalRequest, config: Callable[[], Any]) -> None:
        super().__init__(timeout=request.timeout)
        self.request = request
        self._config = config
        self.decision: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        key = uuid.uuid4().hex
        for label, style, approve in (("Approve", discord.ButtonStyle.success, True),
                                      ("Deny", discord.ButtonStyle.danger, False)):
            button: discord.ui.Button = discord.ui.Button(
                label=label, style=style, custom_id=f"teambridge_{'approve' if approve else 'deny'}:{key}")
            button.callback = self._clicked(approve)
            self.add_item(button)

    def _clicked(self, approve: bool):
        async def callback(interaction: discord.Interaction) -> None:
            clicker = author_of(interaction.user)
            if not may_decide(self._config(), self.request.asker_id, clicker):
                log.info("approval of %s: %s is not the asker nor an admin", self.request.tool, clicker.id)
                await interaction.response.send_message(NOT_YOURS, ephemeral=True)
                return
            if self.decision.done():
                await interaction.response.defer()
                return
            decision = Decision(approve, APPROVED if approve else DENIED, by=clicker.id)
            self.decision.set_result(decision)
            self.stop()
            # the click's own answer edits the message: one call, and the buttons go at once
            await interaction.response.edit_message(content=message_text(self.request, decision), view=None)
        return callback

    async def on_timeout(self) -> None:
        if not self.decision.done():
            self.decision.set_result(Decision(False, TIMEOUT))


class DiscordApprovals:
    """Asks in a channel and waits for a click."""

    def __init__(self, *, config: Callable[[], Any]) -> None:
        self._config = config

    def approver(self, channel: discord.abc.Messageable,
                 reply_to: discord.Message | None = None) -> "DiscordApprover":
        return DiscordApprover(self, channel, reply_to)

    async def ask(self, request: ApprovalRequest, channel: discord.abc.Messageable,
                  reply_to: discord.Message | None) -> Decision:
        view = _ApprovalView(request, self._config)
        text = message_text(request, None)
        if reply_to is not None:
            message = await reply_to.reply(text, view=view, mention_author=False)
        else:
            message = await channel.send(text, view=view)
        try:
            # the View's own timeout sets the decision; this bound is the backstop
            decision = await asyncio.wait_for(asyncio.shield(view.decision), timeout=request.timeout + 5)
        except TimeoutError:
            decision = Decision(False, TIMEOUT)
        view.stop()
        if decision.outcome == TIMEOUT:
            try:
                await message.edit(content=message_text(request, decision), view=None)
            except discord.HTTPException as exc:
                log.warning("could not update the approval message %s: %s", message.id, exc)
        return decision


class DiscordApprover:
    """core.tools.approval.Approver for one Discord conversation place."""

    def __init__(self, approvals: DiscordApprovals, channel: discord.abc.Messageable,
                 reply_to: discord.Message | None) -> None:
        self._approvals = approvals
        self._channel = channel
        self._reply_to = reply_to

    async def decide(self, request: ApprovalRequest) -> Decision:
        return await self._approvals.ask(request, self._channel, self._reply_to)


def message_text(request: ApprovalRequest, decision: Decision | None) -> str:
    where = f" on **{request.server}**" if request.server else ""
    who = request.asker_name or request.asker_id
    wait = f"{request.timeout / 60:g} min" if request.timeout >= 60 else f"{request.timeout:g} s"
    match decision.outcome if decision else None:
        case None:
            verdict = ""
        case "approved":
            verdict = f"\n✅ approved by <@{decision.by}>"
        case "denied":
            verdict = f"\n🚫 denied by <@{decision.by}> — it was not run"
        case _:
            verdict = "\n⏱️ No answer in time — it was not run"
    head = f"🔐 **{request.tool}**{where} needs approval to run (asked by {who}; waiting {wait}):\n"
    arguments = request.arguments.replace("```", "`\u200b``")
    room = MAX_CONTENT - len(head) - len(verdict) - 8
    if len(arguments) > room:
        arguments = arguments[:room - 1] + "…"
    return f"{head}```\n{arguments}\n```{verdict}"
