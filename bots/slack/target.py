"""Where one answer goes in Slack: a thread (or a DM), as markdown_text messages or a native stream."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Callable, Coroutine

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from core.model import OutboundFile
from core.ports import Limits, OnPosted, ReplyStream
from core.reply.lifetime import ReplyLifetime
from core.reply.stream import EditStream
from bots.slack.answer_blocks import ended_blocks, ended_controls, fallback_text, plain_blocks, streaming_blocks
from bots.slack.markdown import to_mrkdwn
from bots.slack.post_when_ready import PostWhenReady
from bots.slack.ratelimit import RateBudget
from bots.slack.stream import NativeStream
from bots.slack.transport import EDIT, NATIVE, POST, StreamSettings, TransportChoice

# The transports and their settings are chosen in bots/slack/transport.py; the adapter and its callers name them here.
__all__ = ["EDIT", "LIMITS", "NATIVE", "POST", "ReplyPlace", "SlackReplyTarget", "StreamSettings"]

log = logging.getLogger(__name__)

# chat.update rejects `text` over 4,000 characters (msg_too_long); markdown_text takes 12,000, but
# core's EditStream splits at max_chars, and staying under 4,000 keeps every surface (and the legacy
# text fallback) valid. About one edit a second per message.
LIMITS = Limits(max_chars=3_900, edit_interval=1.0)
STATUS = "assistant.threads.setStatus"


@dataclass(frozen=True, slots=True)
class ReplyPlace:
    channel: str
    thread_ts: str | None       # None: top level (a DM answered in place)
    user: str                   # who asked: recipient of the stream and of ephemeral notices
    team: str


class SlackReplyTarget:
    """One answer's place in Slack, and how it gets there: a native stream, post + edits or post when ready,
    chosen when the reply opens from the workspace's budgets (bots/slack/transport.py)."""

    def __init__(self, client: AsyncWebClient, place: ReplyPlace, *,
                 native_streaming: Callable[[], bool], on_refused: Callable[[str], None],
                 status_supported: Callable[[], bool], on_status_refused: Callable[[], None],
                 stream: StreamSettings = StreamSettings(), budget: RateBudget | None = None,
                 spawn: Callable[[Coroutine[Any, Any, None], str], None] | None = None) -> None:
        self._client = client
        self._spawn = spawn   # the adapter's tracked tasks (a delayed thinking status runs in one)
        self.place = place
        self._native = native_streaming
        self._on_refused = on_refused
        self._status_supported = status_supported
        self._on_status_refused = on_status_refused
        self._stream = stream
        self._budget = budget
        self._choice = TransportChoice(budget, stream)
        self._reservation = self._choice.reservation
        self._status_tried = False
        self._status_shown = False
        self._status_timer: asyncio.TimerHandle | None = None   # the thinking status, not due yet
        self._status_call: asyncio.Future | None = None          # ...and once due, its call
        self._replying = False   # the reply's first message is on its way: a status landing now is taken back
        self.transport: str | None = None   # NATIVE, EDIT or POST once the reply opened (last choice wins)
        self._lifetime: ReplyLifetime | None = None   # the reply's (its controls: bots/slack/controls.py)
        self._latest: str | None = None               # the reply's latest message

    def _content(self, text: str, message_id: str | None = None, *, final: bool = False) -> dict:
        """A message's text, with the answer's controls where they apply (bots/slack/answer_blocks): Stop on
        the message being written (edited replies only: a message posted when ready is never edited, so its
        Stop could never go away), 👍 / 👎 and Retry on the last message once the reply has ended."""
        life = self._lifetime
        if life is None or not life.answer_id:
            return {"markdown_text": text or "…"}
        if life.state == "streaming":
            live = not final and (message_id is None or message_id == self._latest)  # final: a finished part
            blocks = streaming_blocks(life.answer_id, text) if live and self.transport == EDIT else plain_blocks(text)
        elif message_id is None or message_id == self._latest:   # a new last message, or the last one's end
            blocks = ended_blocks(life.answer_id, text, rate=life.state != "failed")
        else:
            blocks = plain_blocks(text)
        return {"text": fallback_text(text), "blocks": blocks}

    async def post(self, text: str) -> str:
        ts = await self._post(**self._content(text))
        self._latest = ts
        return ts

    async def _post(self, **content: object) -> str:
        # A reply clears the thread's thinking status by itself (Slack: "when the app replies").
        await self._status_settled()
        r = await self._client.chat_postMessage(channel=self.place.channel, thread_ts=self.place.thread_ts,
                                                **content)
        self._status_shown = False
        return str(r["ts"])

    @property
    def limits(self) -> Limits:  # type: ignore[override]
        if not self._choice.editing or self._budget is None:
            return LIMITS
        # chat.update is one budget for every reply in the workspace: each edited reply gets an even share of
        # it, re-read before every edit, so progress edits slow down as more replies are edited at once.
        return Limits(LIMITS.max_chars, max(LIMITS.edit_interval,
                                            self._budget.share("chat.update", self._budget.edited_replies)))

    async def edit(self, message_id: str, text: str, *, final: bool = False) -> bool:
        if final or self._budget is None or (self._reservation is not None
                                             and self._reservation.held("chat.update") > 1):
            # The final text, or a progress edit the reply reserved besides its final one (when it chose
            # post + edits): the budget has room for it.
            if self._reservation is not None:
                self._reservation.use("chat.update")
            await self._client.chat_update(channel=self.place.channel, ts=message_id,
                                           **self._content(text, message_id, final=final))
            return True
        # Progress: only when the budget has room now, never from what other replies reserved for their final
        # edits. Skipped, the stream sends the newer text with a later edit (or the final one).
        with self._budget.slot_if_free("chat.update") as free:
            if not free:
                return False
            await self._client.chat_update(channel=self.place.channel, ts=message_id,
                                           **self._content(text, message_id))
        return True

    async def upload(self, file: OutboundFile) -> str | None:
        # files_upload_v2: files.getUploadURLExternal -> POST bytes -> files.completeUploadExternal, whose
        # files[] carry each file's permalink (the SDK names a single one `file`).
        self.settle_status()
        done = await self._client.files_upload_v2(channel=self.place.channel, thread_ts=self.place.thread_ts,
                                                  content=file.data, filename=file.name, title=file.name)
        posted = done.get("file")
        permalink = posted.get("permalink") if isinstance(posted, dict) else None
        return permalink if isinstance(permalink, str) and permalink.startswith("https://") else None

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
        await self._post(markdown_text=text or "…")   # a notice is not part of the answer: no controls

    async def typing(self) -> None:
        """The thinking status, at most once per answer, only when the first words are slow to come (after
        `StreamSettings.status_delay`; returns at once) and only when its budget has room then: it is cosmetic.
        The reply's first message does not wait for a status call in flight; that status is cleared again when
        it lands. Otherwise no second call to clear it: Slack clears it when the app replies (see _posted for the
        one case where it does not)."""
        if not self.place.thread_ts or not self._status_supported() or self._status_tried:
            return  # Slack has no "is typing" for bots; the thinking status needs a thread
        self._status_tried = True
        delay = self._stream.status_delay
        if delay <= 0:
            await self._show_status()
        else:
            self._status_timer = asyncio.get_running_loop().call_later(delay, self._status_due)

    def _status_due(self) -> None:
        self._status_timer = None
        if not self._status_supported():
            return   # refused meanwhile, in another answer
        if self._spawn is not None:   # the adapter's tasks: a shutdown lets it (and its clear) finish
            self._spawn(self._show_status(), f"slack-status-{self.place.channel}-{self.place.thread_ts}")
            return
        self._status_call = asyncio.ensure_future(self._show_status())
        self._status_call.add_done_callback(_log_failure)

    def settle_status(self) -> None:
        """Before anything of the reply's goes into the thread (its first message, a file, an approval prompt),
        and when the turn is over however it ended: a status not due yet is never sent, and one still in flight
        is taken back when it lands (_show_status). Nothing here waits."""
        self._replying = True
        if self._status_timer is not None:
            self._status_timer.cancel()
            self._status_timer = None

    async def _status_settled(self) -> None:
        self.settle_status()

    async def _show_status(self) -> None:
        # A delayed status may land after the reply began and need taking back: the call for that is reserved
        # with it (so other answers' statuses can't take it), or the status is not worth sending.
        clear = self._budget.reservation() if self._budget is not None and not self._replying else None
        if clear is not None:
            clear.add(STATUS)
        clearing = False
        try:
            if self._budget is None:
                await self._set_status("is thinking…")
            else:
                # Taken, not just checked: replies opening at the same moment can't all spend the last slots.
                with self._budget.slot_if_free(STATUS) as free:
                    if not free:
                        log.debug("thinking status skipped in %s: its budget is busy", self.place.channel)
                        return
                    await self._set_status("is thinking…")
            if not self._replying:
                self._status_shown = True
                return
            # The reply began while this call was on its way, and Slack may have seen it after the reply's first
            # message (which clears the status): take it back rather than leave "is thinking…" under the answer.
            if clear is not None:
                clear.use(STATUS)
            clearing = True
            await self._set_status("")
        except SlackApiError as e:
            if clearing:
                log.warning("could not clear the thinking status in %s (%s)", self.place.channel,
                            e.response.get("error"))
                return
            # Workspaces without the assistant/agent features refuse it: stop trying, the answer follows anyway.
            log.info("assistant.threads.setStatus unavailable (%s); thinking status off", e.response.get("error"))
            self._on_status_refused()
        finally:
            if clear is not None:
                clear.release()

    async def _set_status(self, status: str) -> None:
        await self._client.assistant_threads_setStatus(channel_id=self.place.channel,
                                                       thread_ts=self.place.thread_ts, status=status)

    async def _posted(self, on_posted: OnPosted, message_id: str, native: NativeStream) -> None:
        await on_posted(message_id)
        if self._status_shown and not native.text_shown:
            # A stream that opens with only a task update does not reliably count as a reply: clear it.
            self._status_shown = False
            try:
                await self._client.assistant_threads_setStatus(
                    channel_id=self.place.channel, thread_ts=self.place.thread_ts, status="")
            except SlackApiError as e:
                log.warning("could not clear the thinking status in %s (%s)",
                            self.place.channel, e.response.get("error"))
        self._status_shown = False

    # ---- choosing the transport ---------------------------------------------------------------

    def open_stream(self, on_posted: OnPosted) -> ReplyStream | None:
        stream = self._open(on_posted)
        self._lifetime = stream.lifetime
        # However the reply ends, what it reserved and did not use goes back to the workspace's budgets, and a
        # thinking status not due yet is not sent.
        stream.lifetime.on_ended(self._ended)
        return stream

    def _ended(self, _state: object) -> None:
        self._choice.release()
        self.settle_status()

    def _open(self, on_posted: OnPosted) -> ReplyStream:
        # Native streams exist only as thread replies (thread_ts is required).
        native_ok = bool(self.place.thread_ts) and self._native()
        self.transport = self._choice.choose(native_ok=native_ok)
        if self.transport != NATIVE:
            log.debug("reply in %s: %s", self.place.channel, self.transport)
            return self._plain_stream(on_posted)
        s = self._stream
        native: NativeStream
        native = NativeStream(self._client, channel=self.place.channel, thread_ts=self.place.thread_ts or "",
                              user=self.place.user, team=self.place.team,
                              on_posted=lambda ts: self._posted(on_posted, ts, native),
                              # refused by this workspace: the rest of the reply as posts (+ edits), like a DM
                              fallback=lambda: self._fallback(on_posted),
                              on_refused=self._on_refused, flush_chars=s.flush_chars,
                              flush_interval=s.flush_interval, max_chars=s.max_chars, max_age=s.max_age,
                              reservation=self._reservation, budget=self._budget,
                              before_start=self._status_settled)
        # The answer's 👍 / 👎 and Retry go with the chat.stopStream call that ends it (no call of their own).
        native.final_blocks = self._ended_controls
        return native

    def _ended_controls(self) -> list[dict] | None:
        life = self._lifetime
        if life is None or not life.answer_id:
            return None
        return ended_controls(life.answer_id, rate=life.state != "failed")

    def _fallback(self, on_posted: OnPosted) -> ReplyStream:
        self._choice.release()  # the stream's start and stop will not be made
        self.transport = self._choice.choose(native_ok=False)
        return self._plain_stream(on_posted)

    def _plain_stream(self, on_posted: OnPosted) -> ReplyStream:
        if self.transport == EDIT:
            self._choice.start_editing()
            return EditStream(self, on_posted=on_posted)
        s = self._stream
        return PostWhenReady(self.post, on_posted=on_posted, max_chars=s.post_max_chars,
                             first_post_after=s.first_post_after, post_interval=s.post_interval)


def _log_failure(call: asyncio.Future) -> None:
    """The thinking status is cosmetic: a call that failed for another reason than Slack's refusal (handled in
    typing) is one log line, not an unretrieved task exception."""
    if not call.cancelled() and call.exception() is not None:
        log.warning("could not show the thinking status: %r", call.exception())
