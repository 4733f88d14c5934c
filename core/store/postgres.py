"""PostgreSQL persistence: the Store for several `teambridge run` processes on one database.

Driver: asyncpg. It is asyncio-native, ships binary wheels with its own protocol implementation (no libpq to
install in the image or on CI), has a connection pool built in, and is the fastest Python driver for the
small single-statement queries that make up every hot path here. (psycopg 3 would also do; it needs libpq or
its binary extra, and its pool is a separate package.)

How the promises of interface.md ("Several processes, one database") are kept:
- each event answered once: `claim_event` is one INSERT against the primary key; the first writer wins;
- one turn at a time per conversation: `turn_locks()` hands out session-level advisory locks taken on one
  dedicated connection per process (see PgTurnLocks); they vanish with that connection, so a killed process
  holds nothing;
- replies in flight carry their process's id (`owner`); every process renews a lease in `instances`; a
  process takes (deletes and returns) replies whose owner's lease ran out, so a dead process's cut replies are
  marked by another after the lease (see take_orphaned_inflight);
- no read cache: another process may have written since.

The statements shared with SQLite are core/store/sql.py's (`?` placeholders, numbered here once per statement
text); this module is the pool, the migrations (core/store/postgres_schema.py, at open under an advisory lock,
so processes starting together migrate once) and what is PostgreSQL's own: event claims batched into one
statement (pg_claims.py), taking a spare with SKIP LOCKED, rating in one statement, history appends under an
advisory lock, turn locks (pg_locks.py), message rates (pg_rates.py), rate shares and signals. The password
comes from the URL (TEAMBRIDGE_DB) or PGPASSWORD, which asyncpg reads itself.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Sequence

import asyncpg

from core.store import postgres_schema
from core.store.pg_claims import ClaimBatcher
from core.store.pg_locks import PgTurnLocks, lock_key
from core.store.pg_rates import MESSAGE_TIMES_KEPT, PgMessageRates
from core.store.pg_signals import PgSignals
from core.store.sql import EVENT_PRUNE_INTERVAL, LEASE_SECONDS, Execute, SqlStore
from core.store.urls import redact

if TYPE_CHECKING:  # pragma: no cover
    from core.chat.locks import TurnLocks
    from core.store.shares import RateShares
    from core.store.protocol import Store

__all__ = ["PostgresStore", "numbered", "redact"]

log = logging.getLogger(__name__)

POOL_SIZE = 10

_NUMBERED: dict[str, str] = {}
# a '…' literal (with '' inside), a "…" name, or a placeholder
_PLACEHOLDER_OR_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?")


def numbered(sql: str) -> str:
    """The statement with its `?` placeholders numbered $1, $2 … (worked out once per statement text: the
    statements are constants, so after the first call this is one dict look-up, as asyncpg's own statement
    cache is). A `?` inside a string literal or a quoted name stays as it is; jsonb's `?` operator cannot be told
    from a placeholder, so statements shared with PostgreSQL use jsonb_exists() instead."""
    text = _NUMBERED.get(sql)
    if text is None:
        count = 0

        def number(match: re.Match[str]) -> str:
            nonlocal count
            if match.group() != "?":
                return match.group()       # a literal or a quoted name, as written
            count += 1
            return f"${count}"

        text = _PLACEHOLDER_OR_QUOTED.sub(number, sql)
        _NUMBERED[sql] = text
    return text


class PostgresStore(SqlStore):
    """core.store.protocol.Store on PostgreSQL. `owner`: this process's id for its replies in flight (default: a
    new random id per start; set TEAMBRIDGE_INSTANCE to a stable name per process so that a restarted process
    marks its own cut replies at once instead of after the lease)."""

    # FOR UPDATE SKIP LOCKED: concurrent takers (other processes) pass over a row one of them is deleting,
    # so each spare goes to exactly one of them and nobody waits.
    _TAKE_SPARE = ("DELETE FROM spare_conversations WHERE (pool, conversation_id) = (SELECT pool, conversation_id"
                   " FROM spare_conversations WHERE pool = ? ORDER BY created_at, conversation_id LIMIT 1"
                   " FOR UPDATE SKIP LOCKED) RETURNING conversation_id")

    def __init__(self, url: str, *, clock: Callable[[], float] = time.time, owner: str | None = None,
                 lease: float = LEASE_SECONDS, pool_size: int = POOL_SIZE) -> None:
        self._url = url
        self._clock = clock
        self.owner = owner or f"pid-{uuid.uuid4().hex[:12]}"
        self._lease = lease
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._last_prune = 0.0
        self._lease_task: asyncio.Task | None = None
        self._locks: PgTurnLocks | None = None
        self._signals: PgSignals | None = None
        self._claims = ClaimBatcher(lambda *args: self._require().fetch(*args), clock)

    # ---- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> "PostgresStore":
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        if self._pool is not None:
            return
        try:
            pool = await asyncpg.create_pool(self._url, min_size=1, max_size=self._pool_size)
        except (OSError, asyncpg.PostgresError) as exc:
            raise RuntimeError(f"cannot connect to PostgreSQL at {redact(self._url)}: {exc}") from None
        self._pool = pool
        try:
            await self.migrate()
            await self.renew_lease()
            await self.prune_events()
        except BaseException:
            self._pool = None
            await pool.close()
            raise
        self._lease_task = asyncio.create_task(self._keep_lease(), name="teambridge-store-lease")

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        task, self._lease_task = self._lease_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._locks is not None:
            await self._locks.close()
        if self._signals is not None:
            await self._signals.close()
        try:
            # a clean stop gives up the lease at once (its replies, if any were left, become orphans now)
            await pool.execute("DELETE FROM instances WHERE owner = $1", self.owner)
        except (OSError, asyncpg.PostgresError):
            log.warning("could not give up this process's lease; it runs out by itself")
        await pool.close()

    def _require(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("store is not open (call await store.open() or use `async with`)")
        return self._pool

    async def schema_version(self) -> int:
        return int(await self._require().fetchval("SELECT version FROM teambridge_schema"))

    async def migrate(self) -> int:
        """Apply the migrations this database lacks (under an advisory lock). Returns the schema version."""
        pool = self._require()
        async with pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", postgres_schema.MIGRATION_LOCK)
            try:
                await conn.execute("CREATE TABLE IF NOT EXISTS teambridge_schema (version INTEGER NOT NULL)")
                await conn.execute("INSERT INTO teambridge_schema (version) SELECT 0"
                                   " WHERE NOT EXISTS (SELECT 1 FROM teambridge_schema)")
                current = int(await conn.fetchval("SELECT version FROM teambridge_schema"))
                migrations = postgres_schema.MIGRATIONS
                if current > len(migrations):
                    raise RuntimeError(
                        f"database {redact(self._url)} has schema version {current}, newer than this teambridge "
                        f"understands ({len(migrations)}); upgrade teambridge or use another database")
                for target in range(current + 1, len(migrations) + 1):
                    async with conn.transaction():
                        for statement in migrations[target - 1]:
                            await conn.execute(statement)
                        await conn.execute("UPDATE teambridge_schema SET version = $1", target)
                    log.info("PostgreSQL database %s migrated to schema version %d", redact(self._url), target)
                return max(current, len(migrations))
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", postgres_schema.MIGRATION_LOCK)

    def rate_shares(self, scope: str, *, window: float, refresh: float = 1.0) -> "RateShares":
        """This process's shares of the app's rate budgets in `scope` (a Slack workspace, a Discord bot), split
        with the other processes on this database (core/store/postgres_shares.py)."""
        from core.store.postgres_shares import PgRateShares
        return PgRateShares(self._require, owner=self.owner, scope=scope, window=window, refresh=refresh,
                            clock=self._clock, lock_key=lock_key)

    def message_rates(self) -> PgMessageRates:
        """Each user's message rate counted across every process on this database."""
        return PgMessageRates(self._require)

    def turn_locks(self) -> "TurnLocks":
        if self._locks is None:
            self._locks = PgTurnLocks(self._url)
        return self._locks

    def signals(self) -> PgSignals:
        if self._signals is None:
            self._signals = PgSignals(self._url, self._require)
        return self._signals

    # ---- how a statement reaches PostgreSQL --------------------------------------------------

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return await self._require().fetch(numbered(sql), *params)

    @asynccontextmanager
    async def _history_transaction(self, conversation: str) -> AsyncIterator[Execute]:
        """A transaction holding this conversation's history lock: appends from several processes queue up."""
        async with self._require().acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key("history:" + conversation))

            async def execute(sql: str, params: Sequence[Any] = ()) -> list[Any]:
                return await conn.fetch(numbered(sql), *params)

            yield execute

    # ---- PostgreSQL's own statements -------------------------------------------------------------

    async def claim_event(self, platform: str, event_key: str) -> bool:
        now = self._clock()
        self._require()
        # batched with the other claims of this moment: one INSERT for a burst (core/store/pg_claims.py)
        won = await self._claims.claim(platform, event_key)
        if now - self._last_prune >= EVENT_PRUNE_INTERVAL:
            await self.prune_events()
        return bool(won)

    async def prune_events(self) -> int:
        pruned = await super().prune_events()
        await self._fetch("DELETE FROM message_times WHERE at <= ?", (float(self._clock()) - MESSAGE_TIMES_KEPT,))
        return pruned

    async def rate_answer(self, answer_id: str, user: str, rating: int) -> int | None:
        # The rating it replaces is read in the same statement that replaces it: two processes taking two clicks
        # of one person each get a consistent answer.
        rows = await self._fetch(
            'WITH old AS (SELECT rating FROM feedback WHERE answer_id = ? AND "user" = ?)'
            ' INSERT INTO feedback (answer_id, "user", rating, at) VALUES (?, ?, ?, ?)'
            ' ON CONFLICT (answer_id, "user") DO UPDATE SET rating = excluded.rating, at = excluded.at'
            " RETURNING (SELECT rating FROM old)", (answer_id, user, answer_id, user, int(rating),
                                                    float(self._clock())))
        return None if not rows or rows[0][0] is None else int(rows[0][0])


if TYPE_CHECKING:  # pragma: no cover - lets a type checker confirm PostgresStore satisfies the port
    def _satisfies_port(store: PostgresStore) -> Store:
        return store
