"""Per-user message rate and daily token budgets (per user, per channel).

Flow in the service, per message:  refusal = await limiter.admit(limits, msg)  (check + note_message) -> refuse,
or run the turn, store.record_usage(...), limiter.add_tokens(user, channel, input_tokens + output_tokens).

- The message rate is a sliding 60 s window kept in memory (per process; restarting forgives it) — or, when
  several processes share a PostgreSQL store, counted in the database (`MessageRates`), so a user's messages
  count the same whichever process receives them.
- Daily budgets count input + output tokens (cached input tokens are part of input_tokens in the Responses API)
  over the current UTC day. The totals are read once per day from `store.usage_rows` and then kept up to date by
  `add_tokens`, so a check costs no query. A turn already running when the budget is reached finishes; the next
  message is refused.
- Counters are keyed by platform user id and channel id, across all assistants and platforms (Slack, Discord
  and console ids do not overlap in practice). The channel budget does not apply to direct messages: a DM
  channel has one user, whose own budget covers it.
"""
from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict, deque
from typing import Callable, Protocol

from core.model import InboundMessage
from core.store.protocol import UsageRow
from core.config.policy import LimitsConfig

DAY = 86400.0
WINDOW = 60.0


class UsageRows(Protocol):
    async def usage_rows(self, since: float, until: float) -> list[UsageRow]: ...


class MessageRates(Protocol):
    """Each user's message rate, counted across every process sharing the store."""

    async def admit(self, user: str, limit: int, window: float, now: float) -> float | None:
        """Count this message when fewer than `limit` of the user's were counted in the `window` seconds before
        `now`: None. Otherwise nothing is counted, and the result is when the user may write again (the time
        the oldest of those `limit` messages leaves the window)."""
        ...


