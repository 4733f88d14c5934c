"""Slash commands, one per entry of core's command table (core/chat/commands.py), and syncing them only when
they changed.

Syncing on every connect burns Discord's 200 command creates per day per guild and leaves clients showing
"This command is outdated" mid-rollout; we hash the exact payload discord.py would send and only bulk
overwrite a scope (a guild, or global) when its hash differs from the last successful sync.
"""
from __future__ import annotations

import hashlib
import json
import logging
from typing import Awaitable, Callable, Protocol, Sequence

import discord
from discord import app_commands

from core.chat.commands import CommandSpec

log = logging.getLogger("teambridge.discord")

AskHandler = Callable[[discord.Interaction, str, discord.Attachment | None], Awaitable[None]]
TextHandler = Callable[[discord.Interaction, str, str], Awaitable[None]]  # (interaction, command, argument)


def discord_usage(spec: CommandSpec) -> str:
    """How a command is typed in Discord: `/reset [user:]`, `/assistant name:`."""
    words = [f"/{spec.name}"] + [f"{a.name}:" if a.required else f"[{a.name}:]" for a in spec.args]
    return " ".join(words)


def build_tree(client: discord.Client, *, specs: Sequence[CommandSpec], assistants: list[str], on_ask: AskHandler,
               on_text: TextHandler) -> app_commands.CommandTree:
    """One slash command per entry of core's command table. `ask` goes to on_ask (it answers in the channel);
    every other command to on_text with its one argument as text (a user as their id)."""
    tree = app_commands.CommandTree(client)
    for spec in specs:
        command = _ask(spec, on_ask) if spec.name == "ask" else _text_command(spec, assistants, on_text)
        if spec.audience == "admins":
            command.default_permissions = discord.Permissions(administrator=True)
        tree.add_command(command)
    return tree


def _ask(spec: CommandSpec, on_ask: AskHandler) -> app_commands.Command:
    async def ask(interaction: discord.Interaction, prompt: str, file: discord.Attachment | None = None) -> None:
        await on_ask(interaction, prompt, file)

    described = app_commands.describe(**{a.name: a.help for a in spec.args if a.help})(ask)
    return app_commands.Command(name=spec.name, description=spec.summary, callback=described)


def _text_command(spec: CommandSpec, assistants: list[str], on_text: TextHandler) -> app_commands.Command:
    # discord.py reads an option's type from the callback's annotation, so each argument shape has its own
    # callback; `value` is renamed to the table's argument name.
    name = spec.name
    if len(spec.args) > 1:
        raise ValueError(f"/{name}: Discord text commands take at most one argument")
    arg = spec.args[0] if spec.args else None
    if arg is None:
        async def callback(interaction: discord.Interaction) -> None:
            await on_text(interaction, name, "")
    elif arg.kind == "user" and arg.required:
        async def callback(interaction: discord.Interaction, value: discord.User) -> None:
            await on_text(interaction, name, str(value.id))
    elif arg.kind == "user":
        async def callback(interaction: discord.Interaction, value: discord.User | None = None) -> None:
            await on_text(interaction, name, str(value.id) if value else "")
    elif arg.required:
        async def callback(interaction: discord.Interaction, value: str) -> None:
            await on_text(interaction, name, value)
    else:
        async def callback(interaction: discord.Interaction, value: str = "") -> None:
            await on_text(interaction, name, value)
    if arg is not None:
        callback = app_commands.rename(value=arg.name)(callback)
        if arg.help:
            callback = app_commands.describe(value=arg.help)(callback)
        if name == "assistant":
            # Discord allows at most 25 fixed choices; the list is part of the synced payload, so a config
            # change that adds an assistant triggers a re-sync.
            callback = app_commands.choices(value=[app_commands.Choice(name=n, value=n) for n in assistants[:25]])(
                callback)
    return app_commands.Command(name=name, description=spec.summary, callback=callback)


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
