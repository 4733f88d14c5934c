"""Who may use which assistant where: a message from user U in channel C -> allowed, or the refusal the user reads."""
from __future__ import annotations

import pytest

from core.chat.access import check_access, is_admin
from core.config.schema import AccessConfig, AssistantConfig, Config, DiscordConfig
from core.model import Author, InboundMessage


def make(access: dict | None = None, **config_kw) -> tuple[Config, AssistantConfig]:
    assistant = AssistantConfig(name="math", model="gpt-4.1-mini", access=AccessConfig(**(access or {})))
    config = Config(default_assistant="math", assistants={"math": assistant}, **config_kw)
    return config, assistant


def msg(user: str = "U1", *, roles: tuple[str, ...] = (), channel: str = "C1", workspace: str = "T1",
        parents: tuple[str, ...] = (), direct: bool = False, platform: str = "slack", thread: str | None = None,
        admin: bool = False) -> InboundMessage:
    return InboundMessage(platform=platform, workspace=workspace, channel=channel,
                          author=Author(id=user, name=user, roles=roles, is_admin=admin), text="hi",
                          thread=thread, is_direct=direct, channel_parents=parents)


def test_no_rules_everyone_is_allowed_everywhere():
    config, a = make()
    assert check_access(config, a, msg()) is None
    assert check_access(config, a, msg(direct=True, workspace="")) is None


def test_allowed_and_other_users():
    config, a = make({"allow_users": ["U1"]})
    assert check_access(config, a, msg("U1")) is None
    refusal = check_access(config, a, msg("U2"))
    assert refusal == "Sorry, you don't have access to the math assistant."


def test_denied_user_is_refused_even_when_allowed():
    config, a = make({"allow_users": ["U1", "U2"], "deny_users": ["U2"]})
    assert check_access(config, a, msg("U1")) is None
    assert "don't have access to the math assistant" in check_access(config, a, msg("U2"))


def test_roles_allow_and_deny():
    config, a = make({"allow_roles": ["engineers"], "deny_roles": ["interns"]})
    assert check_access(config, a, msg(roles=("engineers",), platform="discord")) is None
    no_role = check_access(config, a, msg(roles=("sales",), platform="discord"))
    assert no_role == "Sorry, the math assistant is limited to certain roles, and you don't have one of them."
    # deny beats allow: an engineer who is also an intern is refused
    assert "don't have access" in check_access(config, a, msg(roles=("engineers", "interns"), platform="discord"))


def test_allowed_user_or_allowed_role_is_enough():
    config, a = make({"allow_users": ["U9"], "allow_roles": ["engineers"]})
    assert check_access(config, a, msg("U9")) is None                       # listed, no role
    assert check_access(config, a, msg("U1", roles=("engineers",))) is None  # role, not listed
    assert check_access(config, a, msg("U1")) is not None


def test_channels_and_category_parents():
    config, a = make({"allow_channels": ["CAT-ai"], "deny_channels": ["C-secret"]})
    # a channel inside the allowed Discord category
    assert check_access(config, a, msg(channel="C-general", parents=("CAT-ai",), platform="discord")) is None
    # a thread whose parent channel is in the allowed category
    assert check_access(config, a, msg(channel="TH1", parents=("C-general", "CAT-ai"), platform="discord")) is None
    outside = check_access(config, a, msg(channel="C-random", parents=("CAT-other",), platform="discord"))
    assert outside == "Sorry, the math assistant isn't available in this channel."
    # deny beats allow: a denied channel inside the allowed category
    denied = check_access(config, a, msg(channel="C-secret", parents=("CAT-ai",), platform="discord"))
    assert denied == "Sorry, the math assistant isn't available in this channel."


def test_denied_category_covers_its_channels_and_threads():
    config, a = make({"deny_channels": ["CAT-private"]})
    assert check_access(config, a, msg(channel="C2", parents=("CAT-private",))) is not None
    assert check_access(config, a, msg(channel="TH", parents=("C2", "CAT-private"))) is not None
    assert check_access(config, a, msg(channel="C3", parents=("CAT-public",))) is None


def test_workspaces():
    config, a = make({"allow_workspaces": ["T1"]})
    assert check_access(config, a, msg(workspace="T1")) is None
    other = check_access(config, a, msg(workspace="T2"))
    assert other == "Sorry, the math assistant isn't available in this workspace."


def test_dms_off_for_the_assistant():
    config, a = make({"allow_dms": False})
    refusal = check_access(config, a, msg(direct=True, channel="D1"))
    assert refusal == "Sorry, the math assistant doesn't answer direct messages — mention it in a channel instead."
    assert check_access(config, a, msg(channel="C1")) is None


def test_dms_off_for_the_platform():
    config, a = make(discord=DiscordConfig(allow_dms=False))
    assert check_access(config, a, msg(direct=True, platform="discord", workspace="", channel="D1")) is not None
    assert check_access(config, a, msg(direct=True, platform="slack", channel="D1")) is None


def test_dm_is_not_refused_by_the_channel_allow_list():
    config, a = make({"allow_channels": ["C1"]})
    assert check_access(config, a, msg(direct=True, channel="D7")) is None
    assert check_access(config, a, msg(channel="C7")) is not None


def test_admins():
    config, _ = make(admins=["U-boss"])
    assert is_admin(config, Author(id="U-boss"))
    assert is_admin(config, Author(id="U-owner", is_admin=True))  # platform admin flag
    assert not is_admin(config, Author(id="U1"))


@pytest.mark.parametrize("user,roles,allowed", [
    ("U1", (), True), ("U2", (), False), ("U3", ("mods",), True), ("U1", ("banned",), False)])
def test_matrix(user, roles, allowed):
    config, a = make({"allow_users": ["U1"], "allow_roles": ["mods"], "deny_roles": ["banned"]})
    assert (check_access(config, a, msg(user, roles=roles)) is None) is allowed
