"""Who may use which assistant where, and who is an admin. Pure functions over config + InboundMessage.

Rules (per assistant, `AssistantConfig.access`):
- Deny wins: a denied user, role, channel (or one of its parents) or workspace is refused even if allowed elsewhere.
- An empty allow list means everyone. Users and roles are one "who" dimension: with allow_users and/or
  allow_roles set, the author must be listed OR hold a listed role. Channels and workspaces are "where"
  dimensions and must each pass as well.
- Channel rules also match `msg.channel_parents`: a Discord category allows/denies every channel in it, and a
  thread follows its parent channel.
- Direct messages are governed by `allow_dms` (the assistant's and the platform's); the channel allow list does
  not apply to them (a DM channel id is never listed), deny_channels still does.
- Discord DMs and the console carry no workspace (""): the workspace allow list does not apply to them; use
  allow_dms / allow_users to restrict those. Slack DMs do carry the team id and are checked.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from core.chat.routing import platform_rules
from core.model import Author, InboundMessage

if TYPE_CHECKING:  # pragma: no cover
    from core.config.schema import AssistantConfig, Config


def _label(assistant: "AssistantConfig") -> str:
    return f"the {assistant.name} assistant" if assistant.name else "this assistant"


def check_access(config: "Config", assistant: "AssistantConfig", msg: InboundMessage) -> str | None:
    """None when msg's author may use `assistant` here, else a short refusal to show the user (ephemeral where
    the platform has it). Call before any work or spending."""
    access = assistant.access
    who = _label(assistant)
    author = msg.author
    roles = set(author.roles)
    places = {msg.channel, *msg.channel_parents}
    if msg.thread:
        places.add(msg.thread)  # a Discord thread is itself a channel id
    places.discard("")

    # ---- deny first: deny beats allow everywhere
    if author.id in access.deny_users or roles & set(access.deny_roles):
        return f"Sorry, you don't have access to {who}."
    if places & set(access.deny_channels):
        return f"Sorry, {who} isn't available in this channel."
    if msg.workspace and msg.workspace in access.deny_workspaces:
        return f"Sorry, {who} isn't available in this workspace."

    # ---- direct messages
    if msg.is_direct:
        if not access.allow_dms or not platform_rules(config, msg.platform).allow_dms:
            return f"Sorry, {who} doesn't answer direct messages — mention it in a channel instead."

    # ---- allow lists
    allow_users, allow_roles = access.allow_users, access.allow_roles
    if (allow_users or allow_roles) and author.id not in allow_users and not roles & set(allow_roles):
        if allow_roles and not allow_users:
            return f"Sorry, {who} is limited to certain roles, and you don't have one of them."
        return f"Sorry, you don't have access to {who}."
    if msg.workspace and access.allow_workspaces and msg.workspace not in access.allow_workspaces:
        return f"Sorry, {who} isn't available in this workspace."
    if not msg.is_direct and access.allow_channels and not places & set(access.allow_channels):
        return f"Sorry, {who} isn't available in this channel."
    return None


def is_admin(config: "Config", author: Author) -> bool:
    """Listed in config.admins, or a platform admin (Slack workspace admin / Discord administrator)."""
    return author.id in config.admins or author.is_admin

