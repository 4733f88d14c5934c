"""The one parse step for Slack: a payload becomes a clean, well-typed event, or a reason to drop it.

Everything after this step (events.py, app.py, files.py, assistant.py, commands.py, core) may index the
fields it reads without checking their types. Payloads are signed by Slack (or come over Socket Mode), so a
bad one is a bug or an attack, not a person: it is dropped with one log line, never a traceback.

Strings are also cleaned: JSON may carry lone UTF-16 surrogates ("\\ud800"), which Python keeps in a str and
which then fail to encode for SQLite, the OpenAI request or the next Slack call. They become U+FFFD.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from core.text import clean

MAX_TEXT = 40_000        # Slack truncates chat.postMessage text at 40,000 characters: longer is not from Slack
MAX_FILES = 20           # Slack allows 10 files per message
_TS = re.compile(r"^\d{1,12}\.\d{1,9}$")
_ID = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,63}$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Drop:
    """Why a payload is not looked at (for the one log line)."""
    reason: str


def _str(value: Any) -> bool:
    return isinstance(value, str)


def _file(f: Any) -> dict | Drop:
    if not isinstance(f, dict) or not _str(f.get("id")) or not _ID.match(f["id"]):
        return Drop("a file without an id")
    out: dict[str, Any] = {"id": f["id"]}
    for key in ("name", "title", "mimetype", "filetype", "url_private", "url_private_download", "file_access",
                "mode"):
        if key in f:
            if not _str(f[key]):
                return Drop(f"file {key} is not a string")
            out[key] = clean(f[key])
    if "size" in f:
        if not isinstance(f["size"], int) or isinstance(f["size"], bool) or f["size"] < 0:
            return Drop("file size is not a number of bytes")
        out["size"] = f["size"]
    return out


# (plain loops over constant tuples, no helper calls: every mention's envelopes pass here on the way to the model)
_MESSAGE_STRINGS = ("type", "subtype", "channel_type", "bot_id", "text", "team", "user")
_MESSAGE_IDS = (("channel", _ID, True), ("user", _ID, False), ("team", _ID, False), ("ts", _TS, True),
                ("thread_ts", _TS, False))
_MESSAGE_KEPT = ("type", "subtype", "channel_type", "bot_id", "team", "user", "channel", "ts", "thread_ts")


def parse_message(event: Any) -> dict | Drop:
    """A message or app_mention event as the adapter reads it: only the fields it uses, each of the right type
    and cleaned. Unknown subtypes pass through as strings (events.should_ignore decides about them)."""
    if not isinstance(event, dict):
        return Drop("the event is not an object")
    get = event.get
    for key in _MESSAGE_STRINGS:
        value = get(key)
        if value is not None and not isinstance(value, str):
            return Drop(f"{key} is not a string")
    for key, pattern, required in _MESSAGE_IDS:
        value = get(key)
        if value is None:
            if required:
                return Drop(f"no {key}")
        elif not isinstance(value, str) or not pattern.match(value):
            return Drop(f"{key} is not a Slack {'timestamp' if pattern is _TS else 'id'}")
    text = get("text") or ""
    if len(text) > MAX_TEXT:
        return Drop(f"text of {len(text):,} characters (Slack sends at most {MAX_TEXT:,})")
    out: dict[str, Any] = {}
    for key in _MESSAGE_KEPT:
        value = get(key)
        if value is not None:
            out[key] = value
    out["text"] = clean(text)
    if event.get("hidden"):
        out["hidden"] = True
    files = event.get("files")
    if files is not None:
        if not isinstance(files, list) or len(files) > MAX_FILES:
            return Drop("files is not a short list")
        parsed = [_file(f) for f in files]
        bad = next((p for p in parsed if isinstance(p, Drop)), None)
        if bad is not None:
            return bad
        out["files"] = parsed
    return out


_BODY_STRINGS = ("type", "team_id", "api_app_id", "event_id", "command", "text", "user_id", "channel_id",
                 "trigger_id", "response_url", "user_name", "enterprise_id")
_EVENT_STRINGS = ("channel", "user", "ts", "thread_ts", "event_ts", "subtype", "text", "team", "bot_id")


def envelope_problem(body: Any) -> str | None:
    """What is wrong with a request body (Events API callback, slash command, interaction) before bolt reads
    it, or None. bolt assumes its shapes and raises (with a traceback per request) on others."""
    if not isinstance(body, dict):
        return "the body is not an object"
    get = body.get
    for key in _BODY_STRINGS:
        value = get(key)
        if value is not None and not isinstance(value, str):
            return f"{key} is not a string"
    if "event" in body:
        event = body["event"]
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            return "the event has no type"
        get = event.get
        for key in _EVENT_STRINGS:
            value = get(key)
            if value is not None and not isinstance(value, str):
                return f"event {key} is not a string"
        thread = event.get("assistant_thread")
        if thread is not None and (not isinstance(thread, dict) or not all(
                _str(thread.get(k)) for k in ("channel_id", "thread_ts", "user_id"))
                or not isinstance(thread.get("context", {}), dict)):
            return "the assistant thread is not complete"
    if "authorizations" in body and not (isinstance(body["authorizations"], list)
                                         and all(isinstance(a, dict) for a in body["authorizations"])):
        return "authorizations is not a list of objects"
    return None
