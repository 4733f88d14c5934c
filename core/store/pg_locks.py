"""PostgreSQL advisory locks: the key of a lock for a string, and the turn locks across processes
(core.chat.locks.TurnLocks) that PostgresStore.turn_locks() hands out."""
from __future__ import annotations

import asyncio
import hashlib
import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import asyncpg

from core.chat.locks import KeyedLocks

log = logging.getLogger("core.store.postgres")


def lock_key(text: str) -> int:
    """A signed 64-bit advisory lock key for a string (a collision only makes two keys wait for each other)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


class PgTurnLocks:
    """TurnLocks across processes: PostgreSQL session-level advisory locks on one dedicated connection.

    One connection per process holds every lock this process has, so a hundred turns at once need one
    connection, not a hundred; and when the process dies its connection closes and PostgreSQL releases its
    locks. Taking a lock is a non-blocking pg_try_advisory_lock (a blocking one would stall the shared
    connection); while another process holds it, we retry with a growing pause (at most MAX_POLL). Inside this
    process an asyncio lock per key queues the waiters in order first, so only one of them polls."""

    MIN_POLL = 0.01
    MAX_POLL = 0.25

    def __init__(self, url: str) -> None:
        self._url = url
        self._local = KeyedLocks()
        self._conn: asyncpg.Connection | None = None
        self._conn_lock = asyncio.Lock()   # one statement at a time on the shared connection

    async def _query(self, sql: str, *args: Any) -> Any:
        async with self._conn_lock:
            if self._conn is None or self._conn.is_closed():
                # (Re)connect. Locks taken on a lost connection are gone: a turn running then may overlap with
                # one in another process — logged, and rare (the database restarted under us).
                if self._conn is not None:
                    log.warning("the turn-lock connection to PostgreSQL was lost; reconnecting")
                self._conn = await asyncpg.connect(self._url)
            return await self._conn.fetchval(sql, *args)

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        key_id = lock_key("turn:" + key)
        async with self._local.hold(key):
            pause = self.MIN_POLL
            while not await self._query("SELECT pg_try_advisory_lock($1)", key_id):
                await asyncio.sleep(pause)
                pause = min(pause * 2, self.MAX_POLL)
            try:
                yield
            finally:
                try:
                    await asyncio.shield(self._query("SELECT pg_advisory_unlock($1)", key_id))
                except Exception as exc:  # the connection is gone, and the lock with it
                    log.warning("could not release a turn lock: %s", exc)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            await conn.close()
