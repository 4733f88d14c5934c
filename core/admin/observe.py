"""What operators watch: one report per answered message, and the platform and backend events around it.

ChatService tells an injected `Observer` when a turn starts and how it ended (`TurnReport`); platform
adapters tell it about rate limits (429s, retries, waits for a rate budget). The composition root decides
who listens: `TurnLog` writes the one INFO line per answered message, core.admin.metrics counts for
Prometheus, `Observers` fans out to both. Nothing here knows a platform or a metrics library.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Protocol

from core.model import Usage

# How a turn ended.
ANSWERED = "answered"        # the answer was given in full
FAILED = "failed"            # the backend failed (OpenAI error, timeout); the user saw a notice
STOPPED = "stopped"          # a reader pressed stop
INTERRUPTED = "interrupted"  # shutdown cut it off
ERROR = "error"              # a bug of ours; logged with its traceback
REFUSED = "refused"          # access or usage limits said no before anything ran
OUTCOMES = (ANSWERED, FAILED, STOPPED, INTERRUPTED, ERROR, REFUSED)


@dataclass(frozen=True, slots=True)
class TurnReport:
    platform: str
    assistant: str
    channel: str
    user: str
    outcome: str
    total_seconds: float                 # from the event reaching teambridge to the end of the answer
    first_text_seconds: float | None     # from the event to the first text handed to the platform (None: no text)
    usage: Usage = Usage()
    backend: str = ""
    text: str = ""                       # what the user wrote: logged at DEBUG only
    started: bool = True                 # False: refused before the turn began (never counted in flight)


class Observer(Protocol):
    def turn_started(self, platform: str, assistant: str) -> None: ...
    def turn_finished(self, report: TurnReport) -> None: ...
    def backend_error(self, backend: str, message: str) -> None: ...
    # platform rate limits: a 429 answered, a request retried, seconds spent waiting for a rate budget
    def rate_limited(self, platform: str) -> None: ...
    def retried(self, platform: str) -> None: ...
    def budget_wait(self, platform: str, seconds: float) -> None: ...
    def feedback(self, platform: str, assistant: str, rating: int) -> None: ...   # a person rated an answer

    # the retention sweep (retention.conversations_days): how many conversations one run deleted, or that it failed
    def retention_swept(self, deleted: int, *, failed: bool = False) -> None: ...


class NullObserver:
    def turn_started(self, platform: str, assistant: str) -> None:
        pass

    def turn_finished(self, report: TurnReport) -> None:
        pass

    def backend_error(self, backend: str, message: str) -> None:
        pass

    def rate_limited(self, platform: str) -> None:
        pass

    def retried(self, platform: str) -> None:
        pass

    def budget_wait(self, platform: str, seconds: float) -> None:
        pass

    def feedback(self, platform: str, assistant: str, rating: int) -> None:
        return None

    def retention_swept(self, deleted: int, *, failed: bool = False) -> None:
        pass


class Observers:
    """Fans every call out; one listener's bug must not break an answer or the other listeners."""

    def __init__(self, *observers: Observer) -> None:
        self._observers = observers

    def _each(self, method: str, *args) -> None:
        for observer in self._observers:
            try:
                getattr(observer, method)(*args)
            except Exception:
                logging.getLogger("teambridge").exception("observer %s.%s failed", type(observer).__name__, method)

    def turn_started(self, platform: str, assistant: str) -> None:
        self._each("turn_started", platform, assistant)

    def turn_finished(self, report: TurnReport) -> None:
        self._each("turn_finished", report)

    def backend_error(self, backend: str, message: str) -> None:
        self._each("backend_error", backend, message)

    def rate_limited(self, platform: str) -> None:
        self._each("rate_limited", platform)

    def retried(self, platform: str) -> None:
        self._each("retried", platform)

    def budget_wait(self, platform: str, seconds: float) -> None:
        self._each("budget_wait", platform, seconds)

    def feedback(self, platform: str, assistant: str, rating: int) -> None:
        self._each("feedback", platform, assistant, rating)

    def retention_swept(self, deleted: int, *, failed: bool = False) -> None:
        for observer in self._observers:
            try:
                observer.retention_swept(deleted, failed=failed)
            except Exception:
                logging.getLogger("teambridge").exception("observer %s.retention_swept failed",
                                                          type(observer).__name__)


class TurnLog(NullObserver):
    """The one INFO line per answered message. The message text only at DEBUG (it is the user's content).

    The fields ride on the record as `turn` too, so the JSON formatter emits them as keys, not only as text."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger("teambridge.turns")

    def turn_finished(self, report: TurnReport) -> None:
        u = report.usage
        fields = {"platform": report.platform, "assistant": report.assistant, "channel": report.channel,
                  "user": report.user, "outcome": report.outcome,
                  "first_text_ms": None if report.first_text_seconds is None else round(report.first_text_seconds * 1000),
                  "total_ms": round(report.total_seconds * 1000),
                  "input_tokens": u.input_tokens, "output_tokens": u.output_tokens, "tool_calls": u.tool_calls}
        first = "-" if fields["first_text_ms"] is None else f"{fields['first_text_ms']}ms"
        # INFO whatever the outcome: a failure's reason has its own WARNING line (with the conversation key)
        self._log.info("%s %s/%s channel=%s user=%s first_text=%s total=%dms tokens=%d+%d tools=%d",
                       report.outcome, report.platform, report.assistant, report.channel, report.user, first,
                       fields["total_ms"], u.input_tokens, u.output_tokens, u.tool_calls, extra={"turn": fields})
        if report.text and self._log.isEnabledFor(logging.DEBUG):
            self._log.debug("message text from %s in %s: %s", report.user, report.channel, json.dumps(report.text,
                            ensure_ascii=False))
