"""The stand-in Discord's values: the stored message, the interaction record, the flag and permission bits they
use, and the JSON response discord.py accepts."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

INTENT_MESSAGE_CONTENT = 1 << 15
ADMINISTRATOR = 1 << 3
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7


@dataclass
class StoredMessage:
    id: str
    channel_id: str
    author_id: str
    content: str
    attachments: list[dict] = field(default_factory=list)   # payload dicts (+ "data" bytes for uploads)
    edits: int = 0
    flags: int = 0
    reference_id: str | None = None
    interaction_id: str | None = None
    payload: dict = field(default_factory=dict)
    history: list[str] = field(default_factory=list)        # every content it ever had, in order

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & FLAG_EPHEMERAL)

    def buttons(self) -> list[dict]:
        """The button components of its action rows."""
        return [c for row in self.payload.get("components") or [] for c in row.get("components", [])
                if c.get("type") == 2]

    def files(self) -> dict[str, bytes]:
        return {a["filename"]: a.get("data", b"") for a in self.attachments}


@dataclass
class InteractionRecord:
    id: str
    token: str
    name: str
    channel_id: str
    user_id: str
    created_at: float
    callbacks: list[dict] = field(default_factory=list)    # {"type", "flags", "at", "content"}
    message_id: str | None = None                          # a component interaction: the clicked message
    original_id: str | None = None
    followup_ids: list[str] = field(default_factory=list)

    @property
    def deferred_after(self) -> float | None:
        return self.callbacks[0]["at"] - self.created_at if self.callbacks else None



def public(u: dict) -> dict:
    """A user as Discord shows it (our own `_`-keys dropped)."""
    return {k: v for k, v in u.items() if not k.startswith("_")}


def public_att(a: dict) -> dict:
    """An attachment as Discord shows it (the stored bytes dropped)."""
    return {k: v for k, v in a.items() if k != "data"}


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # discord.py parses JSON only when Content-Type is exactly "application/json"
    # (aiohttp's json_response appends "; charset=utf-8", which discord.py would treat as text).
    resp = web.Response(status=status, body=json.dumps(data).encode(), headers=headers or {})
    resp.headers["Content-Type"] = "application/json"
    return resp

