"""The stand-in Slack's shapes: samples from the official specs (bots/standins/specs/slack: java-slack-sdk's
JSON samples of every API response and event), with their placeholder values pruned, and the message store's
`Message`."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from bots.standins import SPECS as _ALL_SPECS

SPECS = _ALL_SPECS / "slack"

_PLACEHOLDERS = ("", 123, 12345, 12.3)


def sample(kind: str, name: str) -> dict:
    return json.loads((SPECS / kind / f"{name}.json").read_text())


def prune(obj: Any) -> Any:
    """Drop the sample's placeholder values ("" / 123 / 12345) and containers left empty."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            v = prune(v)
            if v is None or (isinstance(v, (dict, list)) and not v):
                continue
            out[k] = v
        return out
    if isinstance(obj, list):
        return [x for x in (prune(v) for v in obj) if x is not None and x != {} and x != []]
    if not isinstance(obj, bool) and obj in _PLACEHOLDERS:
        return None
    return obj


@dataclass
class Message:
    channel: str
    ts: str
    user: str                          # author user id (the bot's user id for bot messages)
    text: str = ""                     # current text (markdown_text, text, or blocks' text)
    thread_ts: str | None = None
    is_bot: bool = False
    markdown: bool = False             # posted with markdown_text (standard Markdown rendering)
    history: list[str] = field(default_factory=list)  # every text the message had, in order
    streaming: bool = False
    stream_started: float = 0.0
    tasks: dict[str, dict] = field(default_factory=dict)
    files: list[dict] = field(default_factory=list)
    api_calls: int = 0                 # Web API calls that created or changed it
    blocks: list[dict] = field(default_factory=list)   # Block Kit blocks as last posted / updated

    def buttons(self) -> list[dict]:
        """The button elements of its actions blocks, each with its block_id."""
        return [{**e, "block_id": b.get("block_id", "")} for b in self.blocks if b.get("type") == "actions"
                for e in b.get("elements", []) if e.get("type") == "button"]

    def feedback_buttons(self) -> list[dict]:
        """Slack's 👍 / 👎 (feedback_buttons elements of context_actions blocks): their two buttons, each with
        the element's action_id and block_id."""
        return [{**e[side], "action_id": e.get("action_id", ""), "block_id": b.get("block_id", ""),
                 "element_type": "feedback_buttons"}
                for b in self.blocks if b.get("type") == "context_actions"
                for e in b.get("elements", []) if e.get("type") == "feedback_buttons"
                for side in ("positive_button", "negative_button")]

    def as_api(self) -> dict:
        m = {"type": "message", "ts": self.ts, "text": self.text, "user": self.user}
        if self.is_bot:
            m["bot_id"] = "BBOT"
        if self.thread_ts:
            m["thread_ts"] = self.thread_ts
        if self.files:
            m["files"] = self.files
        if self.blocks:
            m["blocks"] = self.blocks
        return m



def blocks_of(a: dict) -> list[dict]:
    """A call's `blocks` argument (JSON text in a form-encoded call)."""
    blocks = a.get("blocks") or []
    return json.loads(blocks) if isinstance(blocks, str) else list(blocks)
