"""manifest.yaml asks for exactly what the adapter uses: its events, the Web API methods it calls, the command.

Scopes per method and event from docs.slack.dev/reference (methods/<name>, events/<name>: "Required scopes").
"""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from core.config.schema import SlackConfig

ROOT = Path(__file__).resolve().parents[2]
HISTORY = {"channels:history", "groups:history", "im:history", "mpim:history"}

METHOD_SCOPES: dict[str, set[str]] = {
    "auth_test": set(),
    "chat_postMessage": {"chat:write"}, "chat_update": {"chat:write"}, "chat_postEphemeral": {"chat:write"},
    "chat_startStream": {"chat:write"}, "chat_appendStream": {"chat:write"}, "chat_stopStream": {"chat:write"},
    "assistant_threads_setStatus": {"assistant:write"}, "assistant_threads_setTitle": {"assistant:write"},
    "assistant_threads_setSuggestedPrompts": {"assistant:write"},
    "conversations_replies": HISTORY, "conversations_history": HISTORY,
    "files_info": {"files:read"}, "files_upload_v2": {"files:write"},
    "users_info": {"users:read"},
}
EVENT_SCOPES: dict[str, set[str]] = {
    "app_mention": {"app_mentions:read"}, "message.channels": {"channels:history"},
    "message.groups": {"groups:history"}, "message.im": {"im:history"}, "message.mpim": {"mpim:history"},
    # agent_view's events (docs.slack.dev/reference/events/app_home_opened, .../app_context_changed): no scope
    "app_home_opened": set(), "app_context_changed": set(),
}


def manifest() -> dict:
    return yaml.safe_load((ROOT / "manifest.yaml").read_text())


def methods_called() -> set[str]:
    source = "\n".join(p.read_text() for p in (ROOT / "bots" / "slack").glob("*.py"))
    return set(re.findall(r"client\.([A-Za-z0-9_]+)\(", source))


def test_every_web_api_method_the_adapter_calls_is_known_here():
    assert methods_called() <= set(METHOD_SCOPES), methods_called() - set(METHOD_SCOPES)


def test_the_manifest_asks_for_exactly_the_scopes_used():
    m = manifest()
    events = m["settings"]["event_subscriptions"]["bot_events"]
    needed = {"commands", "files:read"}  # the slash command; downloading url_private needs files:read
    for method in methods_called():
        needed |= METHOD_SCOPES[method]
    for event in events:
        needed |= EVENT_SCOPES[event]
    assert set(m["oauth_config"]["scopes"]["bot"]) == needed
    assert set(events) == set(EVENT_SCOPES)


def test_the_manifest_has_the_agent_surface_and_the_configured_command():
    m = manifest()
    assert m["features"]["agent_view"]["agent_description"] and "assistant_view" not in m["features"]
    assert m["features"]["app_home"]["messages_tab_enabled"] is True   # DMs
    assert [c["command"] for c in m["features"]["slash_commands"]] == [SlackConfig().slash_command]
    assert m["settings"]["socket_mode_enabled"] is True
