"""The audit trail of tool calls: who asked, which tool, with what (a digest), who approved, what came of it.

Every function and MCP tool call the registry handles is one `ToolCallRecord` in the store; arguments are
kept only as a SHA-256 digest (they may hold personal data), enough to match a call against a complaint.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from typing import Protocol

from core.store.protocol import ToolCallRecord


class ToolAudit(Protocol):
    """Where records go (the Store implements it)."""

    async def record_tool_call(self, record: ToolCallRecord) -> None: ...


def digest(arguments: str) -> str:
    """SHA-256 of the arguments in a canonical form (key order and spacing do not matter)."""
    try:
        canonical = json.dumps(json.loads(arguments), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except ValueError:
        canonical = arguments
    return hashlib.sha256(canonical.encode()).hexdigest()


def audit_text(records: list[ToolCallRecord], *, as_json: bool = False) -> str:
    """`teambridge audit`: a table (or JSON lines' worth of objects) of the calls, oldest first."""
    if as_json:
        return json.dumps([asdict(r) for r in records], ensure_ascii=False, indent=2)
    if not records:
        return "No tool calls in this period."
    header = ("when (UTC)", "platform", "user", "assistant", "tool", "approval", "by", "outcome", "ms",
              "arguments", "conversation")
    rows = [header] + [(
        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r.at)), r.platform, r.user, r.assistant,
        f"{r.server}/{r.tool}" if r.server else r.tool, r.approval, r.approved_by or "-", r.outcome,
        str(r.duration_ms), r.arguments_sha256[:12], r.conversation) for r in records]
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)

