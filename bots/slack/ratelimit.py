"""Per-workspace, per-method call budgets, so that many simultaneous replies stay inside Slack's tiers.

Slack counts calls per app per workspace per method ("tiers", per minute) and answers 429 + Retry-After
when a method is over. chat.update (Tier 3, ~50/min) is shared by *every* reply being edited in the
workspace, so throttling each reply on its own is not enough: all replies draw from one budget here.
A 429 that happens anyway (another process using the same app, a tier Slack lowered) is retried by
slack_sdk's AsyncRateLimitErrorRetryHandler, which honours Retry-After; nothing is lost.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any, Callable

from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

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


class SlidingWindow:
    """At most `limit` acquisitions in any `window` seconds; waiters are served in arrival order."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self._clock = limit, window, clock
        self._times: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:  # FIFO: asyncio.Lock wakes waiters in order
            while True:
                now = self._clock()
                while self._times and self._times[0] <= now - self.window:
                    self._times.popleft()
                if len(self._times) < self.limit:
                    self._times.append(now)
                    return
                await asyncio.sleep(self._times[0] + self.window - now)


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

    def _bucket(self, key: str, limit: int) -> SlidingWindow:
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = SlidingWindow(limit, self._window)
        return b

    async def acquire(self, method: str, channel: str | None = None) -> None:
        if method in UNBUDGETED:
            return
        if method == "chat.postMessage":
            await self._bucket(f"{method}:{channel}", POST_MESSAGE_PER_CHANNEL_PER_MINUTE).acquire()
            return
        await self._bucket(method, self._tiers.get(method, self._default)).acquire()


class BudgetedWebClient(AsyncWebClient):
    """AsyncWebClient whose every Web API call first waits for the workspace budget of its method."""

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
        await self.budget.acquire(api_method, channel)
        return await super().api_call(api_method, http_verb=http_verb, files=files, data=data, params=params,
                                      json=json, headers=headers, auth=auth)


def make_client(token: str, base_url: str, budget: RateBudget, *, max_429_retries: int = 5) -> BudgetedWebClient:
    if not base_url.endswith("/"):
        base_url += "/"  # the SDK urljoins method names: without the slash the last path segment is lost
    return BudgetedWebClient(
        token=token, base_url=base_url, budget=budget,
        # The async client retries only connection errors by default; 429s must be retried too.
        retry_handlers=[AsyncConnectionErrorRetryHandler(),
                        AsyncRateLimitErrorRetryHandler(max_retry_count=max_429_retries)],
    )
