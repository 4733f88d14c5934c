"""Per-workspace, per-method call budgets, so that many simultaneous replies stay inside Slack's tiers.

Slack counts calls per app per workspace per method ("tiers", per minute) and answers 429 + Retry-After
when a method is over. chat.update (Tier 3, ~50/min) is shared by *every* reply being edited in the
workspace, so throttling each reply on its own is not enough: all replies draw from one budget here.
A 429 that happens anyway (another process using the same app, a tier Slack lowered) is retried by
slack_sdk's AsyncRateLimitErrorRetryHandler, which honours Retry-After; nothing is lost.

Three kinds of calls draw from a budget:
- calls someone waits for (`slot`, every call through BudgetedWebClient): queued in arrival order;
- calls promised for later (a Reservation: a native stream's stop, a reply's final edit), counted from the
  moment a reply chooses its transport, so later replies see the budget as it will be;
- calls that are worth making only when there is room *now* (`slot_if_free`: progress appends and edits,
  the thinking status): never queued, never taken from what others reserved. A reply whose progress call
  finds no room just sends more text with its next one, and its final text goes with a reserved call.
A call counts in the window from when it is sent until one window after its response came back (it reached
Slack somewhere in between), so a busy event loop or a slow connection can't make Slack see more calls in a
minute than were counted here.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any, AsyncIterator, Callable, Iterator

from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.mentions import neutralise_call
from core.store.shares import RateShares

# calls per minute (docs.slack.dev/reference/methods/<name>, "Rate limits")
TIER2, TIER3, TIER4 = 20, 50, 100
METHOD_TIERS: dict[str, int] = {
    "chat.startStream": TIER2, "chat.stopStream": TIER2,
    "chat.update": TIER3, "chat.delete": TIER3, "reactions.add": TIER3,
    "conversations.replies": TIER3, "conversations.history": TIER3,
    "chat.appendStream": TIER4, "chat.postEphemeral": TIER4, "users.info": TIER4,
    "files.getUploadURLExternal": TIER4, "files.completeUploadExternal": TIER4, "files.info": TIER4,
    "assistant.threads.setStatus": TIER4, "assistant.threads.setTitle": TIER4,
    "assistant.threads.setSuggestedPrompts": TIER4,
}
# chat.postMessage is "special": about one message per second per channel, bursts tolerated.
POST_MESSAGE_PER_CHANNEL_PER_MINUTE = 60
# auth.test (bolt calls it per event until cached) and apps.connections.open are not worth budgeting.
UNBUDGETED = frozenset({"auth.test", "apps.connections.open"})


# The method whose slot the running task already holds (slot_if_free): its call must not queue for another.
_HELD: ContextVar[str | None] = ContextVar("slack_budget_held", default=None)


class SlidingWindow:
    """At most `limit` calls in any `window` seconds, counted from when each call is sent until `window` after
    its response arrived (calls in flight count too); waiters are served in arrival order.

    Besides calls made and calls queued it counts *reservations*: calls someone has promised to make
    soon (a native stream's chat.stopStream, a reply's final chat.update). `delay()` counts all three, so
    a reply choosing its transport sees the budget that replies decided a moment earlier will spend.
    """

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic, *,
                 share: Callable[[], int] | None = None) -> None:
        self.full, self.window, self._clock = limit, window, clock
        # share: this process's part of the app's limit, when other processes use the same app (core/store/shares)
        self._share = share
        self._times: deque[float] = deque()   # when calls in the window finished
        self._lock = asyncio.Lock()
        self.inflight = 0       # calls sent, response not back yet
        self.waiting = 0        # callers queued in acquire()
        self.reserved = 0       # calls promised but not made yet

    @property
    def limit(self) -> int:
        return self.full if self._share is None else self._share()

    def used(self) -> int:
        """Calls in the window now, those in flight included (what another process must leave us)."""
        return self._live(self._clock())

    def _live(self, now: float) -> int:
        while self._times and self._times[0] <= now - self.window:
            self._times.popleft()
        return len(self._times) + self.inflight

    async def acquire(self) -> None:
        """Wait for a slot (in arrival order); done() when the call's response is back."""
        self.waiting += 1
        try:
            async with self._lock:  # FIFO: asyncio.Lock wakes waiters in order
                while True:
                    now = self._clock()
                    if self._live(now) < self.limit:
                        self.inflight += 1
                        return
                    # full: the oldest finished call leaves the window first (or a call in flight finishes)
                    await asyncio.sleep(self._times[0] + self.window - now if self._times else 0.05)
        finally:
            self.waiting -= 1

    def try_acquire(self) -> bool:
        """A slot now, without queueing and without touching what others queued or reserved; done() after."""
        if self.waiting or self._live(self._clock()) + self.reserved >= self.limit:
            return False
        self.inflight += 1
        return True

    def room(self) -> int:
        """How many calls made now would get their slot at once (acquire would not wait)."""
        return 0 if self.waiting else max(0, self.limit - self._live(self._clock()))

    def done(self) -> None:
        self.inflight -= 1
        self._times.append(self._clock())

    def delay(self, n: int = 1) -> float:
        """About how long the n-th call made now would wait for its slot, behind everything already made,
        queued or reserved. 0.0: it goes at once."""
        now = self._clock()
        self._live(now)          # drops the calls that left the window: those kept are in it, oldest first
        live = self._times
        limit = self.limit
        excess = len(live) + self.inflight + self.waiting + self.reserved + n - limit
        if excess <= 0:
            return 0.0
        if limit <= 0:   # no share of the budget right now (other processes use it all): a window at least
            return self.window
        rounds, index = divmod(excess - 1, limit)
        if index < len(live):
            return max(0.0, live[index] + self.window * (rounds + 1) - now)
        return self.window * (rounds + 1)

    def reserve(self, n: int = 1) -> None:
        self.reserved += n

    def release(self, n: int = 1) -> None:
        self.reserved = max(0, self.reserved - n)


