"""Discord-style rate limiting for the stand-in: fixed-window buckets with Discord's headers.

Discord does not publish per-route limits; the community observes ~5 sends/edits per 5 s per channel and
a global 50 requests/s per bot (interaction webhook routes are not counted globally). A 429 carries a
JSON body {"message", "retry_after", "global"}, X-RateLimit-Scope and a `Via` header (without `Via`
discord.py assumes a Cloudflare ban and raises instead of retrying).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class Window:
    limit: int
    period: float
    count: int = 0
    reset_at: float = 0.0

    def take(self, now: float) -> tuple[bool, int, float]:
        """(allowed, remaining, reset_after)."""
        if now >= self.reset_at:
            self.count = 0
            self.reset_at = now + self.period
        if self.count >= self.limit:
            return False, 0, self.reset_at - now
        self.count += 1
        return True, self.limit - self.count, self.reset_at - now


@dataclass(slots=True)
class Decision:
    allowed: bool
    headers: dict[str, str]
    retry_after: float = 0.0
    is_global: bool = False
    scope: str = "user"


@dataclass(slots=True)
class RateLimiter:
    channel_limit: int = 5
    channel_period: float = 5.0
    global_limit: int = 50
    global_period: float = 1.0
    webhook_limit: int = 5
    webhook_period: float = 2.0
    send_headers: bool = True
    _windows: dict[str, Window] = field(default_factory=dict)
    _global: Window | None = None

    def check(self, bucket_hash: str, major: str, *, counts_globally: bool, kind: str) -> Decision:
        now = time.monotonic()
        if counts_globally:
            if self._global is None:
                self._global = Window(self.global_limit, self.global_period)
            ok, _, reset_after = self._global.take(now)
            if not ok:
                return Decision(False, self._limited_headers("global", reset_after, None),
                                retry_after=round(reset_after, 3), is_global=True, scope="global")
        limit, period = {
            "channel": (self.channel_limit, self.channel_period),
            "webhook": (self.webhook_limit, self.webhook_period),
        }.get(kind, (1000, 1.0))
        key = f"{bucket_hash}:{major}"
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = Window(limit, period)
        ok, remaining, reset_after = window.take(now)
        if not ok:
            return Decision(False, self._limited_headers("user", reset_after, (bucket_hash, limit)),
                            retry_after=round(reset_after, 3), scope="user")
        headers: dict[str, str] = {}
        if self.send_headers:
            headers = {
                "X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
                "X-RateLimit-Reset-After": f"{reset_after:.3f}",
                "X-RateLimit-Bucket": bucket_hash,
            }
        return Decision(True, headers)

    def _limited_headers(self, scope: str, reset_after: float, bucket: tuple[str, int] | None) -> dict[str, str]:
        headers = {"Via": "1.1 google", "X-RateLimit-Scope": scope, "Retry-After": str(max(1, round(reset_after)))}
        if scope == "global":
            headers["X-RateLimit-Global"] = "true"
        if bucket and self.send_headers:
            headers.update({
                "X-RateLimit-Limit": str(bucket[1]),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
                "X-RateLimit-Reset-After": f"{reset_after:.3f}",
                "X-RateLimit-Bucket": bucket[0],
            })
        return headers
