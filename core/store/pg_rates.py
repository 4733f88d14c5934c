"""Per-user message rates counted across every process on one PostgreSQL database
(core.chat.limits.MessageRates; PostgresStore.message_rates())."""
from __future__ import annotations

from typing import Callable

import asyncpg

from core.store.pg_locks import lock_key

MESSAGE_TIMES_KEPT = 3600.0    # a per-minute rate needs the last minute; older rows are pruned hourly


class PgMessageRates:
    """One short transaction per message (only when a per-minute limit is configured), under an advisory lock on
    the user, so that two processes admitting the same user's messages at once count both."""

    def __init__(self, pool: Callable[[], asyncpg.Pool]) -> None:
        self._pool = pool

    async def admit(self, user: str, limit: int, window: float, now: float) -> float | None:
        async with self._pool().acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key("rate-user:" + user))
            await conn.execute("DELETE FROM message_times WHERE user_id = $1 AND at <= $2", user, now - window)
            oldest = await conn.fetchval(
                "SELECT at FROM message_times WHERE user_id = $1 ORDER BY at DESC OFFSET $2 LIMIT 1",
                user, max(0, limit - 1))
            if oldest is not None:
                return float(oldest) + window
            await conn.execute("INSERT INTO message_times (user_id, at) VALUES ($1, $2)", user, now)
            return None