class UsageLimiter:
    """`refresh`: when several processes share the store, each re-reads today's totals from it at most this many
    seconds after its last read, so the turns the others answered count too (None: one process, read once a day).
    `rates`: the message rate counted across those processes (None: in this process's memory)."""

    def __init__(self, store: UsageRows, clock: Callable[[], float] = time.time, *,
                 refresh: float | None = None, rates: MessageRates | None = None) -> None:
        self._store = store
        self._rates = rates
        self._clock = clock
        self._refresh = refresh
        self._loaded_at = -math.inf
        self._recent: dict[str, deque[float]] = defaultdict(deque)
        self._day: int | None = None          # UTC day number the totals below belong to
        self._user_tokens: dict[str, int] = defaultdict(int)
        self._channel_tokens: dict[str, int] = defaultdict(int)
        self._load_lock = asyncio.Lock()
        self._loading_adds: list[tuple[str, str, int]] | None = None

    # ---- rate -------------------------------------------------------------------------------------

    def note_message(self, msg: InboundMessage) -> None:
        """Count an accepted message in the author's sliding window."""
        now = self._clock()
        window = self._recent[msg.author.id]
        window.append(now)
        self._prune(window, now)

    @staticmethod
    def _prune(window: deque[float], now: float) -> None:
        while window and window[0] <= now - WINDOW:
            window.popleft()

    # ---- tokens -----------------------------------------------------------------------------------

    def add_tokens(self, user: str, channel: str, n: int) -> None:
        """After a turn (and after store.record_usage): add its input + output tokens to today's totals."""
        if n <= 0:
            return
        day = self._day_of(self._clock())
        if self._loading_adds is not None:
            self._loading_adds.append((user, channel, n))
        elif day == self._day:
            self._user_tokens[user] += n
            self._channel_tokens[channel] += n
        # else: today's totals are not loaded yet; the store row recorded for this turn is read when they are.

    def _fresh(self, day: int, now: float) -> bool:
        return day == self._day and (self._refresh is None or now - self._loaded_at < self._refresh)

    async def _ensure_day(self, now: float) -> None:
        day = self._day_of(now)
        if self._fresh(day, now):
            return
        async with self._load_lock:
            if self._fresh(day, now):
                return
            self._loading_adds = []
            try:
                rows = await self._store.usage_rows(day * DAY, (day + 1) * DAY)
            finally:
                pending, self._loading_adds = self._loading_adds, None
            users: dict[str, int] = defaultdict(int)
            channels: dict[str, int] = defaultdict(int)
            for row in rows:
                n = row.input_tokens + row.output_tokens
                users[row.user] += n
                channels[row.channel] += n
            # Turns that finished while the query ran may or may not be in `rows`; counting them again errs on
            # the side of the budget, never past it.
            for user, channel, n in pending:
                users[user] += n
                channels[channel] += n
            self._user_tokens, self._channel_tokens, self._day = users, channels, day
            self._loaded_at = now

    def tokens_today(self, *, user: str | None = None, channel: str | None = None) -> int:
        """Today's counted tokens (after a check() loaded the day); for status displays and tests."""
        if user is not None:
            return self._user_tokens.get(user, 0)
        return self._channel_tokens.get(channel or "", 0)

    # ---- the check ----------------------------------------------------------------------------------

    async def admit(self, limits: LimitsConfig, msg: InboundMessage) -> str | None:
        """check() and, when allowed, note_message() with no await in between, so concurrent messages from one
        user cannot all slip through the rate limit. Prefer this in the service."""
        refusal = await self.check(limits, msg)
        if refusal is None and self._rates is not None:
            if limits.messages_per_minute is not None:
                now = self._clock()
                until = await self._rates.admit(msg.author.id, limits.messages_per_minute, WINDOW, now)
                if until is not None:
                    return _rate_text(limits.messages_per_minute, until - now)
            return None
        if refusal is None:
            refusal = self._rate_refusal(limits, msg, self._clock())
        if refusal is None:
            self.note_message(msg)
        return refusal

    async def check(self, limits: LimitsConfig, msg: InboundMessage) -> str | None:
        """None when msg may go ahead, else the reply that explains which limit was hit and when it lifts."""
        now = self._clock()
        refusal = self._rate_refusal(limits, msg, now)
        if refusal is not None:
            return refusal
        if limits.tokens_per_user_per_day is None and limits.tokens_per_channel_per_day is None:
            return None
        await self._ensure_day(now)
        resets = _until_midnight(now)
        budget = limits.tokens_per_user_per_day
        if budget is not None and self._user_tokens.get(msg.author.id, 0) >= budget:
            return (f"You've used your daily budget of {budget:,} tokens — it resets at midnight UTC "
                    f"(in {resets}).")
        budget = limits.tokens_per_channel_per_day
        if budget is not None and not msg.is_direct and self._channel_tokens.get(msg.channel, 0) >= budget:
            return (f"This channel has used its daily budget of {budget:,} tokens — it resets at midnight UTC "
                    f"(in {resets}).")
        return None

    def _rate_refusal(self, limits: LimitsConfig, msg: InboundMessage, now: float) -> str | None:
        if limits.messages_per_minute is None:
            return None
        window = self._recent.get(msg.author.id)
        if window is None:
            return None
        self._prune(window, now)
        if not window:
            del self._recent[msg.author.id]   # idle users do not pile up in memory
        elif len(window) >= limits.messages_per_minute:
            return _rate_text(limits.messages_per_minute, window[-limits.messages_per_minute] + WINDOW - now)
        return None

    @staticmethod
    def _day_of(ts: float) -> int:
        return int(ts // DAY)


def _rate_text(limit: int, wait: float) -> str:
    return f"You've reached {limit} messages per minute — try again in {max(1, math.ceil(wait))} s."


def _until_midnight(now: float) -> str:
    left = math.ceil((math.floor(now / DAY) + 1) * DAY - now)
    hours, rest = divmod(left, 3600)
    minutes = math.ceil(rest / 60)
    if minutes == 60:
        hours, minutes = hours + 1, 0
    if hours and minutes:
        return f"{hours} h {minutes} min"
    if hours:
        return f"{hours} h"
    return f"{max(minutes, 1)} min"
