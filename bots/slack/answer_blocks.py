"""Block Kit for answers' controls in Slack (bots/slack/controls.py handles the clicks).

A message with blocks shows the blocks, not `text`: the answer's text goes into a `markdown` block (standard
Markdown, as markdown_text renders it; a section's mrkdwn would not) and `text` carries the plain fallback that
notifications show. Every button's `value` is "<action>:<answer id>".
Slack's reference (docs.slack.dev/reference/block-kit): `markdown` block (≤12,000 characters), `actions` block
with `button` elements, `context_actions` block with a `feedback_buttons` element (positive_button /
negative_button, each with text, value and accessibility_label).
"""
from __future__ import annotations

from bots.slack.markdown import to_mrkdwn

PREFIX = "teambridge_answer_"          # every control's action_id starts with it (one bolt listener)
STOP = PREFIX + "stop"
RETRY = PREFIX + "retry"
FEEDBACK = PREFIX + "feedback"
MARKDOWN_BLOCK_MAX = 12_000            # a `markdown` block holds at most this many characters
FALLBACK_MAX = 3_000                   # `text` beside blocks is only the notification fallback


def _value(action: str, answer_id: str) -> str:
    return f"{action}:{answer_id}"


def _text_blocks(text: str) -> list[dict]:
    return [{"type": "markdown", "text": text[:MARKDOWN_BLOCK_MAX] or "…"}]


def plain_blocks(text: str) -> list[dict]:
    """A message of an answer without controls (an earlier part, or one posted while the answer is written)."""
    return _text_blocks(text)


def streaming_blocks(answer_id: str, text: str) -> list[dict]:
    """The message while its answer is written: the text, and Stop."""
    return _text_blocks(text) + [{"type": "actions", "block_id": f"{PREFIX}live", "elements": [
        {"type": "button", "action_id": STOP, "value": _value("stop", answer_id),
         "text": {"type": "plain_text", "text": "Stop"}}]}]


def ended_controls(answer_id: str, *, rate: bool = True) -> list[dict]:
    """What goes under an answer's last message once it has ended: 👍 / 👎 (not on a failed one) and Retry."""
    blocks: list[dict] = []
    if rate:
        blocks.append({"type": "context_actions", "block_id": f"{PREFIX}rate", "elements": [
            {"type": "feedback_buttons", "action_id": FEEDBACK,
             "positive_button": {"text": {"type": "plain_text", "text": "👍"}, "value": _value("up", answer_id),
                                 "accessibility_label": "This answer was helpful"},
             "negative_button": {"text": {"type": "plain_text", "text": "👎"}, "value": _value("down", answer_id),
                                 "accessibility_label": "This answer was not helpful"}}]})
    blocks.append({"type": "actions", "block_id": f"{PREFIX}ended", "elements": [
        {"type": "button", "action_id": RETRY, "value": _value("retry", answer_id),
         "text": {"type": "plain_text", "text": "Retry"}}]})
    return blocks


def ended_blocks(answer_id: str, text: str, *, rate: bool = True) -> list[dict]:
    return _text_blocks(text) + ended_controls(answer_id, rate=rate)


def fallback_text(text: str) -> str:
    return to_mrkdwn(text)[:FALLBACK_MAX] or "…"


def shown_text(message: dict) -> tuple[str, bool]:
    """What a message of ours shows, from conversations.history / replies: the text of its `markdown` blocks when it
    has them (its `text` is then only the fallback), else its markdown `text`; and whether it had blocks."""
    blocks = message.get("blocks")
    if isinstance(blocks, list):
        texts = [b["text"] for b in blocks
                 if isinstance(b, dict) and b.get("type") == "markdown" and isinstance(b.get("text"), str)]
        if texts:
            return "\n".join(texts), True
    text = message.get("text")
    return (text if isinstance(text, str) else ""), False
