"""SQLite persistence (the embedded default behind core.store.protocol.Store).

One connection per store (aiosqlite: sqlite3 on a thread of its own; core.store.sqlite_worker) that runs every
statement in the order it was queued, so single statements never interleave; the connection is in autocommit mode
(``isolation_level=None``), and statements queued together are handed over together and their writes committed
as one transaction (group commit: a statement's future resolves after its commit). That keeps the hot paths
(``claim_event``, ``get_conversation``, ``record_usage``) at one job on the connection's thread shared with
whatever else is queued at that moment, with no lock, and lets hundreds of coroutines pipeline their statements.

The few operations that need several statements (migrations) run inside ``_transaction()``, which holds
``_tx_lock``. While it is held, every other statement waits for it (see ``_fetch``), so nobody's write is
pulled into, or rolled back with, someone else's transaction.

The statements are shared with the PostgreSQL store (core/store/sql.py); this module is the connection, its
transactions and migrations (core/store/sqlite_schema.py, never shared: each database's released schema is its
own), SQLite's statement for taking a spare and its way of rating an answer. Rows read on every message are
cached in front of the statements (core/store/cache.py): one process owns an SQLite database. RETURNING needs
SQLite >= 3.35.
"""
from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncContextManager, AsyncIterator, Callable, Sequence

from core.chat.locks import KeyedLocks
from core.store.cache import CachedReads
from core.store.signals import LocalSignals
from core.store.shares import WholeBudget
from core.store.sql import LEASE_SECONDS, Execute, SqlStore
from core.store.sqlite_schema import MIGRATIONS, SCHEMA_VERSION
from core.store.sqlite_worker import SqliteWorker

if TYPE_CHECKING:  # pragma: no cover
    from core.store.protocol import Store

__all__ = ["SCHEMA_VERSION", "SqliteStore"]

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000                    # another process (e.g. `teambridge chat` next to `run`) holds the lock


