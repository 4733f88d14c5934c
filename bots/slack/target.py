"""Where one answer goes in Slack: a thread (or a DM), as markdown_text messages or a native stream."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from core.model import OutboundFile
from core.ports import Limits, OnPosted, ReplyStream
from core.streaming import EditStream
from bots.slack.markdown import to_mrkdwn
from bots.slack.stream import NativeStream

log = logging.getLogger(__name__)

# chat.update rejects `text` over 4,000 characters (msg_too_long); markdown_text takes 12,000, but
# core's EditStream splits at max_chars, and staying under 4,000 keeps every surface (and the legacy
# text fallback) valid. About one edit a second per message.
LIMITS = Limits(max_chars=3_900, edit_interval=1.0)


@dataclass(frozen=True, slots=True)
class ReplyPlace:
    channel: str
    thread_ts: str | None       # None: top level (a DM answered in place)
    user: str                   # who asked: recipient of the stream and of ephemeral notices
    team: str


@dataclass(frozen=True, slots=True)
class StreamSettings:
    flush_chars: int = 300
    flush_interval: float = 1.0
    max_chars: int = 11_000     # a streamed message ends at ~12k (msg_too_long); roll over before
    max_age: float = 240.0      # Slack finalises a stream ~5 min after start; roll over before


class SlackReplyTarget:
    limits = LIMITS

    def __init__(self, client: AsyncWebClient, place: ReplyPlace, *,
                 native_streaming: Callable[[], bool], on_refused: Callable[[str], None],
                 status_supported: Callable[[], bool], on_status_refused: Callable[[], None],
                 stream: StreamSettings = StreamSettings()) -> None:
        self._client = client
        self.place = place
        self._native = native_streaming
        self._on_refused = on_refused
        self._status_supported = status_supported
        self._on_status_refused = on_status_refused
        self._stream = stream
        self._status_shown = False

    async def post(self, text: str) -> str:
        r = await self._client.chat_postMessage(channel=self.place.channel, thread_ts=self.place.thread_ts,
                                                markdown_text=text or "…")
        await self._answer_started()
        return str(r["ts"])

    async def edit(self, message_id: str, text: str) -> None:
        await self._client.chat_update(channel=self.place.channel, ts=message_id, markdown_text=text or "…")

    async def upload(self, file: OutboundFile) -> None:
        # files_upload_v2: files.getUploadURLExternal -> POST bytes -> files.completeUploadExternal
        await self._client.files_upload_v2(channel=self.place.channel, thread_ts=self.place.thread_ts,
                                           content=file.data, filename=file.name, title=file.name)

    async def notice(self, text: str, *, ephemeral: bool = False) -> None:
        if ephemeral:
            try:
                await self._client.chat_postEphemeral(channel=self.place.channel, user=self.place.user,
                                                       thread_ts=self.place.thread_ts, text=to_mrkdwn(text))
                return
            except SlackApiError as e:
                # e.g. not_in_channel / user_not_in_channel: say it in the thread instead of not at all
                log.warning("chat.postEphemeral failed in %s (%s); posting the notice instead",
                            self.place.channel, e.response.get("error"))
        await self._client.chat_postMessage(channel=self.place.channel, thread_ts=self.place.thread_ts,
                                            markdown_text=text)
        await self._answer_started()

    async def typing(self) -> None:
        if not self.place.thread_ts or not self._status_supported():
            return  # Slack has no "is typing" for bots; the thinking status needs a thread
        try:
            await self._client.assistant_threads_setStatus(
                channel_id=self.place.channel, thread_ts=self.place.thread_ts, status="is thinking…")
        except SlackApiError as e:
            # Workspaces without the assistant/agent features refuse it: stop trying, the answer follows anyway.
            log.info("assistant.threads.setStatus unavailable (%s); thinking status off", e.response.get("error"))
            self._on_status_refused()
            return
        self._status_shown = True

    async def _answer_started(self) -> None:
        """The first message of the answer is out: take the thinking status away. Slack clears it by itself
        when the app replies, but not reliably for a stream that opens with only a task update."""
        if not self._status_shown:
            return
        self._status_shown = False
        try:
            await self._client.assistant_threads_setStatus(
                channel_id=self.place.channel, thread_ts=self.place.thread_ts, status="")
        except SlackApiError as e:
            log.warning("could not clear the thinking status in %s (%s)", self.place.channel, e.response.get("error"))

    async def _posted(self, on_posted: OnPosted, message_id: str) -> None:
        await on_posted(message_id)
        await self._answer_started()

    def open_stream(self, on_posted: OnPosted) -> ReplyStream | None:
        # Native streams exist only as thread replies (thread_ts is required).
        if not self.place.thread_ts or not self._native():
            return None
        s = self._stream
        return NativeStream(self._client, channel=self.place.channel, thread_ts=self.place.thread_ts,
                            user=self.place.user, team=self.place.team,
                            on_posted=lambda ts: self._posted(on_posted, ts),
                            # refused by this workspace: the rest of the reply as posts + edits, like a DM
                            fallback=lambda: EditStream(self, on_posted=on_posted),
                            on_refused=self._on_refused, flush_chars=s.flush_chars,
                            flush_interval=s.flush_interval, max_chars=s.max_chars, max_age=s.max_age)
