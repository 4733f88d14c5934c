"""Retrying a model request: which failures, how long to wait (the server's hint first, else backoff).

Streams are retried by the backends, not by the SDK: only the backend knows whether text already reached
the user (a retry then would show it twice), and only there can the wait be injected for tests.
"""
from __future__ import annotations

import random
from email.utils import parsedate_to_datetime
from time import time as _now
from typing import Mapping

MAX_RETRY_AFTER = 60.0   # never wait longer than this for one retry


class Retryable(Exception):
    """A failure that may be retried when nothing the user can see was produced yet."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


def delay_for(attempt: int, retry_after: float | None) -> float:
    """Seconds before retry number `attempt` (1-based): the server's Retry-After, else jittered backoff."""
    delay = retry_after if retry_after is not None else min(8.0, 0.5 * 2 ** (attempt - 1)) * (1 + random.random() / 4)
    return min(delay, MAX_RETRY_AFTER)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """`retry-after-ms` (OpenAI) or `retry-after` in seconds or as an HTTP date; None when absent or unreadable."""
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            return max(0.0, float(ms) / 1000)
        if (s := headers.get("retry-after")) is not None:
            try:
                return max(0.0, float(s))
            except ValueError:
                return max(0.0, parsedate_to_datetime(s).timestamp() - _now())
    except (TypeError, ValueError):
        pass
    return None
