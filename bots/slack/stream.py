"""A reply streamed with Slack's native stream: chat.startStream / appendStream / stopStream.

Why not slack_sdk's AsyncChatStream as is: it buffers by size only (no time-based flush), and it
handles none of the stream's limits. Ours:
- sends the first text of the reply at once (chat.startStream, which opens the stream anyway, carries
  it: the reader sees the answer start without an extra call), then flushes about every second or every
  ~300 characters, whichever comes first (one flusher task);
- rolls over to a new message before the stream's size (~12k chars, stopStream answers msg_too_long)
  and time (~5 min, then message_not_in_streaming_state) limits, closing an open code fence at the
  end of one message and reopening it at the start of the next; a stream Slack ends early anyway
  goes on in a new message the same way;
- shows tool progress as task_update chunks (the timeline under the message);
- when the workspace refuses native streaming, hands the rest of the reply to the fallback stream
  (post + edits, or post when ready: bots/slack/transport.py), and tells the adapter so later replies
  use it straight away.
The tail of a reply (citation footnotes, the one-line error notice, "(no answer)") is core's
(core.reply.tail), and so is the reply's lifetime (core.reply.lifetime): a reader's "stop" on the
streaming message stops it, and its end hook is where the Slack target gives back the budget it held.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from core.model import ToolUpdate
from core.ports import OnPosted, ReplyStream
from core.reply.lifetime import ReplyLifetime
from core.reply.splitting import CLOSER, MIN_LIMIT, next_chunk, open_fence, reopener
from core.reply.tail import ending, stopped
from bots.slack.mentions import PingGuard
from bots.slack.ratelimit import RateBudget, Reservation

log = logging.getLogger(__name__)

# Errors meaning "this workspace / surface does not do native streaming": switch to chat.update for good
# (vercel/chat PR #698, CopilotKit PR #5447).
REFUSED = frozenset({"unknown_method", "method_deprecated", "feature_not_enabled", "not_allowed_token_type",
                     "channel_type_not_supported", "invalid_chunks", "messages_tab_disabled"})
TASK_STATUS = {"started": "pending", "running": "in_progress", "done": "complete", "failed": "error"}
# Roll over when less than this is left in the message: a piece must hold at least MIN_LIMIT characters
# plus a fence closer.
MIN_ROOM = 2 * MIN_LIMIT


def _error(e: SlackApiError) -> str:
    return str(e.response.get("error", "")) if e.response is not None else ""


class NativeStream:
    """ReplyStream over Slack's chat.*Stream methods (thread replies only)."""

    def __init__(self, client: AsyncWebClient, *, channel: str, thread_ts: str, user: str, team: str,
                 on_posted: OnPosted, fallback: Callable[[], ReplyStream],
                 on_refused: Callable[[str], None] | None = None,
                 flush_chars: int = 300, flush_interval: float = 1.0,
                 max_chars: int = 11_000, max_age: float = 240.0,
                 clock: Callable[[], float] = time.monotonic,
                 reservation: Reservation | None = None, budget: RateBudget | None = None,
                 before_start: Callable[[], Awaitable[None]] | None = None) -> None:
        self._client = client
        self._before_start = before_start   # awaited before each chat.startStream (the thinking status settles)
        self._reservation = reservation  # the start and stop the choice of transport counted on
        # The workspace's budgets: appends are made only when chat.appendStream has room now, at most one per
        # this reply's share of it (every native stream open gets an even share), so they never queue.
        self._budget = budget
        self._sharing = False
        self._channel, self._thread, self._user, self._team = channel, thread_ts, user, team
        self._on_posted, self._on_refused = on_posted, on_refused
        self._make_fallback = fallback
        self._flush_chars, self._flush_interval = flush_chars, flush_interval
        self._max_chars, self._max_age = max_chars, max_age
        self._clock = clock

        self.lifetime = ReplyLifetime()
        # Blocks for the call that ends the reply (the answer's controls: bots/slack/controls.py), or None.
        self.final_blocks: Callable[[], list[dict] | None] = lambda: None
        # Each append is a Web API call of its own: the end of a delta that could begin a special mention
        # completed by the next one (`<!chan` + `nel>`) waits for it (bots/slack/mentions).
        self._guard = PingGuard()
        self._text = ""                         # the whole reply as written so far (for its tail)
        self._pending = ""                      # text not sent yet
        self._tasks: dict[str, dict] = {}       # task_update chunks not sent yet
        self._active: dict[str, ToolUpdate] = {}  # tools still running (handed to the fallback on a switch)
        self._ts: str | None = None             # message being streamed
        self._sent = ""                         # text already in that message
        self._any_text = False                  # some text of this reply reached Slack
        self._first_text = True                 # no text of this reply handed to the flusher yet
        self._started = 0.0
        self._fallback: ReplyStream | None = None  # set once Slack refused the native stream
        self._closed = False
        self._slack_stopped = False             # a reader pressed Slack's own stop: the message is final there
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()        # close()/fail() began: the flusher stops waiting
        self._last_append = -1e9
        self._flusher: asyncio.Task | None = None
        self._failure: BaseException | None = None
        if budget is not None:
            self._sharing = True
            budget.streaming_replies += 1
            self.lifetime.on_ended(lambda _state: self._leave_share())

    def _leave_share(self) -> None:
        if self._sharing and self._budget is not None:
            self._sharing = False
            self._budget.streaming_replies -= 1

    def _interval(self) -> float:
        """Seconds between this reply's appends: Slack's batching pace, or its share of the append budget
        when many replies stream at once (then each append carries more text)."""
        if self._budget is None:
            return self._flush_interval
        return max(self._flush_interval, self._budget.share("chat.appendStream", self._budget.streaming_replies))

    @property
    def text_shown(self) -> bool:
        """Some text of this reply is in a message (not only task updates)."""
        return self._any_text or bool(self._sent)

    # ---- ReplyStream ------------------------------------------------------------------------

    async def text(self, delta: str) -> None:
        self._raise_failure()
        self.lifetime.check()  # stopped by a reader: the service stops the model, nobody wants the rest
        delta = self._guard.feed(delta)
        if self._fallback is not None:
            await self._fallback.text(delta)
            return
        if not delta:
            return
        self._text += delta
        self._pending += delta
        self._ensure_flusher()
        if self._first_text or len(self._pending) >= self._flush_chars:
            # The first words go out at once; after that, batch (Tier 4 appendStream is a shared budget).
            self._first_text = False
            self._wake.set()

    async def status(self, update: ToolUpdate | None) -> None:
        self._raise_failure()
        if self._fallback is not None:
            await self._fallback.status(update)
            return
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
        await self._end(footer=footer, notice=None)

    async def fail(self, notice: str) -> None:
        await self._end(footer="", notice=notice)

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
            while not self._closed and self._fallback is None:
                try:
                    await asyncio.wait_for(self._wake.wait(), self._interval())
                except asyncio.TimeoutError:
                    pass
                self._wake.clear()
                if self._ts is not None:
                    # After the first words: at most one append per interval, however fast text comes.
                    wait = self._last_append + self._interval() - self._clock()
                    if wait > 0:
                        try:
                            await asyncio.wait_for(self._stopping.wait(), wait)
                        except asyncio.TimeoutError:
                            pass
                if self._closed:
                    break
                if await self._flush() and not self._closed:
                    # no append budget right now: try again a little later, with everything written meanwhile
                    try:
                        await asyncio.wait_for(self._stopping.wait(), min(self._interval(), 1.0))
                    except asyncio.TimeoutError:
                        pass
        except asyncio.CancelledError:
            raise
        except Exception as e:  # surfaced to core on the next text()/status()/close()
            log.exception("Slack stream flush failed in %s", self._channel)
            self._failure = e

    async def _stop_flusher(self) -> bool:
        """No more flushes from the flusher. True when the reply went over to the fallback stream."""
        self._closed = True
        self._stopping.set()
        if self._flusher is not None:
            # Let a flush in progress finish: cancelling it mid-request could send a piece twice. (Appends
            # never wait for budget, so that is one request at most.)
            self._wake.set()
            flusher, self._flusher = self._flusher, None
            await asyncio.wait({flusher})
        self._raise_failure()
        return self._fallback is not None

    async def _end(self, *, footer: str, notice: str | None) -> None:
        with self.lifetime.ending("failed" if notice is not None else "finished"):
            held = self._guard.flush()
            if await self._stop_flusher():
                fallback = self._fallback
                if held:
                    await fallback.text(held)  # type: ignore[union-attr]
                await (fallback.close(footer) if notice is None else fallback.fail(notice))  # type: ignore[union-attr]
                return
            if self.lifetime.state != "stopped":
                self._text += held
                self._pending += held
                more = ending(self._text, footer=footer, notice=notice)
                self._text += more
                self._pending += more
            elif not self._slack_stopped:  # stopped here (not by Slack's own stop): the text so far, and a note
                more = stopped(self._text + held)
                self._text += held + more
                self._pending += held + more
            await self._finish()

    async def _finish(self) -> None:
        # The rest of the reply goes with the call that ends the stream (chat.stopStream takes chunks, and its
        # call was reserved when the reply chose to stream): the final text never waits for append budget.
        await self._flush(final=True)
        if self._fallback is not None:  # refused during that last flush: the text went over with it
            await self._fallback.close()
            return
        async with self._lock:
            if self._ts is not None and not self._slack_stopped:
                # The reply's end (or a stop asked for here): leave its text exactly as written (no fence added).
                await self._end_message(stop=True, blocks=self.final_blocks())

    async def _flush(self, *, final: bool = False) -> bool:
        """Send what is pending. True when an append found no room in the budget (the text stays pending)."""
        async with self._lock:
            if self._slack_stopped:  # Slack's own stop: the message is final there, nothing more goes in
                self._pending = ""
                return False
            while (self._pending or self._tasks) and self._fallback is None:
                if self._ts is not None and self._clock() - self._started > self._max_age:
                    await self._rollover()
                room = self._max_chars - len(self._sent)
                if self._pending and room < MIN_ROOM:
                    await self._rollover()
                    continue
                # Only the end of a message needs a good place to cut (not inside a word, a backtick run…).
                cut = next_chunk(self._pending, 0, room - len(CLOSER), open_fence(self._sent))[1] \
                    if self._pending else 0
                piece = self._pending[:cut]
                tasks = list(self._tasks.values())
                if final and self._ts is not None and cut == len(self._pending):
                    ok = await self._stop_with(piece, tasks)      # everything left: it ends the message
                else:
                    ok = await self._send(piece, tasks, wait=final)
                if self._slack_stopped:
                    self._pending = ""
                    return False
                if ok is None:
                    return True  # no append budget right now: the next append carries this text too
                if ok:
                    # text() only appends while we wait for Slack: cut what was sent off the front
                    self._pending = self._pending[cut:]
                    self._any_text = self._any_text or bool(piece)
                    for t in tasks:
                        if self._tasks.get(t["id"]) is t:
                            del self._tasks[t["id"]]
            return False

    async def _stop_with(self, piece: str, tasks: list[dict]) -> bool:
        """End the message with its last piece (and task updates) in the stop call. False: not sent."""
        try:
            await self._end_message(stop=True, closing=piece, tasks=tasks, blocks=self.final_blocks())
        except SlackApiError as e:
            return await self._refused(e)
        self._any_text = self._any_text or bool(piece)
        return True

    async def _send(self, piece: str, tasks: list[dict], *, wait: bool = False) -> bool | None:
        """One startStream/appendStream call. False when the piece was not sent (retried, or handed over);
        None when an append found no room in the budget (`wait`: it queues for room instead)."""
        chunks: list[dict] = list(tasks)
        if piece:
            chunks.append({"type": "markdown_text", "text": piece})
        try:
            if self._ts is None:
                if self._before_start is not None:
                    await self._before_start()
                self._use("chat.startStream")
                r = await self._client.chat_startStream(
                    channel=self._channel, thread_ts=self._thread, recipient_user_id=self._user,
                    recipient_team_id=self._team, task_display_mode="timeline", chunks=chunks)
                self._ts, self._sent, self._started = str(r["ts"]), piece, self._clock()
                self._last_append = self._clock()
                await self._on_posted(self._ts)
            else:
                if self._budget is not None and not wait:
                    with self._budget.slot_if_free("chat.appendStream") as free:
                        if not free:
                            return None
                        await self._client.chat_appendStream(channel=self._channel, ts=self._ts, chunks=chunks)
                else:
                    await self._client.chat_appendStream(channel=self._channel, ts=self._ts, chunks=chunks)
                self._last_append = self._clock()
                self._sent += piece
            return True
        except SlackApiError as e:
            return await self._refused(e)

    async def _refused(self, e: SlackApiError) -> bool:
        """What a stream call's error means; False (the piece was not sent) or the error raised again."""
        err = _error(e)
        if err in REFUSED or (self._ts is None and err.startswith("missing_recipient")):
            log.warning("Slack refused native streaming in %s (%s); using chat.update", self._channel, err)
            if self._on_refused:
                self._on_refused(err)
            await self._switch_to_fallback()
            return False
        if err == "stopped_by_user":
            # A reader pressed "stop" on the streaming message: it is final, say nothing more.
            log.info("Slack stream in %s stopped by the user", self._channel)
            self._slack_stopped = True
            self.lifetime.stop()
            self._ts, self._sent = None, ""
            return False
        if self._ts is not None and err in ("message_not_in_streaming_state", "msg_too_long"):
            # Slack finalised the message (time limit, or size): keep what it has, go on in a new one.
            log.info("Slack stream %s ended early (%s); continuing in a new message", self._ts, err)
            await self._end_message(stop=False)
            return False
        raise e

    async def _switch_to_fallback(self) -> None:
        if self._ts is not None:
            try:  # a message already streaming (refused mid-way, e.g. invalid_chunks): end it where it is
                await self._end_message(stop=True, closing=self._fence_closer())
            except SlackApiError as e:
                log.warning("could not end the refused stream %s (%s)", self._ts, _error(e))
                self._ts, self._sent = None, ""
        self._leave_share()
        self._fallback = fallback = self._make_fallback()
        pending, self._pending = self._pending, ""
        self._tasks.clear()
        for update in self._active.values():
            await fallback.status(update)
        if pending:
            await fallback.text(pending)

    def _use(self, method: str) -> None:
        if self._reservation is not None:
            self._reservation.use(method)

    def _fence_closer(self) -> str:
        """Closes the code block the current message ends in (and reopens it in what follows), or ""."""
        fence = open_fence(self._sent)
        if not fence:
            return ""
        self._pending = reopener(fence) + self._pending
        return CLOSER  # as core's splitter closes it: "\n```" always, so the messages join back losslessly

    async def _rollover(self) -> None:
        # Each message renders on its own: close the code block here, reopen it in the next one.
        await self._end_message(stop=True, closing=self._fence_closer())

    async def _end_message(self, *, stop: bool, closing: str = "", tasks: list[dict] | None = None,
                           blocks: list[dict] | None = None) -> None:
        ts = self._ts
        if ts is None:
            return
        if stop:
            try:
                chunks = list(tasks or ()) + ([{"type": "markdown_text", "text": closing}] if closing else [])
                self._use("chat.stopStream")
                await self._client.chat_stopStream(channel=self._channel, ts=ts, chunks=chunks or None,
                                                   blocks=blocks or None)
            except SlackApiError as e:
                if _error(e) != "message_not_in_streaming_state":
                    raise
                if closing:  # already final: put the rest in with an edit
                    await self._client.chat_update(channel=self._channel, ts=ts, markdown_text=self._sent + closing)
        else:
            closing = self._fence_closer()
            if closing:
                await self._client.chat_update(channel=self._channel, ts=ts, markdown_text=self._sent + closing)
        self._ts, self._sent = None, ""
