"""An answer a previous run left half-written (a crash, a shutdown past its grace period): marked as cut off on
the next start (the runner finds the replies in flight in the store)."""
from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from core.reply.tail import interrupted
from bots.slack.answer_blocks import fallback_text, plain_blocks, shown_text

log = logging.getLogger("teambridge.slack")


async def mark_interrupted(client: AsyncWebClient, channel: str, message_id: str, thread: str | None) -> None:
    shown = await _message_text(client, channel, message_id, thread)
    try:
        if shown is None:  # unreadable: replacing it would lose the answer's text
            raise SlackApiError("message not readable", {"ok": False, "error": "message_not_found"})
        text, had_blocks = shown
        if had_blocks:   # its text is in blocks (and its Stop button must go): replace them
            await client.chat_update(channel=channel, ts=message_id, text=fallback_text(interrupted(text)),
                                     blocks=plain_blocks(interrupted(text)))
        else:
            await client.chat_update(channel=channel, ts=message_id, markdown_text=interrupted(text))
    except SlackApiError as e:
        log.warning("could not edit interrupted message %s (%s); saying it in the thread",
                    message_id, e.response.get("error"))
        await client.chat_postMessage(channel=channel, thread_ts=thread or message_id,
                                      markdown_text=interrupted(""))


async def _message_text(client: AsyncWebClient, channel: str, ts: str,
                        thread: str | None) -> tuple[str, bool] | None:
    try:
        if thread and thread != ts:
            r = await client.conversations_replies(channel=channel, ts=thread, oldest=ts, latest=ts,
                                                   inclusive=True, limit=1)
        else:
            r = await client.conversations_history(channel=channel, oldest=ts, latest=ts,
                                                   inclusive=True, limit=1)
    except SlackApiError as e:
        log.warning("could not read message %s in %s (%s)", ts, channel, e.response.get("error"))
        return None
    for m in r.get("messages", []):
        if isinstance(m, dict) and m.get("ts") == ts:
            return shown_text(m)
    return None
