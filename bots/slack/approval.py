"""Approval of tool calls in Slack: a message in the conversation's thread with Approve / Deny buttons.

The message shows the tool and its arguments (shortened, and escaped so nothing in them can mention anyone or
render as a link); a click arrives as a `block_actions` payload (Socket Mode `interactive` envelope, or a
signed form POST in HTTP mode), which bolt acks at once. Only the person who asked or an admin decides; anyone
else gets an ephemeral "not yours to approve". When the decision is made (or the time is up) the message is
edited to say so, without buttons.

A request waits in the process running its turn, but Slack delivers the click to whichever process it picks
(Socket Mode spreads envelopes over the open connections; HTTP mode runs behind a balancer). A click for a
request this process is not waiting on is published as a signal (core/store/signals.py); the process that waits
for it decides and acknowledges. No acknowledgement within ACK_WAIT seconds — nobody waits any more (time ran
out, or the process restarted) — and the person is told so.
"""
from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Awaitable, Callable

from slack_sdk.errors import SlackApiError

from core.model import Author
from core.store.signals import Signals
from core.tools.approval import APPROVED, DENIED, TIMEOUT, ApprovalRequest, Decision, may_decide

log = logging.getLogger("teambridge.slack.approval")

APPROVE = "teambridge_approve"
DENY = "teambridge_deny"
NOT_YOURS = "This tool call is not yours to approve: only the person who asked or an admin can decide."
NOT_WAITING = "This approval request is no longer waiting for an answer."
CLICKS = "slack.approval.click"   # signal topics: a click for a request some process waits on ...
ACKS = "slack.approval.ack"       # ... and that process saying it took it
ACK_WAIT = 10.0   # Slack was acked at once; this only bounds how long the clicker waits to hear "no longer waiting"


def escape(text: str) -> str:
    """Slack's three control characters: with them escaped, `<!channel>` or `<@U…>` in data stays text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(frozen=True, slots=True)
class Click:
    """A click on Approve or Deny, as read from Slack's block_actions payload."""
    key: str
    approve: bool
    user: str
    user_name: str
    team: str
    channel: str
    thread_ts: str | None
    click_id: str = ""   # this click, when passed on: the waiting process acknowledges it by this id

    @classmethod
    def from_body(cls, body: dict) -> "Click":
        action = (body.get("actions") or [{}])[0]
        container = body.get("container") or {}
        return cls(key=str(action.get("value") or ""), approve=action.get("action_id") == APPROVE,
                   user=str((body.get("user") or {}).get("id", "")),
                   user_name=str((body.get("user") or {}).get("name", "")),
                   team=str((body.get("team") or {}).get("id", "")),
                   channel=str((body.get("channel") or {}).get("id") or container.get("channel_id", "")),
                   thread_ts=container.get("thread_ts") or (body.get("message") or {}).get("thread_ts"))


@dataclass
class _Pending:
    request: ApprovalRequest
    channel: str
    ts: str
    decided: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class SlackApprovals:
    """Every approval request this process is waiting on, and the handler for the button clicks."""

    def __init__(self, client: Any, *, config: Callable[[], Any], author: Callable[..., Awaitable[Author]],
                 signals: Signals, spawn: Callable[[Awaitable[None], str], None]) -> None:
        self._client = client
        self._config = config
        self._author = author
        self._signals = signals
        self._spawn = spawn
        self._pending: dict[str, _Pending] = {}
        self._acks: dict[str, asyncio.Future] = {}
        self._unlisten = [signals.listen(CLICKS, self._heard_click), signals.listen(ACKS, self._heard_ack)]

    def close(self) -> None:
        for unlisten in self._unlisten:
            unlisten()
        self._unlisten = []

    def approver(self, *, channel: str, thread_ts: str | None,
                 before_prompt: Callable[[], None] | None = None) -> "SlackApprover":
        return SlackApprover(self, channel=channel, thread_ts=thread_ts, before_prompt=before_prompt)

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
        click = Click.from_body(body)
        if click.key in self._pending:
            await self._decide(click)
            return
        if self._signals.shared and click.key:   # another process may be the one waiting
            click = replace(click, click_id=uuid.uuid4().hex)
            ack = self._acks[click.click_id] = asyncio.get_running_loop().create_future()
            try:
                await self._signals.publish(CLICKS, json.dumps(asdict(click)))
                await asyncio.wait_for(ack, ACK_WAIT)
                return
            except TimeoutError:
                pass
            except Exception:
                log.exception("could not pass an approval click on to the other processes")
            finally:
                self._acks.pop(click.click_id, None)
        await self._ephemeral(click.channel, click.user, click.thread_ts, NOT_WAITING)

    def _heard_click(self, payload: str) -> None:
        try:
            click = Click(**json.loads(payload))
        except (ValueError, TypeError):
            log.warning("dropped a malformed approval click signal")
            return
        if click.key in self._pending:   # this process waits on it: decide here, and say so to the sender
            self._spawn(self._decide_for_another(click), f"slack-approval-{click.key}")

    def _heard_ack(self, key: str) -> None:
        ack = self._acks.get(key)
        if ack is not None and not ack.done():
            ack.set_result(None)

    async def _decide_for_another(self, click: Click) -> None:
        await self._signals.publish(ACKS, click.click_id)
        await self._decide(click)

    async def _decide(self, click: Click) -> None:
        pending = self._pending.get(click.key)
        if pending is None or pending.decided.done():
            await self._ephemeral(click.channel, click.user, click.thread_ts, NOT_WAITING)
            return
        clicker = await self._author(click.user, click.user_name, team=click.team)
        if not may_decide(self._config(), pending.request.asker_id, clicker):
            log.info("approval of %s: %s is not the asker nor an admin", pending.request.tool, click.user)
            await self._ephemeral(click.channel, click.user, click.thread_ts, NOT_YOURS)
            return
        if not pending.decided.done():
            pending.decided.set_result(Decision(click.approve, APPROVED if click.approve else DENIED, by=click.user))

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

    def __init__(self, approvals: SlackApprovals, *, channel: str, thread_ts: str | None,
                 before_prompt: Callable[[], None] | None = None) -> None:
        self._approvals = approvals
        self._channel = channel
        self._thread_ts = thread_ts
        self._before_prompt = before_prompt   # the reply's thinking status gives way to the prompt (target.py)

    async def decide(self, request: ApprovalRequest) -> Decision:
        if self._before_prompt is not None:
            self._before_prompt()
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