class Reservation:
    """Calls promised to a budget: `use(method)` right before making one (the promise becomes a real call in
    the queue), `release()` for whatever was not used (a stream that ended early, a reply that failed)."""

    def __init__(self, budget: "RateBudget") -> None:
        self._budget = budget
        self._held: dict[tuple[str, str | None], int] = {}

    def add(self, method: str, n: int = 1, channel: str | None = None) -> None:
        self._budget.bucket_for(method, channel).reserve(n)
        self._held[(method, channel)] = self._held.get((method, channel), 0) + n

    def held(self, method: str, channel: str | None = None) -> int:
        return self._held.get((method, channel), 0)

    def use(self, method: str, channel: str | None = None) -> None:
        key = (method, channel)
        if self._held.get(key, 0) > 0:
            self._held[key] -= 1
            self._budget.bucket_for(method, channel).release(1)

    def release(self) -> None:
        for (method, channel), n in self._held.items():
            if n:
                self._budget.bucket_for(method, channel).release(n)
        self._held.clear()


class RateBudget:
    """Budgets for one workspace. `minute` is the length of Slack's rate window (60 s; tests shrink it).

    `headroom` widens the window a little: the server counts arrival times, we count send times.
    """

    def __init__(self, *, minute: float = 60.0, headroom: float = 0.1,
                 tiers: dict[str, int] | None = None, default_tier: int = TIER3) -> None:
        self.minute = minute
        self._window = minute * (1 + headroom)
        self._tiers = {**METHOD_TIERS, **(tiers or {})}
        self._default = default_tier
        self._buckets: dict[str, SlidingWindow] = {}
        self._shares: RateShares | None = None
        self.edited_replies = 0   # replies delivered as post + edits right now (they share chat.update)
        self.streaming_replies = 0  # native streams open right now (they share chat.appendStream)
        self.on_wait: Callable[[float], None] | None = None  # told the seconds a call waited for its budget

    def _bucket(self, key: str, limit: int, *, shared: bool = True) -> SlidingWindow:
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = SlidingWindow(limit, self._window)
            if shared and self._shares is not None:
                self._share(key, b)
        return b

    def _share(self, key: str, bucket: SlidingWindow) -> None:
        assert self._shares is not None
        bucket._share = self._shares.track(key, bucket.full, bucket.used)

    async def share_with(self, shares: RateShares) -> None:
        """Other processes use the same app on this workspace: from now on each method's budget is this
        process's share (core/store/shares.py). Every tiered method is tracked from the start, so that the
        others count this process in before it makes its first call. Returns once the shares are known."""
        self._shares = shares
        for method in self._tiers:
            self.bucket_for(method)
        for key, bucket in self._buckets.items():
            if bucket._share is None and not key.startswith("chat.postMessage:"):
                self._share(key, bucket)
        await shares.start()

    @property
    def window(self) -> float:
        """Seconds a call stays counted (Slack's minute and the headroom)."""
        return self._window

    def bucket_for(self, method: str, channel: str | None = None) -> SlidingWindow:
        if method == "chat.postMessage":
            # per channel, not shared: two processes answer in one channel at the same second only rarely,
            # and Slack tolerates short bursts there
            return self._bucket(f"{method}:{channel}", POST_MESSAGE_PER_CHANNEL_PER_MINUTE, shared=False)
        return self._bucket(method, self._tiers.get(method, self._default))

    @asynccontextmanager
    async def slot(self, method: str, channel: str | None = None) -> AsyncIterator[None]:
        """Wait for a slot of `method`'s budget and hold it for one call."""
        if method in UNBUDGETED or _HELD.get() == method:
            yield
            return
        bucket = self.bucket_for(method, channel)
        started = time.monotonic()
        await bucket.acquire()
        waited = time.monotonic() - started
        if waited > 0.001 and self.on_wait is not None:
            self.on_wait(waited)
        try:
            yield
        finally:
            bucket.done()

    @contextmanager
    def slot_if_free(self, method: str, channel: str | None = None) -> Iterator[bool]:
        """A slot for one call of `method` if there is room now (True), else False at once, holding nothing.
        For calls that only show progress: they never queue, and never take what others reserved."""
        bucket = self.bucket_for(method, channel)
        if not bucket.try_acquire():
            yield False
            return
        token = _HELD.set(method)
        try:
            yield True
        finally:
            _HELD.reset(token)
            bucket.done()

    def delay(self, method: str, n: int = 1, channel: str | None = None) -> float:
        """Seconds the n-th call of `method` made now would wait for the budget (0.0: at once), counting the
        calls already queued and those reserved. For choosing how to reply, not for pacing."""
        if method in UNBUDGETED:
            return 0.0
        return self.bucket_for(method, channel).delay(n)

    def room(self, method: str, channel: str | None = None) -> int:
        """How many calls of `method` made now would not wait for their budget."""
        return 1 << 30 if method in UNBUDGETED else self.bucket_for(method, channel).room()

    def spacing(self, method: str) -> float:
        """Seconds between calls of `method` that keep it inside its tier when made steadily."""
        return self._window / self._tiers.get(method, self._default)

    def share(self, method: str, replies: int) -> float:
        """Seconds between one reply's calls of `method` when `replies` replies share its budget evenly."""
        return self.spacing(method) * max(1, replies)

    def reservation(self) -> Reservation:
        return Reservation(self)


