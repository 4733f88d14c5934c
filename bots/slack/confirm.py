"""Confirm / Cancel buttons under a command's ephemeral reply (`/teambridge forget @user`), and their clicks.

The reply goes to the slash command's response_url as an ephemeral message with an actions block; a click arrives
as a `block_actions` payload (Socket Mode `interactive` envelope, or a signed form POST in HTTP mode) whose
`container.is_ephemeral` is true and which carries a fresh response_url. Bolt acks it at once; core's command
surface decides (only the admin who asked, within the time, once), and the answer replaces the question — buttons
gone — or, for a click that decides nothing (someone else's), goes to the clicker alone and the buttons stay.
https://docs.slack.dev/reference/interaction-payloads/block_actions-payload
"""
from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

from core.chat.confirm import Confirmation
from core.model import Author, InboundMessage
from bots.slack.markdown import to_mrkdwn

log = logging.getLogger("teambridge.slack.confirm")

CONFIRM = "teambridge_confirm"
CANCEL = "teambridge_cancel"
MAX_VALUE = 2000   # Slack's limit for a button's value


def confirm_blocks(text: str, confirmation: Confirmation) -> list[dict]:
    """The question (mrkdwn) and its two buttons; the token rides in each button's value."""
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "actions", "block_id": f"confirm-{confirmation.token[-40:]}", "elements": [
            {"type": "button", "action_id": CONFIRM, "value": confirmation.token, "style": "danger",
             "text": {"type": "plain_text", "text": confirmation.confirm_label}},
            {"type": "button", "action_id": CANCEL, "value": confirmation.token,
             "text": {"type": "plain_text", "text": confirmation.cancel_label}},
        ]},
    ]


class SlackConfirmations:
    def __init__(self, service: Any, *, author: Callable[..., Awaitable[Author]]) -> None:
        self._service = service
        self._author = author

    async def on_action(self, body: dict, respond: Any) -> None:
        """A click on Confirm or Cancel (already acked)."""
        actions = body.get("actions")
        action = actions[0] if isinstance(actions, list) and actions and isinstance(actions[0], dict) else {}
        token, user = action.get("value"), body.get("user")
        if (not isinstance(token, str) or not token or len(token) > MAX_VALUE or not isinstance(user, dict)
                or not isinstance(user.get("id"), str) or respond is None):
            log.info("a confirmation click without a token, a user or a response_url dropped")
            return
        team = body.get("team") if isinstance(body.get("team"), dict) else {}
        channel = body.get("channel") if isinstance(body.get("channel"), dict) else {}
        try:
            clicker = await self._author(user["id"], str(user.get("name") or ""), team=str(team.get("id") or ""))
        except Exception:
            log.exception("confirmation click: could not look up %s", user["id"])
            return
        msg = InboundMessage(platform="slack", workspace=str(team.get("id") or ""),
                             channel=str(channel.get("id") or ""), author=clicker, text="", mentions_bot=True)
        reply = await self._service.commands.confirm(msg, token, action.get("action_id") == CONFIRM)
        # settled: the answer replaces the question (the buttons go); else it is for the clicker alone
        await respond(text=to_mrkdwn(reply.text), response_type="ephemeral", replace_original=reply.settled)
