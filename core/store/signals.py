"""Signals: small messages from one process to every process that shares the store.

A button click reaches whichever process the platform picks — Slack spreads Socket Mode envelopes over an app's
open connections, and HTTP mode runs behind any balancer — but the answer or the tool call it is about lives in
the process that is running that turn. That process listens on a topic; the one that received the click publishes
it there. The composition root takes the implementation from the store (`Store.signals()`): `LocalSignals` for
one process (SQLite), `PgSignals` (PostgreSQL LISTEN/NOTIFY, core/store/pg_signals.py) for several.

Delivery is at most once and only to processes listening at that moment: a signal is a nudge, never the record.
Whoever needs an answer (was anyone waiting?) asks for an acknowledgement on another topic and gives up after a
short wait.
"""
from __future__ import annotations

import logging
from typing import Callable, Protocol

log = logging.getLogger("teambridge.signals")

Handler = Callable[[str], None]
"""Called on the event loop with the payload. It must not block: start a task for anything that awaits."""


class Signals(Protocol):
    @property
    def shared(self) -> bool:
        """True when other processes hear what this one publishes (and this one hears them)."""
        ...

    async def start(self) -> None:
        """Ready to hear other processes (listening starts by itself; this waits until it has)."""
        ...

    async def publish(self, topic: str, payload: str) -> None:
        """Deliver `payload` to every handler of `topic`, in this process and, if shared, in the others."""
        ...

    def listen(self, topic: str, handler: Handler) -> Callable[[], None]:
        """Call `handler` with every payload published on `topic` from now on; returns the way to stop."""
        ...

    async def close(self) -> None: ...


class Topics:
    """The handlers of each topic in this process (both implementations dispatch through it)."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}

    def add(self, topic: str, handler: Handler) -> Callable[[], None]:
        self._handlers.setdefault(topic, []).append(handler)

        def remove() -> None:
            handlers = self._handlers.get(topic, [])
            if handler in handlers:
                handlers.remove(handler)
        return remove

    def dispatch(self, topic: str, payload: str) -> None:
        for handler in list(self._handlers.get(topic, ())):
            try:
                handler(payload)
            except Exception:  # one bad handler must not keep the others from hearing it
                log.exception("a handler of the %s signal failed", topic)


class LocalSignals:
    """Signals inside one process: publishing calls this process's handlers."""

    shared = False

    def __init__(self) -> None:
        self._topics = Topics()

    async def start(self) -> None:
        return None

    async def publish(self, topic: str, payload: str) -> None:
        self._topics.dispatch(topic, payload)

    def listen(self, topic: str, handler: Handler) -> Callable[[], None]:
        return self._topics.add(topic, handler)

    async def close(self) -> None:
        return None
