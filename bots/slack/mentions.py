"""Model output never pings a workspace: Slack's special mentions are defused in everything the bot posts.

Slack turns `<!channel>`, `<!here>`, `<!everyone>` (also with a `|label`) and user groups `<!subteam^S123>` into
notifications for everyone concerned, in `text` and `markdown_text` alike. A user can make a model echo them,
so every such sequence gets a zero-width space between `<` and `!`: it shows as written, and pings no one.
Person mentions (`<@U123>`) stay: the bot addresses the asker that way.
"""
from __future__ import annotations

import re
from typing import Any

ZWSP = "\u200b"
_SPECIAL = re.compile(r"<!(?=channel|here|everyone|subteam\^)", re.IGNORECASE)
_WORDS = ("channel", "here", "everyone", "subteam^")
_LONGEST = max(len("<!" + w) for w in _WORDS)

# Fields of Web API calls that Slack renders as message text.
_TEXT_FIELDS = ("text", "markdown_text", "initial_comment")


def neutralise(text: str) -> str:
    return _SPECIAL.sub("<" + ZWSP + "!", text) if "<!" in text else text


def _held_tail(text: str) -> int:
    """Length of the end of `text` that may be the start of a special mention completed by the next delta."""
    lowered = text[-_LONGEST:].lower()
    for n in range(min(len(lowered), _LONGEST), 0, -1):
        tail = lowered[-n:]
        if tail == "<" or any(("<!" + w).startswith(tail) and len(tail) < len("<!" + w) for w in _WORDS):
            return n
    return 0


class PingGuard:
    """For replies streamed as deltas: a special mention split across two deltas (`<!chan` + `nel>`) would
    slip past a per-call check, so the end of a delta that could start one is held until the next delta."""

    def __init__(self) -> None:
        self._held = ""

    def feed(self, delta: str) -> str:
        text = self._held + delta
        keep = _held_tail(text)
        self._held = text[len(text) - keep:] if keep else ""
        return neutralise(text[: len(text) - keep])

    def flush(self) -> str:
        held, self._held = self._held, ""
        return neutralise(held)


def neutralise_call(args: Any) -> Any:
    """A Web API call's arguments (json, form or query) with its message text fields defused."""
    if not isinstance(args, dict):
        return args
    out = dict(args)
    for key in _TEXT_FIELDS:
        if isinstance(out.get(key), str):
            out[key] = neutralise(out[key])
    if isinstance(out.get("blocks"), list):   # a `markdown` block holds the answer's text (bots/slack/answer_blocks)
        out["blocks"] = [_neutralise_block(b) for b in out["blocks"]]
    if isinstance(out.get("chunks"), list):
        out["chunks"] = [({**c, "text": neutralise(c["text"])} if isinstance(c, dict) and isinstance(c.get("text"), str)
                          else c) for c in out["chunks"]]
    return out


def _neutralise_block(block: Any) -> Any:
    """A Block Kit block with the text it shows defused: a `markdown` block's `text`, a section's text object."""
    if not isinstance(block, dict):
        return block
    text = block.get("text")
    if isinstance(text, str):
        return {**block, "text": neutralise(text)}
    if isinstance(text, dict) and isinstance(text.get("text"), str):
        return {**block, "text": {**text, "text": neutralise(text["text"])}}
    return block
