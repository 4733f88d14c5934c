"""Approval of tool calls by a person in the chat: the seam between the tool loop and each platform.

The registry asks an `Approver` (given per turn by the platform that received the message) before it runs a
tool under `require_approval`. The platform shows the request where the conversation is — Slack and Discord:
a message with Approve / Deny buttons; console: a y/N prompt — and answers with a `Decision`. Denied,
unanswered in time, or no way to ask: the tool does not run and the model is told so.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from core.config.schema import Config
    from core.model import Author

ARGUMENTS_SHOWN = 600      # characters of arguments shown in a request (Slack/Discord messages stay short)


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    tool: str                  # as the server names it
    server: str                # MCP server name; "" for a function tool
    arguments: str             # readable, already shortened (see readable_arguments)
    asker_id: str              # the person whose message led to the call
    asker_name: str = ""
    timeout: float = 300.0     # seconds to wait for a decision


@dataclass(frozen=True, slots=True)
class Decision:
    """`outcome`: approved | denied | timeout | unavailable (no way to ask here)."""
    approved: bool
    outcome: str
    by: str = ""               # who decided (user id), "" when nobody did


APPROVED = "approved"
DENIED = "denied"
TIMEOUT = "timeout"
UNAVAILABLE = "unavailable"


class Approver(Protocol):
    """Asks a person in the conversation. Implemented per platform; must return within request.timeout."""

    async def decide(self, request: ApprovalRequest) -> Decision: ...


def may_decide(config: "Config", asker_id: str, author: "Author") -> bool:
    """Whether `author` may approve or deny a call that `asker_id`'s message led to."""
    from core.chat.access import is_admin

    if is_admin(config, author):
        return True
    return config.approvals.approvers == "asker_or_admin" and author.id == asker_id


def readable_arguments(arguments: dict[str, Any] | str, limit: int = ARGUMENTS_SHOWN) -> str:
    """Arguments as `key: value` lines, cut at `limit` characters on a character boundary with a marker.

    Values are shown as JSON so that quotes, newlines and markup in them stay visibly data."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            return _cut(arguments, limit)
    if not isinstance(arguments, dict):
        return _cut(json.dumps(arguments, ensure_ascii=False), limit)
    lines = [f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in arguments.items()]
    return _cut("\n".join(lines) or "(no arguments)", limit)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit - 1].rstrip() + f"… ({len(text) - limit + 1} more characters)"


def decision_text(tool: str, decision: Decision) -> str:
    """What the model is told when a call was not approved (an error result; the tool did not run)."""
    match decision.outcome:
        case "denied":
            why = "the user denied it"
        case "timeout":
            why = "nobody approved it in time"
        case _:
            why = "approval is needed and cannot be asked for here"
    return json.dumps({"error": f"tool {tool} was not run: {why}. Do not retry it unless the user asks again."},
                      ensure_ascii=False)
