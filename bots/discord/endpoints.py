"""Point discord.py at DISCORD_API_URL / DISCORD_GATEWAY_URL.

Quirk: discord.py 2.x has no per-client base URL.
- REST: every `discord.http.Route` builds its URL in `__init__` from the class attribute `Route.BASE`.
  Interaction callbacks, followups and @original edits go through `AsyncWebhookAdapter` with the same
  `Route` but not through `HTTPClient`, so subclassing HTTPClient would miss them. `Route.BASE` is the one
  switch that covers all of them (and is what discord.py itself sets in `_set_api_version`).
- Gateway: a plain `discord.Client` never calls GET /gateway(/bot); it connects to the class attribute
  `DiscordWebSocket.DEFAULT_GATEWAY` (and falls back to it after INVALID_SESSION). After READY, resumes go
  to the server-provided `resume_gateway_url`.
Both are process-wide class attributes, so this module is the single place that sets them: the adapter
calls `apply()` in start() and `restore()` in stop(). One Discord bot per process is the design anyway.
"""
from __future__ import annotations

from dataclasses import dataclass

import discord
import yarl

DEFAULT_API_URL = "https://discord.com/api/v10"


@dataclass(frozen=True, slots=True)
class Endpoints:
    api_url: str = DEFAULT_API_URL
    gateway_url: str | None = None     # None: discord.py's default (wss://gateway.discord.gg/)

    @classmethod
    def from_env(cls, env) -> "Endpoints":
        api = (env.get("DISCORD_API_URL") or "").strip() or DEFAULT_API_URL
        gateway = (env.get("DISCORD_GATEWAY_URL") or "").strip() or None
        return cls(api.rstrip("/"), gateway)


@dataclass(frozen=True, slots=True)
class _Saved:
    base: str
    gateway: yarl.URL


def apply(endpoints: Endpoints) -> _Saved:
    """Set the class attributes; returns what was there so stop() can put it back (tests run many bots)."""
    saved = _Saved(discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    discord.http.Route.BASE = endpoints.api_url
    if endpoints.gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(endpoints.gateway_url)
    return saved


def restore(saved: _Saved) -> None:
    discord.http.Route.BASE = saved.base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved.gateway
