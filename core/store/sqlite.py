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

SQL is kept portable (ON CONFLICT ... DO NOTHING/UPDATE, RETURNING, quoted "user") so the PostgreSQL store
that follows can reuse the statements; the DDL differs only in the auto-increment ids (SQLite's
``INTEGER PRIMARY KEY`` vs. ``GENERATED ALWAYS AS IDENTITY``). RETURNING needs SQLite >= 3.35.
"""
from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections import OrderedDict
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Sequence


from core.chat.locks import KeyedLocks
from core.model import ConversationKey, Usage
from core.store.sqlite_answers import SqliteAnswers
from core.store.protocol import (ConversationRecord, FileRecord, HistoryItem, InflightReply, KnowledgeFile,
                                 ToolCallRecord, UsageRow)
from core.store.signals import LocalSignals
from core.store.shares import WholeBudget
from core.store.sqlite_schema import MIGRATIONS, SCHEMA_VERSION
from core.store.sqlite_worker import SqliteWorker

if TYPE_CHECKING:  # pragma: no cover
    from core.store.protocol import Store

log = logging.getLogger(__name__)

EVENT_RETENTION_SECONDS = 7 * 24 * 3600   # processed events older than this are pruned
EVENT_PRUNE_INTERVAL = 3600.0             # a long-running process prunes at most this often
LEASE_SECONDS = 30.0                      # a process silent this long is taken for dead (its replies: orphans)
BUSY_TIMEOUT_MS = 5000                    # another process (e.g. `teambridge chat` next to `run`) holds the lock


_USAGE_COLUMNS = ("id", "ts", "assistant", "platform", "workspace", "channel", "user", "model",
                  "input_tokens", "cached_tokens", "output_tokens", "tool_calls", "code_interpreter_sessions")
_PRUNED = ("thread_markers", "reply_roots", "containers")  # tables whose rows expire (expires_at)


class _ReadCache:
    """A bounded, write-through cache of rows this process reads on every message (and often finds missing).

    Safe because one process owns an SQLite database (the PostgreSQL store for several instances will not cache).
    Missing rows are cached too: most preference look-ups find nothing.
    """

    _MISSING = object()

    def __init__(self, size: int = 20_000) -> None:
        self._size = size
        self._data: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any) -> Any:
        value = self._data.get(key, self._MISSING)
        if value is not self._MISSING:
            self._data.move_to_end(key)
        return value

    def put(self, key: Any, value: Any) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        if len(self._data) > self._size:
            self._data.popitem(last=False)

    def drop(self, key: Any) -> None:
        self._data.pop(key, None)


class SqliteStore(SqliteAnswers):
    """core.store.protocol.Store on SQLite. Use ``async with SqliteStore(path) as store:`` or open()/close()."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time, owner: str = "local",
                 lease: float = LEASE_SECONDS) -> None:
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
        self._conversations = _ReadCache()   # (key, assistant) -> ConversationRecord | None
        self._preferences = _ReadCache()     # scope -> assistant | None
        self._threads = _ReadCache()         # (platform, channel, thread) -> (assistant, expires_at) | None
        self._knowledge_stores = _ReadCache()

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

    async def renew_lease(self) -> None:
        await self._fetch(
            "INSERT INTO instances (owner, lease_until) VALUES (?, ?)"
            " ON CONFLICT (owner) DO UPDATE SET lease_until = excluded.lease_until",
            (self.owner, self._clock() + self._lease))

    async def _keep_lease(self) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            try:
                await self.renew_lease()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("could not renew this process's lease: %s", exc)

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

    # ---- conversations -----------------------------------------------------------------------

    @staticmethod
    def _conversation(row: sqlite3.Row) -> ConversationRecord:
        return ConversationRecord(
            key=row["key"], assistant=row["assistant"], backend_id=row["backend_id"],
            metadata=json.loads(row["metadata"] or "{}"), vector_store_id=row["vector_store_id"],
            created_at=row["created_at"], updated_at=row["updated_at"])

    async def get_conversation(self, key: ConversationKey, assistant: str) -> ConversationRecord | None:
        cache_key = (key.as_string(), assistant)
        cached = self._conversations.get(cache_key)
        if cached is not _ReadCache._MISSING:
            return cached
        rows = await self._fetch("SELECT * FROM conversations WHERE key = ? AND assistant = ?", cache_key)
        record = self._conversation(rows[0]) if rows else None
        self._conversations.put(cache_key, record)
        return record

    async def save_conversation(self, key: ConversationKey, assistant: str, backend_id: str,
                                metadata: dict[str, str]) -> None:
        """Insert, or point an existing (key, assistant) at a new backend conversation.

        created_at and vector_store_id of an existing row are kept.
        """
        now = self._clock()
        self._conversations.drop((key.as_string(), assistant))
        await self._fetch(
            "INSERT INTO conversations (key, assistant, backend_id, metadata, vector_store_id, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, NULL, ?, ?)"
            " ON CONFLICT (key, assistant) DO UPDATE SET backend_id = excluded.backend_id,"
            " metadata = excluded.metadata, updated_at = excluded.updated_at",
            (key.as_string(), assistant, backend_id, json.dumps(dict(metadata), ensure_ascii=False), now, now))
        self._conversations.drop((key.as_string(), assistant))  # again: a read that raced the write is stale

    async def set_conversation_vector_store(self, key: ConversationKey, assistant: str,
                                            vector_store_id: str) -> None:
        self._conversations.drop((key.as_string(), assistant))
        rows = await self._fetch(
            "UPDATE conversations SET vector_store_id = ?, updated_at = ? WHERE key = ? AND assistant = ?"
            " RETURNING 1",
            (vector_store_id, self._clock(), key.as_string(), assistant))
        self._conversations.drop((key.as_string(), assistant))
        if not rows:
            # E.g. a /reset deleted the conversation while its upload was running: nothing to attach to.
            log.warning("no conversation %s for assistant %s to attach vector store %s to",
                        key.as_string(), assistant, vector_store_id)

    async def delete_conversation(self, key: ConversationKey, assistant: str) -> bool:
        self._conversations.drop((key.as_string(), assistant))
        rows = await self._fetch(
            "DELETE FROM conversations WHERE key = ? AND assistant = ? RETURNING 1",
            (key.as_string(), assistant))
        self._conversations.drop((key.as_string(), assistant))
        return bool(rows)

    async def list_conversations(self) -> list[ConversationRecord]:
        rows = await self._fetch("SELECT * FROM conversations ORDER BY created_at, key, assistant")
        return [self._conversation(r) for r in rows]

    async def count_conversations(self) -> int:
        rows = await self._fetch("SELECT COUNT(*) FROM conversations")
        return int(rows[0][0])

    # ---- preferences -------------------------------------------------------------------------

    async def get_preference(self, scope: str) -> str | None:
        cached = self._preferences.get(scope)
        if cached is not _ReadCache._MISSING:
            return cached
        rows = await self._fetch("SELECT assistant FROM preferences WHERE scope = ?", (scope,))
        value = rows[0][0] if rows else None
        self._preferences.put(scope, value)
        return value

    async def set_preference(self, scope: str, assistant: str | None) -> None:
        """None clears the choice (routing decides again)."""
        if self._preferences.get(scope) == assistant:
            return  # already so: no write
        self._preferences.put(scope, assistant)  # readers see it at once, even while the write is queued
        if assistant is None:
            await self._fetch("DELETE FROM preferences WHERE scope = ?", (scope,))
        else:
            await self._fetch(
                "INSERT INTO preferences (scope, assistant, expires_at) VALUES (?, ?, NULL)"
                " ON CONFLICT (scope) DO UPDATE SET assistant = excluded.assistant,"
                " expires_at = excluded.expires_at", (scope, assistant))
        self._preferences.put(scope, assistant)  # again after the write: a read racing it may have put the old value

    # ---- thread markers, reply roots, containers, sync digests -------------------------------------

    async def thread_assistant(self, platform: str, channel: str, thread: str) -> str | None:
        cache_key = (platform, channel, thread)
        cached = self._threads.get(cache_key)
        if cached is _ReadCache._MISSING:
            rows = await self._fetch(
                "SELECT assistant, expires_at FROM thread_markers WHERE platform = ? AND channel = ? AND thread = ?",
                cache_key)
            cached = (rows[0][0], rows[0][1]) if rows else None
            self._threads.put(cache_key, cached)
        if cached is None or cached[1] <= self._clock():
            return None
        return cached[0]

    async def mark_thread(self, platform: str, channel: str, thread: str, assistant: str, *, ttl: float) -> None:
        cache_key = (platform, channel, thread)
        expires = self._clock() + ttl
        self._threads.put(cache_key, (assistant, expires))  # readers see it at once, even while the write is queued
        await self._fetch(
            "INSERT INTO thread_markers (platform, channel, thread, assistant, expires_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (platform, channel, thread) DO UPDATE SET assistant = excluded.assistant,"
            " expires_at = excluded.expires_at", (*cache_key, assistant, expires))
        self._threads.put(cache_key, (assistant, expires))

    async def reply_root(self, platform: str, message_id: str) -> str | None:
        rows = await self._fetch(
            "SELECT root FROM reply_roots WHERE platform = ? AND message_id = ? AND expires_at > ?",
            (platform, message_id, self._clock()))
        return rows[0][0] if rows else None

    async def save_reply_root(self, platform: str, message_id: str, root: str, *, ttl: float) -> None:
        await self._fetch(
            "INSERT INTO reply_roots (platform, message_id, root, expires_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (platform, message_id) DO UPDATE SET root = excluded.root,"
            " expires_at = excluded.expires_at", (platform, message_id, root, self._clock() + ttl))

    async def touch_container(self, container_id: str, *, ttl: float) -> bool:
        # The INSERT decides atomically (across coroutines and processes): it writes a row only when the
        # container is new or its last use is older than its life (it expired, and a new billed session began);
        # a live container's row is left alone, returns nothing, and only has its expiry moved afterwards.
        now = self._clock()
        fresh = await self._fetch(
            "INSERT INTO containers (container_id, expires_at) VALUES (?, ?)"
            " ON CONFLICT (container_id) DO UPDATE SET expires_at = excluded.expires_at"
            " WHERE containers.expires_at <= ? RETURNING 1", (container_id, now + ttl, now))
        if not fresh:
            await self._fetch("UPDATE containers SET expires_at = ? WHERE container_id = ?", (now + ttl, container_id))
        return bool(fresh)

    async def add_spare(self, pool: str, conversation_id: str) -> None:
        await self._fetch("INSERT INTO spare_conversations (pool, conversation_id, created_at) VALUES (?, ?, ?)"
                          " ON CONFLICT (pool, conversation_id) DO NOTHING", (pool, conversation_id, self._clock()))

    async def take_spare(self, pool: str) -> str | None:
        # One DELETE ... RETURNING: two takers (coroutines or processes) never get the same spare.
        rows = await self._fetch(
            "DELETE FROM spare_conversations WHERE (pool, conversation_id) IN (SELECT pool, conversation_id"
            " FROM spare_conversations WHERE pool = ? ORDER BY created_at, conversation_id LIMIT 1)"
            " RETURNING conversation_id", (pool,))
        return rows[0][0] if rows else None

    async def count_spares(self, pool: str) -> int:
        rows = await self._fetch("SELECT COUNT(*) FROM spare_conversations WHERE pool = ?", (pool,))
        return int(rows[0][0])

    async def get_sync_digest(self, platform: str, scope: str) -> str | None:
        rows = await self._fetch("SELECT digest FROM sync_digests WHERE platform = ? AND scope = ?",
                                 (platform, scope))
        return rows[0][0] if rows else None

    async def save_sync_digest(self, platform: str, scope: str, digest: str) -> None:
        await self._fetch(
            "INSERT INTO sync_digests (platform, scope, digest, synced_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (platform, scope) DO UPDATE SET digest = excluded.digest,"
            " synced_at = excluded.synced_at", (platform, scope, digest, self._clock()))

    # ---- de-duplication ----------------------------------------------------------------------

    async def claim_event(self, platform: str, event_key: str) -> bool:
        # One INSERT against the primary key: the first writer wins, across coroutines and processes alike
        # (and across instances once the store is PostgreSQL). No read-then-write race.
        now = self._clock()
        rows = await self._fetch(
            "INSERT INTO processed_events (platform, event_key, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (platform, event_key) DO NOTHING RETURNING 1", (platform, event_key, now))
        if now - self._last_prune >= EVENT_PRUNE_INTERVAL:
            await self.prune_events()
        return bool(rows)

    async def prune_events(self) -> int:
        """Forget processed events older than EVENT_RETENTION_SECONDS (returns how many) and expired rows
        (thread markers, reply roots, containers: their readers already ignore them)."""
        now = self._clock()
        self._last_prune = now
        rows = await self._fetch("DELETE FROM processed_events WHERE created_at < ? RETURNING 1",
                                 (now - EVENT_RETENTION_SECONDS,))
        for table in _PRUNED:  # our own constant names, not input
            await self._fetch(f"DELETE FROM {table} WHERE expires_at <= ?", (now,))
        return len(rows)

    # ---- uploaded files ----------------------------------------------------------------------

    async def get_file(self, sha256: str, purpose: str) -> str | None:
        rows = await self._fetch("SELECT file_id FROM files WHERE sha256 = ? AND purpose = ?", (sha256, purpose))
        return rows[0][0] if rows else None

    async def save_file(self, sha256: str, purpose: str, file_id: str, name: str, size: int) -> None:
        # A re-upload of the same bytes (e.g. after the old file was deleted at the backend) replaces the id.
        await self._fetch(
            "INSERT INTO files (sha256, purpose, file_id, name, size, created_at) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (sha256, purpose) DO UPDATE SET file_id = excluded.file_id, name = excluded.name,"
            " size = excluded.size, created_at = excluded.created_at",
            (sha256, purpose, file_id, name, int(size), self._clock()))

    async def list_files(self) -> list[FileRecord]:
        rows = await self._fetch(
            "SELECT sha256, purpose, file_id, name, size, created_at FROM files ORDER BY created_at, file_id")
        return [FileRecord(**dict(r)) for r in rows]

    async def delete_file(self, file_id: str) -> None:
        await self._fetch("DELETE FROM files WHERE file_id = ?", (file_id,))

    # ---- usage -------------------------------------------------------------------------------

    async def record_usage(self, *, assistant: str, platform: str, workspace: str, channel: str, user: str,
                           model: str, usage: Usage) -> None:
        await self._fetch(
            'INSERT INTO usage (ts, assistant, platform, workspace, channel, "user", model, input_tokens,'
            " cached_tokens, output_tokens, tool_calls, code_interpreter_sessions)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (self._clock(), assistant, platform, workspace, channel, user, model, usage.input_tokens,
             usage.cached_tokens, usage.output_tokens, usage.tool_calls, usage.code_interpreter_sessions))

    async def usage_rows(self, since: float, until: float) -> list[UsageRow]:
        """Turns with since <= ts < until, oldest first."""
        columns = ", ".join('"user"' if c == "user" else c for c in _USAGE_COLUMNS)
        rows = await self._fetch(
            f"SELECT {columns} FROM usage WHERE ts >= ? AND ts < ? ORDER BY ts, id", (since, until))
        return [UsageRow(*r) for r in rows]

    async def forget_usage_user(self, user: str, replacement: str) -> int:
        rows = await self._fetch('UPDATE usage SET "user" = ? WHERE "user" = ? RETURNING 1', (replacement, user))
        return len(rows)

    # ---- the audit trail of tool calls ---------------------------------------------------------

    async def record_tool_call(self, record: ToolCallRecord) -> None:
        await self._fetch(
            'INSERT INTO tool_calls (at, conversation, platform, channel, "user", assistant, tool, server,'
            " arguments_sha256, approval, approved_by, outcome, duration_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (record.at, record.conversation, record.platform, record.channel, record.user, record.assistant,
             record.tool, record.server, record.arguments_sha256, record.approval, record.approved_by,
             record.outcome, record.duration_ms))

    async def tool_calls(self, since: float, until: float) -> list[ToolCallRecord]:
        """Tool calls with since <= at < until, oldest first."""
        rows = await self._fetch(
            'SELECT at, conversation, platform, channel, "user", assistant, tool, server, arguments_sha256,'
            " approval, approved_by, outcome, duration_ms FROM tool_calls WHERE at >= ? AND at < ?"
            " ORDER BY at, id", (since, until))
        return [ToolCallRecord(at=r[0], conversation=r[1], platform=r[2], channel=r[3], user=r[4], assistant=r[5],
                               tool=r[6], server=r[7], arguments_sha256=r[8], approval=r[9], approved_by=r[10],
                               outcome=r[11], duration_ms=int(r[12])) for r in rows]

    # ---- replies in flight -------------------------------------------------------------------

    async def add_inflight(self, platform: str, channel: str, message_id: str, thread: str | None) -> int:
        rows = await self._fetch(
            "INSERT INTO inflight (platform, channel, message_id, thread, started_at, owner)"
            " VALUES (?, ?, ?, ?, ?, ?) RETURNING id", (platform, channel, message_id, thread, self._clock(), self.owner))
        return int(rows[0][0])

    async def take_orphaned_inflight(self, platform: str, *, own: bool = False) -> list[InflightReply]:
        """Remove and return the platform's replies whose process is gone (its lease ran out) — and, with `own`
        (at start, before this process streams anything), those left under this process's own name."""
        rows = await self._fetch(
            "DELETE FROM inflight WHERE platform = ? AND ((? AND owner = ?) OR (owner <> ? AND NOT EXISTS"
            " (SELECT 1 FROM instances i WHERE i.owner = inflight.owner AND i.lease_until > ?))) RETURNING *",
            (platform, own, self.owner, self.owner, self._clock()))
        return sorted((self._inflight(r) for r in rows), key=lambda r: r.id)

    @staticmethod
    def _inflight(r: sqlite3.Row) -> InflightReply:
        return InflightReply(id=r["id"], platform=r["platform"], channel=r["channel"], message_id=r["message_id"],
                             thread=r["thread"], started_at=r["started_at"], owner=r["owner"])

    async def remove_inflight(self, inflight_id: int) -> None:
        await self._fetch("DELETE FROM inflight WHERE id = ?", (inflight_id,))

    async def list_inflight(self, platform: str | None = None) -> list[InflightReply]:
        if platform is None:
            rows = await self._fetch("SELECT * FROM inflight ORDER BY id")
        else:
            rows = await self._fetch("SELECT * FROM inflight WHERE platform = ? ORDER BY id", (platform,))
        return [self._inflight(r) for r in rows]

    # ---- knowledge (vector store per assistant, synced from the config's files) --------------

    async def get_knowledge_store(self, assistant: str) -> str | None:
        cached = self._knowledge_stores.get(assistant)
        if cached is not _ReadCache._MISSING:
            return cached
        rows = await self._fetch("SELECT vector_store_id FROM knowledge_stores WHERE assistant = ?", (assistant,))
        value = rows[0][0] if rows else None
        self._knowledge_stores.put(assistant, value)
        return value

    async def save_knowledge_store(self, assistant: str, vector_store_id: str) -> None:
        self._knowledge_stores.drop(assistant)
        await self._fetch(
            "INSERT INTO knowledge_stores (assistant, vector_store_id, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (assistant) DO UPDATE SET vector_store_id = excluded.vector_store_id,"
            " created_at = excluded.created_at",
            (assistant, vector_store_id, self._clock()))
        self._knowledge_stores.drop(assistant)

    async def list_knowledge_files(self, assistant: str) -> list[KnowledgeFile]:
        """One assistant's files, ordered by path."""
        rows = await self._fetch(
            "SELECT path, sha256, file_id, status, error FROM knowledge_files WHERE assistant = ? ORDER BY path",
            (assistant,))
        return [KnowledgeFile(*r) for r in rows]

    async def save_knowledge_file(self, assistant: str, path: str, sha256: str, file_id: str, status: str,
                                  error: str | None = None) -> None:
        await self._fetch(
            "INSERT INTO knowledge_files (assistant, path, sha256, file_id, status, error)"
            " VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (assistant, path) DO UPDATE SET sha256 = excluded.sha256,"
            " file_id = excluded.file_id, status = excluded.status, error = excluded.error",
            (assistant, path, sha256, file_id, status, error))

    async def delete_knowledge_file(self, assistant: str, path: str) -> None:
        await self._fetch("DELETE FROM knowledge_files WHERE assistant = ? AND path = ?", (assistant, path))

    # ---- local history -----------------------------------------------------------------------

    async def load_history(self, conversation: str) -> list[HistoryItem]:
        rows = await self._fetch("SELECT seq, data, tokens FROM history_items WHERE conversation = ? ORDER BY seq",
                                 (conversation,))
        return [HistoryItem(data=json.loads(r[1]), tokens=r[2], seq=r[0]) for r in rows]

    async def append_history(self, conversation: str, items: Sequence[HistoryItem]) -> None:
        if not items:
            return
        async with self._transaction() as execute:  # the next seq and the inserts belong together
            rows = await execute("SELECT COALESCE(MAX(seq), 0) FROM history_items WHERE conversation = ?",
                                 (conversation,))
            await self._insert_history(execute, conversation, items, int(rows[0][0]) + 1)

    async def replace_history(self, conversation: str, items: Sequence[HistoryItem]) -> None:
        """E.g. older turns condensed into a summary: the old items go and these take their place, at once."""
        async with self._transaction() as execute:
            await execute("DELETE FROM history_items WHERE conversation = ?", (conversation,))
            await self._insert_history(execute, conversation, items, 1)

    @staticmethod
    async def _insert_history(execute, conversation: str, items: Sequence[HistoryItem], first: int) -> None:
        for seq, item in enumerate(items, start=first):
            await execute("INSERT INTO history_items (conversation, seq, data, tokens) VALUES (?, ?, ?, ?)",
                          (conversation, seq, json.dumps(dict(item.data), ensure_ascii=False), int(item.tokens)))

    async def delete_history(self, conversation: str) -> None:
        await self._fetch("DELETE FROM history_items WHERE conversation = ?", (conversation,))


if TYPE_CHECKING:  # pragma: no cover - lets a type checker confirm SqliteStore satisfies the port
    def _satisfies_port(store: SqliteStore) -> Store:
        return store
