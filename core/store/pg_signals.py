"""Signals across processes through PostgreSQL's LISTEN/NOTIFY (see core/store/signals.py).

One dedicated connection per process listens on one channel; every signal is `NOTIFY teambridge_signals,
'{"topic": …, "payload": …}'`, and each process dispatches it to its own handlers of that topic (the publisher's
own handlers hear it the same way, so one code path serves "the click landed here" and "it landed elsewhere").
NOTIFY payloads are limited to 8,000 bytes: signals are ids and a few fields, never message text.

If the listening connection drops (the database restarted), it is opened again with a growing pause; signals
published meanwhile are missed — the publisher's acknowledgement wait then runs out and the person is told the
request is no longer waiting, which is the truth as far as any process can tell.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Callable

import asyncpg

from core.store.signals import Handler, Topics

log = logging.getLogger("teambridge.signals")

CHANNEL = "teambridge_signals"
MAX_PAYLOAD = 7900   # NOTIFY's limit is 8,000 bytes in the default configuration
RECONNECT_PAUSES = (0.5, 1.0, 2.0, 5.0)


class PgSignals:
    shared = True

    def __init__(self, url: str, publish_on: Callable[[], asyncpg.Pool]) -> None:
        self._url = url
        self._pool = publish_on
        self._topics = Topics()
        self._conn: asyncpg.Connection | None = None
        self._started: asyncio.Task | None = None
        self._closed = False

    async def start(self) -> None:
        """Opens the listening connection (idempotent; a failed first attempt is tried again); `listen` starts
        it too, in the background."""
        self._begin()
        await asyncio.shield(self._started)

    def _begin(self) -> None:
        started = self._started
        if started is None or (started.done() and self._conn is None and not self._closed):
            self._started = asyncio.ensure_future(self._connect())
            self._started.add_done_callback(_log_failure)

    async def publish(self, topic: str, payload: str) -> None:
        message = json.dumps({"topic": topic, "payload": payload}, separators=(",", ":"))
        if len(message.encode()) > MAX_PAYLOAD:
            raise ValueError(f"a {topic} signal of {len(message)} bytes is over NOTIFY's limit")
        if self._conn is None and (self._started is None or self._started.done()):
            # never connected (or the first attempt failed): a process that publishes before listening must
            # still hear its own signals. While a lost connection is being remade, publish without waiting.
            await self.start()
        await self._pool().execute("SELECT pg_notify($1, $2)", CHANNEL, message)

    def listen(self, topic: str, handler: Handler) -> Callable[[], None]:
        self._begin()
        return self._topics.add(topic, handler)

    async def close(self) -> None:
        self._closed = True
        conn, self._conn = self._conn, None
        if self._started is not None and not self._started.done():
            self._started.cancel()
        if conn is not None and not conn.is_closed():
            try:
                await conn.close()
            except (OSError, asyncpg.PostgresError):
                conn.terminate()

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self._url)
        await conn.add_listener(CHANNEL, self._heard)
        conn.add_termination_listener(self._lost)
        self._conn = conn

    def _heard(self, _conn: Any, _pid: int, _channel: str, message: str) -> None:
        try:
            signal = json.loads(message)
            topic, payload = signal["topic"], signal["payload"]
        except (ValueError, KeyError, TypeError):
            log.warning("dropped a malformed signal (%d bytes)", len(message))
            return
        self._topics.dispatch(str(topic), str(payload))

    def _lost(self, _conn: Any) -> None:
        if self._closed:
            return
        log.warning("the signal connection to PostgreSQL was lost; reconnecting")
        self._conn = None
        self._started = asyncio.ensure_future(self._reconnect())

    async def _reconnect(self) -> None:
        for attempt in range(1_000_000):
            if self._closed:
                return
            await asyncio.sleep(RECONNECT_PAUSES[min(attempt, len(RECONNECT_PAUSES) - 1)])
            try:
                await self._connect()
                log.info("the signal connection to PostgreSQL is back")
                return
            except (OSError, asyncpg.PostgresError) as exc:
                log.debug("signal connection attempt failed: %s", exc)


def _log_failure(task: asyncio.Future) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("could not listen for signals from other processes: %s (tried again on the next use)",
                    task.exception())
