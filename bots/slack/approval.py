"""Approval of tool calls in Slack: a message in the conversation's thread with Approve / Deny buttons.

The message shows the tool and its arguments (shortened, and escaped so nothing in them can mention anyone or
render as a link); a click arrives as a `block_actions` payload (Socket Mode `interactive` envelope, or a
signed form POST in HTTP mode), which bolt acks at once. Only the person who asked or an admin decides; anyone
else gets an ephemeral "not yours to approve". When the decision is made (or the time is up) the message is
edited to say so, without buttons.

Pending requests live in this process: a click that reaches another process (or this one after a restart)
finds nothing waiting and is told so.
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from slack_sdk.errors import SlackApiError

from core.model import Author
from core.tools.approval import APPROVED, DENIED, TIMEOUT, ApprovalRequest, Decision, may_decide

log = logging.getLogger("teambridge.slack.approval")

APPROVE = "teambridge_approve"
DENY = "teambridge_deny"
NOT_YOURS = "This tool call is not yours to approve: only the person who asked or an admin can decide."
NOT_WAITING = "This approval request is no longer waiting for an answer."


def escape(text: str) -> str:
    """Slack's three control characters: with them escaped, `<!channel>` or `<@U…>` in data stays text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass
class _Pending:
    request: ApprovalRequest
    channel: str
    ts: str
    decided: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class SlackApprovals:
    """Every approval request this process is waiting on, and the handler for the button clicks."""

    def __init__(self, client: Any, *, config: Callable[[], Any],
                 author: Callable[..., Awaitable[Author]]) -> None:
        self._client = client
        self._config = config
        self._author = author
        self._pending: dict[str, _Pending] = {}

    def approver(self, *, channel: str, thread_ts: str | None) -> "SlackApprover":
        return SlackApprover(self, channel=channel, thread_ts=thread_ts)

    async def ask(self, request: ApprovalRequest, *, channel: str, thread_ts: str | None) -> Decision:
        key = uuid.uuid4().hex
        text = _request_text(request)
        blocks = [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "actions", "block_id": f"approval-{key}", "elements": [
                {"type": "button", "action_id": APPROVE, "value": key, "style": "primary",
                 "text": {"type": "plain_text", "text": "Approve"}},
                {"type": "button", "action_id": DENY, "value": key, "style": "danger",
                 "text": {"type": "plain_text", "text": "Deny"}},
            ]},
        ]
        posted = await self._client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=text, blocks=blocks)
        pending = _Pending(request=request, channel=channel, ts=posted["ts"])
        self._pending[key] = pending
        try:
            decision = await asyncio.wait_for(asyncio.shield(pending.decided), timeout=request.timeout)
        except TimeoutError:
            decision = Decision(False, TIMEOUT)
        finally:
            self._pending.pop(key, None)
        await self._settle(pending, decision)
        return decision

    async def on_action(self, body: dict) -> None:
        """A click on Approve or Deny (already acked)."""
        action = (body.get("actions") or [{}])[0]
        key = str(action.get("value") or "")
        user = (body.get("user") or {}).get("id", "")
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id", "")
        thread_ts = (body.get("container") or {}).get("thread_ts") or (body.get("message") or {}).get("thread_ts")
        pending = self._pending.get(key)
        if pending is None or pending.decided.done():
            await self._ephemeral(channel, user, thread_ts, NOT_WAITING)
            return
        team = (body.get("team") or {}).get("id", "")
        clicker = await self._author(user, (body.get("user") or {}).get("name", ""), team=team)
        if not may_decide(self._config(), pending.request.asker_id, clicker):
            log.info("approval of %s: %s is not the asker nor an admin", pending.request.tool, user)
            await self._ephemeral(channel, user, thread_ts, NOT_YOURS)
            return
        approved = action.get("action_id") == APPROVE
        pending.decided.set_result(Decision(approved, APPROVED if approved else DENIED, by=user))

    async def _settle(self, pending: _Pending, decision: Decision) -> None:
        tool = f"`{escape(pending.request.tool)}`"
        match decision.outcome:
            case "approved":
                verdict = f"✅ {tool} approved by <@{decision.by}>"
            case "denied":
                verdict = f"🚫 {tool} denied by <@{decision.by}> — it was not run"
            case _:
                verdict = f"⏱️ No answer in time — {tool} was not run"
        text = _request_text(pending.request) + "\n" + verdict
        try:
            await self._client.chat_update(channel=pending.channel, ts=pending.ts, text=text,
                                           blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text}}])
        except SlackApiError as e:
            log.warning("could not update the approval message %s (%s)", pending.ts, e.response.get("error"))

    async def _ephemeral(self, channel: str, user: str, thread_ts: str | None, text: str) -> None:
        try:
            await self._client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)
        except SlackApiError as e:
            log.warning("could not tell %s about an approval click (%s)", user, e.response.get("error"))


class SlackApprover:
    """core.tools.approval.Approver for one Slack conversation place."""

    def __init__(self, approvals: SlackApprovals, *, channel: str, thread_ts: str | None) -> None:
        self._approvals = approvals
        self._channel = channel
        self._thread_ts = thread_ts

    async def decide(self, request: ApprovalRequest) -> Decision:
        return await self._approvals.ask(request, channel=self._channel, thread_ts=self._thread_ts)


def _request_text(request: ApprovalRequest) -> str:
    where = f" on *{escape(request.server)}*" if request.server else ""
    who = escape(request.asker_name or request.asker_id)
    minutes = request.timeout / 60
    wait = f"{minutes:g} min" if request.timeout >= 60 else f"{request.timeout:g} s"
    # ``` keeps the arguments literal; a ``` inside them is broken up so it cannot end the block early
    arguments = escape(request.arguments).replace("```", "`\u200b``")
    return (f"🔐 *{escape(request.tool)}*{where} needs approval to run (asked by {who}; waiting {wait}):\n"
            f"```{arguments}```")
