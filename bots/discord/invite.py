"""The OAuth2 invite URL printed at startup."""
from __future__ import annotations

import discord

# What the bot needs: read and answer in channels and threads, attach files, show history for reply chains.
PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    create_public_threads=True,
    read_message_history=True,
    attach_files=True,
    embed_links=True,
    add_reactions=True,
)
SCOPES = ("bot", "applications.commands")


def invite_url(client_id: int | str, permissions: discord.Permissions = PERMISSIONS) -> str:
    return discord.utils.oauth_url(client_id, permissions=permissions, scopes=SCOPES)