class BudgetedWebClient(AsyncWebClient):
    """AsyncWebClient whose every Web API call first waits for the workspace budget of its method, and whose
    message text never carries a special mention (@channel, @here, @everyone, user groups)."""

    def __init__(self, *args: Any, budget: RateBudget, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.budget = budget

    async def api_call(self, api_method: str, *, http_verb: str = "POST", files: dict | None = None,
                       data: Any = None, params: dict | None = None, json: dict | None = None,
                       headers: dict | None = None, auth: Any = None):  # type: ignore[override]
        channel = None
        for source in (json, data, params):
            if isinstance(source, dict) and source.get("channel"):
                channel = source["channel"]
                break
        if api_method.startswith(("chat.", "files.")):  # model output never pings a channel (bots/slack/mentions)
            json, data, params = neutralise_call(json), neutralise_call(data), neutralise_call(params)
        async with self.budget.slot(api_method, channel):
            return await super().api_call(api_method, http_verb=http_verb, files=files, data=data, params=params,
                                          json=json, headers=headers, auth=auth)


class _CountingRateLimitRetry(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's 429 retry (it honours Retry-After), telling someone about each 429 and each retry."""

    def __init__(self, *, on_429: Callable[[], None] | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_429 = on_429

    async def _can_retry_async(self, *, state, request, response=None, error=None) -> bool:
        retry = await super()._can_retry_async(state=state, request=request, response=response, error=error)
        if retry and self._on_429 is not None:
            self._on_429()
        return retry


def make_client(token: str, base_url: str, budget: RateBudget, *, max_429_retries: int = 5,
                on_429: Callable[[], None] | None = None) -> BudgetedWebClient:
    if not base_url.endswith("/"):
        base_url += "/"  # the SDK urljoins method names: without the slash the last path segment is lost
    return BudgetedWebClient(
        token=token, base_url=base_url, budget=budget,
        # The async client retries only connection errors by default; 429s must be retried too.
        retry_handlers=[AsyncConnectionErrorRetryHandler(),
                        _CountingRateLimitRetry(max_retry_count=max_429_retries, on_429=on_429)],
    )