class SqliteStore(CachedReads, SqlStore):
    """core.store.protocol.Store on SQLite. Use ``async with SqliteStore(path) as store:`` or open()/close()."""

    # One DELETE ... RETURNING: two takers never get the same spare (SQLite has no row locks to skip: its
    # writers take turns).
    _TAKE_SPARE = ("DELETE FROM spare_conversations WHERE (pool, conversation_id) IN (SELECT pool, conversation_id"
                   " FROM spare_conversations WHERE pool = ? ORDER BY created_at, conversation_id LIMIT 1)"
                   " RETURNING conversation_id")

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time, owner: str = "local",
                 lease: float = LEASE_SECONDS) -> None:
        super().__init__()   # the read caches
        self._path = path
        self._clock = clock
        # The process streaming a reply owns its in-flight row. One process owns an SQLite database, so the
        # default owner is one stable name: a restarted process marks everything its predecessor left.
        self.owner = owner
        self._lease = lease
        self._lease_task: asyncio.Task | None = None
        self._signals: LocalSignals | None = None
        self._conn: SqliteWorker | None = None
        self._tx_lock = asyncio.Lock()     # one multi-statement transaction at a time
        self._tx_open = False              # True while such a transaction is open on the connection
        self._tx_done = asyncio.Event()    # set whenever no transaction is open
        self._tx_done.set()
        self._last_prune = 0.0

    # ---- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> "SqliteStore":
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        if self._conn is not None:
            return
        if str(self._path) != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit; we issue BEGIN ourselves where several statements belong together.
        conn = await SqliteWorker.connect(self._path)
        try:
            # busy_timeout first: switching to WAL needs a lock another process may hold.
            await conn.execute_fetchall(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}", group=False)
            rows = await conn.execute_fetchall("PRAGMA journal_mode = WAL", group=False)
            mode = rows[0][0] if rows else "?"
            if mode.lower() != "wal" and str(self._path) != ":memory:":
                # WAL is refused on some network file systems; we still work, just with more lock waits.
                log.warning("SQLite database %s: WAL journal mode unavailable, using %s", self._path, mode)
            # NORMAL is durable in WAL mode except for the last commits on power loss (not on a crash).
            await conn.execute_fetchall("PRAGMA synchronous = NORMAL", group=False)
            await conn.execute_fetchall("PRAGMA foreign_keys = ON", group=False)
            self._conn = conn
            await self._migrate()
            await self.load_preferences()   # read on every message: kept whole in memory when small
            await self.renew_lease()
            await self.prune_events()
        except BaseException:
            self._conn = None
            await conn.close()
            raise
        self._lease_task = asyncio.create_task(self._keep_lease(), name="teambridge-store-lease")

    async def close(self) -> None:
        if self._conn is None:
            return
        task, self._lease_task = self._lease_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        try:
            await self._fetch("DELETE FROM instances WHERE owner = ?", (self.owner,))
        except sqlite3.Error:
            log.warning("could not give up this process's lease; it runs out by itself")
        conn, self._conn = self._conn, None
        self._all_preferences = None   # read whole again at the next open
        # Let a transaction in progress finish rather than closing under it.
        async with self._tx_lock:
            await conn.close()

    def message_rates(self) -> None:
        """One process on its own file: the limiter counts message rates in its memory."""
        return None

    def rate_shares(self, scope: str, *, window: float, refresh: float = 1.0) -> WholeBudget:
        """One process on its own file: its rate budgets are the app's whole budgets."""
        return WholeBudget()

    def turn_locks(self) -> KeyedLocks:
        """One process owns an SQLite database: asyncio locks serialize its turns."""
        return KeyedLocks()

    def signals(self) -> LocalSignals:
        """One process owns an SQLite database: its signals stay in it."""
        if self._signals is None:
            self._signals = LocalSignals()
        return self._signals

    async def schema_version(self) -> int:
        rows = await self._fetch("PRAGMA user_version")
        return int(rows[0][0])

    async def connection_settings(self) -> dict[str, int]:
        """The per-connection pragmas this store set (for diagnostics): foreign_keys, synchronous, busy_timeout."""
        return {name: int((await self._fetch(f"PRAGMA {name}"))[0][0])
                for name in ("foreign_keys", "synchronous", "busy_timeout")}

    async def _migrate(self) -> None:
        for target in range(1, SCHEMA_VERSION + 1):
            async with self._transaction() as execute:
                # Re-read inside the (write-locked) transaction: another process may have migrated meanwhile.
                current = int((await execute("PRAGMA user_version"))[0][0])
                if current >= target:
                    continue
                if current != target - 1:  # pragma: no cover - cannot happen with the loop above
                    raise RuntimeError(f"database schema version {current}, expected {target - 1}")
                for statement in MIGRATIONS[target - 1]:
                    await execute(statement)
                # PRAGMA takes no parameters; target is our own int.
                await execute(f"PRAGMA user_version = {int(target)}")
                log.info("SQLite database %s migrated to schema version %d", self._path, target)
        current = await self.schema_version()
        if current > SCHEMA_VERSION:
            raise RuntimeError(
                f"database {self._path} has schema version {current}, newer than this teambridge "
                f"understands ({SCHEMA_VERSION}); upgrade teambridge or use another database")

    # ---- plumbing ----------------------------------------------------------------------------

    def _require(self) -> SqliteWorker:
        if self._conn is None:
            raise RuntimeError("store is not open (call await store.open() or use `async with`)")
        return self._conn

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Run one statement (autocommit) and return its rows (grouped with what else is queued now)."""
        while self._tx_open:
            # A multi-statement transaction is open on our one connection: wait, so that this statement is
            # not executed (and possibly rolled back) inside it. An Event, not the lock, so that all waiters
            # resume together and pipeline. Once it is closed we queue directly: no await separates the
            # check from the queueing, so a later BEGIN is queued after this statement.
            await self._tx_done.wait()
        return list(await self._require().execute_fetchall(sql, params))

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Callable[..., Any]]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error); yields an execute(sql, params) -> rows."""
        conn = self._require()
        async with self._tx_lock:
            async def execute(sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
                return list(await conn.execute_fetchall(sql, params, group=False))

            self._tx_open = True
            self._tx_done.clear()
            try:
                # IMMEDIATE takes the write lock up front, so two processes cannot both read, then both write.
                await conn.execute_fetchall("BEGIN IMMEDIATE", group=False)
                try:
                    yield execute
                except BaseException:
                    await conn.execute_fetchall("ROLLBACK", group=False)
                    raise
                await conn.execute_fetchall("COMMIT", group=False)
            finally:
                self._tx_open = False
                self._tx_done.set()

    def _history_transaction(self, conversation: str) -> AsyncContextManager[Execute]:
        return self._transaction()   # BEGIN IMMEDIATE: one writer at a time, across processes too

    # ---- SQLite's own statements -------------------------------------------------------------------

    async def rate_answer(self, answer_id: str, user: str, rating: int) -> int | None:
        # Two statements: SQLite's RETURNING sees the row as written, so it cannot return the rating it replaced
        # (PostgreSQL's does, in one statement).
        before = await self._fetch('SELECT rating FROM feedback WHERE answer_id = ? AND "user" = ?',
                                   (answer_id, user))
        await self._fetch(
            'INSERT INTO feedback (answer_id, "user", rating, at) VALUES (?, ?, ?, ?)'
            ' ON CONFLICT (answer_id, "user") DO UPDATE SET rating = excluded.rating, at = excluded.at',
            (answer_id, user, int(rating), float(self._clock())))
        return int(before[0][0]) if before else None


if TYPE_CHECKING:  # pragma: no cover - lets a type checker confirm SqliteStore satisfies the port
    def _satisfies_port(store: SqliteStore) -> Store:
        return store
