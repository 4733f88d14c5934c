"""The stand-in Slack's rate limits: Slack's published tiers, counted per workspace in a sliding window of
one "minute" (tests shrink the minute), and chat.postMessage's own limit per channel."""
from __future__ import annotations

import time
from collections import defaultdict, deque

# Slack's published tiers, calls per minute per workspace (docs.slack.dev/apis/web-api/rate-limits).
TIERS: dict[str, int] = {
    "chat.startStream": 20, "chat.stopStream": 20,                      # Tier 2
    "chat.update": 50, "chat.delete": 50, "reactions.add": 50,           # Tier 3
    "conversations.replies": 50, "conversations.history": 50,
    "chat.appendStream": 100, "chat.postEphemeral": 100, "users.info": 100,  # Tier 4
    "files.getUploadURLExternal": 100, "files.completeUploadExternal": 100, "files.info": 100,
    "assistant.threads.setStatus": 100, "assistant.threads.setTitle": 100,
    "assistant.threads.setSuggestedPrompts": 100,
}
POST_MESSAGE_PER_CHANNEL = 60  # "special": about one per second per channel


class RateWindows:
    """Calls per method (per channel for chat.postMessage) in the last "minute"."""

    def __init__(self, tiers: dict[str, int], post_per_channel: int) -> None:
        self.tiers, self.post_per_channel = tiers, post_per_channel
        self._windows: dict[str, deque[float]] = defaultdict(deque)

    def over(self, method: str, args: dict, minute: float) -> bool:
        """Whether this call is over its limit now, in a minute that lasts `minute` seconds (a call within the
        limit is counted)."""
        if method == "chat.postMessage":
            key, limit = f"{method}:{args.get('channel')}", self.post_per_channel
        elif method in self.tiers:
            key, limit = method, self.tiers[method]
        else:
            return False
        now = time.monotonic()
        window = self._windows[key]
        while window and window[0] <= now - minute:
            window.popleft()
        if len(window) >= limit:
            return True
        window.append(now)
        return False
