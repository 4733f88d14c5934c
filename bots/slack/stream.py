"""A reply streamed with Slack's native stream: chat.startStream / appendStream / stopStream.

Why not slack_sdk's AsyncChatStream as is: it buffers by size only (no time-based flush), and it
handles none of the stream's limits. Ours:
- flushes about every second or every ~300 characters, whichever comes first (one flusher task);
- rolls over to a new message before the stream's size (~12k chars, stopStream answers msg_too_long)
  and time (~5 min, then message_not_in_streaming_state) limits, closing an open code fence at the
  end of one message and reopening it at the start of the next;
- shows tool progress as task_update chunks (the timeline under the message);
- falls back to chat.postMessage + chat.update when the workspace refuses native streaming, and
  tells the adapter so later replies use core's EditStream straight away.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from core.model import ToolUpdate
from core.ports import OnPosted
from bots.slack.markdown import close_fence, open_fence, split_markdown, split_point

log = logging.getLogger(__name__)

# Errors meaning "this workspace / surface does not do native streaming": switch to chat.update for good
# (vercel/chat PR #698, CopilotKit PR #5447).
REFUSED = frozenset({"unknown_method", "method_deprecated", "feature_not_enabled", "not_allowed_token_type",
                     "channel_type_not_supported", "invalid_chunks", "messages_tab_disabled"})
TASK_STATUS = {"started": "pending", "running": "in_progress", "done": "complete", "failed": "error"}


def _error(e: SlackApiError) -> str:
    return str(e.response.get("error", "")) if e.response is not None else ""


class NativeStream:
    """ReplyStream over Slack's chat.*Stream methods (thread replies only)."""

    def __init__(self, client: AsyncWebClient, *, channel: str, thread_ts: str, user: str, team: str,
                 on_posted: OnPosted, on_refused: Callable[[str], None] | None = None,
                 flush_chars: int = 300, flush_interval: float = 1.0,
                 max_chars: int = 11_000, max_age: float = 240.0,
                 fallback_max_chars: int = 3_900, edit_interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._channel, self._thread, self._user, self._team = channel, thread_ts, user, team
        self._on_posted, self._on_refused = on_posted, on_refused
        self._flush_chars, self._flush_interval = flush_chars, flush_interval
        self._max_chars, self._max_age = max_chars, max_age
        self._fb_max, self._edit_interval = fallback_max_chars, edit_interval
        self._clock = clock

        self._pending = ""                      # text not sent yet
        self._tasks: dict[str, dict] = {}       # task_update chunks not sent yet
        self._ts: str | None = None             # message being streamed (or edited, in fallback)
        self._sent = ""                         # text already in that message
        self._started = 0.0
        self._fallback = False
        self._active: dict[str, ToolUpdate] = {}  # fallback: running tools, shown as a status line
        self._last_edit = float("-inf")
        self._stopped_by_user = False
        self._closed = False
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task | None = None
        self._failure: BaseException | None = None

    # ---- ReplyStream ------------------------------------------------------------------------

    async def text(self, delta: str) -> None:
        self._raise_failure()
        if not delta or self._stopped_by_user:
            return
        self._pending += delta
        self._ensure_flusher()
        if len(self._pending) >= self._flush_chars:
            self._wake.set()

    async def status(self, update: ToolUpdate | None) -> None:
        self._raise_failure()
        if update is None:
            self._active.clear()
            return
        if update.status in ("done", "failed"):
            self._active.pop(update.item_id, None)
        else:
            self._active[update.item_id] = update
        chunk = {"type": "task_update", "id": update.item_id[:256], "title": update.title[:256],
                 "status": TASK_STATUS.get(update.status, "in_progress")}
        if update.detail:
            chunk["details"] = update.detail[:2000]
        self._tasks[update.item_id] = chunk
        self._ensure_flusher()
        self._wake.set()

    async def close(self, footer: str = "") -> None:
        if footer:
            self._pending += footer if footer.startswith("\n") else "\n\n" + footer
        await self._finish()

    async def fail(self, notice: str) -> None:
        self._pending += ("\n\n" if (self._sent or self._pending) else "") + f"_{notice}_"
        await self._finish()

    # ---- internals --------------------------------------------------------------------------

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    def _ensure_flusher(self) -> None:
        if self._flusher is None and not self._closed:
            self._flusher = asyncio.create_task(self._flush_loop(), name=f"slack-stream-{self._channel}")

    async def _flush_loop(self) -> None:
        try:
            while not self._closed:
                try:
                    await asyncio.wait_for(self._wake.wait(), self._flush_interval)
                except asyncio.TimeoutError:
                    pass
                self._wake.clear()
                if self._closed:
                    break
                await self._flush(final=False)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # surfaced to core on the next text()/status()/close()
            log.exception("Slack stream flush failed in %s", self._channel)
            self._failure = e

    async def _finish(self) -> None:
        self._closed = True
        if self._flusher is not None:
            # Let a flush in progress finish: cancelling it mid-request could send a piece twice.
            self._wake.set()
            flusher, self._flusher = self._flusher, None
            await asyncio.wait({flusher})
        self._raise_failure()
        await self._flush(final=True)
        async with self._lock:
            if self._ts is not None and not self._fallback and not self._stopped_by_user:
                # The model's own end: leave its text exactly as written (no fence added).
                await self._end_message(stop=True)

    async def _flush(self, *, final: bool) -> None:
        async with self._lock:
            if self._stopped_by_user:
                self._pending = ""
                return
            if self._fallback:
                await self._flush_fallback(final=final)
                return
            while self._pending or self._tasks:
                if self._ts is not None and self._clock() - self._started > self._max_age:
                    await self._rollover()
                room = self._max_chars - len(self._sent)
                if self._pending and room < 64:
                    await self._rollover()
                    continue
                cut = split_point(self._pending, max(room - 8, 1))
                piece = self._pending[:cut]
                tasks = list(self._tasks.values())
                ok = await self._send(piece, tasks)
                if self._fallback or self._stopped_by_user:
                    if self._fallback:
                        await self._flush_fallback(final=final)
                    return
                if ok:
                    self._pending = self._pending[cut:]
                    for t in tasks:
                        if self._tasks.get(t["id"]) is t:
                            del self._tasks[t["id"]]

    async def _send(self, piece: str, tasks: list[dict]) -> bool:
        """One startStream/appendStream call. False when the piece must be retried in a new message."""
        chunks: list[dict] = list(tasks)
        if piece:
            chunks.append({"type": "markdown_text", "text": piece})
        try:
            if self._ts is None:
                r = await self._client.chat_startStream(
                    channel=self._channel, thread_ts=self._thread, recipient_user_id=self._user,
                    recipient_team_id=self._team, task_display_mode="timeline", chunks=chunks)
                self._ts, self._sent, self._started = str(r["ts"]), piece, self._clock()
                await self._on_posted(self._ts)
            else:
                await self._client.chat_appendStream(channel=self._channel, ts=self._ts, chunks=chunks)
                self._sent += piece
            return True
        except SlackApiError as e:
            err = _error(e)
            if err in REFUSED or (self._ts is None and err.startswith("missing_recipient")):
                log.warning("Slack refused native streaming in %s (%s); using chat.update", self._channel, err)
                self._fallback = True
                if self._on_refused:
                    self._on_refused(err)
                return False
            if err == "stopped_by_user":
                # A reader pressed "stop" on the streaming message: it is final, say nothing more.
                log.info("Slack stream in %s stopped by the user", self._channel)
                self._stopped_by_user = True
                return False
            if self._ts is not None and err in ("message_not_in_streaming_state", "msg_too_long"):
                # Slack finalised the message (time limit, or size): keep what it has, go on in a new one.
                log.info("Slack stream %s ended early (%s); continuing in a new message", self._ts, err)
                await self._end_message(stop=False)
                return False
            raise

    async def _rollover(self) -> None:
        await self._stop_current()

    async def _stop_current(self) -> None:
        fence = open_fence(self._sent)
        closing = ""
        if fence:
            # Each message renders on its own: close the code block here, reopen it in the next one.
            closing = ("" if self._sent.endswith("\n") else "\n") + close_fence(fence)
            self._pending = fence + "\n" + self._pending
        await self._end_message(stop=True, closing=closing)

    async def _end_message(self, *, stop: bool, closing: str = "") -> None:
        ts = self._ts
        if ts is None:
            return
        if stop:
            try:
                chunks = [{"type": "markdown_text", "text": closing}] if closing else None
                await self._client.chat_stopStream(channel=self._channel, ts=ts, chunks=chunks)
            except SlackApiError as e:
                if _error(e) != "message_not_in_streaming_state":
                    raise
                if closing:  # already final: put the fence close in with an edit
                    await self._client.chat_update(channel=self._channel, ts=ts, markdown_text=self._sent + closing)
        else:
            fence = open_fence(self._sent)
            if fence:
                closing = ("\n" if not self._sent.endswith("\n") else "") + close_fence(fence)
                await self._client.chat_update(channel=self._channel, ts=ts, markdown_text=self._sent + closing)
                self._pending = fence + "\n" + self._pending
        self._ts, self._sent = None, ""

    # ---- fallback: chat.postMessage + chat.update -------------------------------------------

    def _status_line(self) -> str:
        if not self._active:
            return ""
        last = list(self._active.values())[-1]
        return f"\n\n_{last.title}…_"

    async def _flush_fallback(self, *, final: bool) -> None:
        self._tasks.clear()
        if not final and self._clock() - self._last_edit < self._edit_interval:
            return  # about one edit a second per message (chat.update is Tier 3, shared)
        body = self._sent + self._pending
        if not body and not self._active:
            return
        parts = split_markdown(body, self._fb_max) or [""]
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            shown = part + ("" if final or not last else self._status_line())
            if len(shown) > self._fb_max:
                shown = part
            if self._ts is None:
                r = await self._client.chat_postMessage(channel=self._channel, thread_ts=self._thread,
                                                        markdown_text=shown or "…")
                self._ts = str(r["ts"])
                await self._on_posted(self._ts)
            elif shown != self._sent or not last or final:
                await self._client.chat_update(channel=self._channel, ts=self._ts, markdown_text=shown or "…")
            if not last:
                self._ts = None  # next part goes into a new message
        self._sent, self._pending = parts[-1], ""
        self._last_edit = self._clock()

