"""Slash commands (/ask, /reset, /assistant, /help, /usage, /reload) and syncing them only when they changed.

Syncing on every connect burns Discord's 200 command creates per day per guild and leaves clients showing
"This command is outdated" mid-rollout; we hash the exact payload discord.py would send and only bulk
overwrite a scope (a guild, or global) when its hash differs from the last successful sync.
"""
from __future__ import annotations

import hashlib
import json
import logging
from typing import Awaitable, Callable, Protocol

import discord
from discord import app_commands

log = logging.getLogger("teambridge.discord")

AskHandler = Callable[[discord.Interaction, str, discord.Attachment | None], Awaitable[None]]
TextHandler = Callable[[discord.Interaction, str, str], Awaitable[None]]  # (interaction, command, argument)


def build_tree(client: discord.Client, *, assistants: list[str], on_ask: AskHandler,
               on_text: TextHandler) -> app_commands.CommandTree:
    tree = app_commands.CommandTree(client)

    @tree.command(name="ask", description="Ask the assistant (optionally with a file)")
    @app_commands.describe(prompt="Your question", file="A file for the assistant (image, data, document)")
    async def ask(interaction: discord.Interaction, prompt: str, file: discord.Attachment | None = None) -> None:
        await on_ask(interaction, prompt, file)

    @tree.command(name="reset", description="Start a new conversation here")
    @app_commands.describe(user="Admins: reset this member's conversation instead of yours")
    async def reset(interaction: discord.Interaction, user: discord.User | None = None) -> None:
        await on_text(interaction, "reset", str(user.id) if user else "")

    # Discord allows at most 25 fixed choices; the list is part of the synced payload, so a config change
    # that adds an assistant triggers a re-sync.
    choices = [app_commands.Choice(name=n, value=n) for n in assistants[:25]]

    @tree.command(name="assistant", description="Choose which assistant answers you here")
    @app_commands.describe(name="Assistant")
    @app_commands.choices(name=choices)
    async def assistant(interaction: discord.Interaction, name: app_commands.Choice[str]) -> None:
        await on_text(interaction, "assistant", name.value)

    @tree.command(name="help", description="What this bot can do")
    async def help_(interaction: discord.Interaction) -> None:
        await on_text(interaction, "help", "")

    @tree.command(name="usage", description="Token usage (admins)")
    @app_commands.default_permissions(administrator=True)
    @app_commands.describe(period="e.g. today, 7d, 30d")
    async def usage(interaction: discord.Interaction, period: str = "") -> None:
        await on_text(interaction, "usage", period)

    @tree.command(name="reload", description="Reload config.yaml now (admins)")
    @app_commands.default_permissions(administrator=True)
    async def reload(interaction: discord.Interaction) -> None:
        await on_text(interaction, "reload", "")

    return tree


def payload_hash(tree: app_commands.CommandTree) -> str:
    payload = sorted((c.to_dict(tree) for c in tree.get_commands()), key=lambda c: c["name"])
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class SyncDigests(Protocol):
    """Where the last synced payload hash per (application, scope) is kept: core's Store (shared by every
    process on its database), or MemoryDigests without one."""

    async def get_sync_digest(self, platform: str, scope: str) -> str | None: ...
    async def save_sync_digest(self, platform: str, scope: str, digest: str) -> None: ...


class MemoryDigests:
    """SyncDigests for one run (no store): commands are synced once per start."""

    def __init__(self) -> None:
        self._digests: dict[tuple[str, str], str] = {}

    async def get_sync_digest(self, platform: str, scope: str) -> str | None:
        return self._digests.get((platform, scope))

    async def save_sync_digest(self, platform: str, scope: str, digest: str) -> None:
        self._digests[(platform, scope)] = digest


async def sync_if_changed(tree: app_commands.CommandTree, application_id: int, guilds: list[str],
                          state: SyncDigests) -> list[str]:
    """Sync each configured guild (instant), or globally when none is configured. Returns synced scopes."""
    digest = payload_hash(tree)
    synced: list[str] = []
    scopes: list[discord.Object | None] = [discord.Object(int(g)) for g in guilds] or [None]
    for guild in scopes:
        scope = str(guild.id) if guild else "global"
        key = f"{application_id}:{scope}"
        if await state.get_sync_digest("discord", key) == digest:
            continue
        if guild is not None:
            tree.copy_global_to(guild=guild)
        await tree.sync(guild=guild)
        await state.save_sync_digest("discord", key, digest)
        synced.append(scope)
        log.info("synced slash commands to %s", "guild " + scope if guild else "all servers (global)")
    return synced
