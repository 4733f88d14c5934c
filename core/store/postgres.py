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

Migrations (core/store/postgres_schema.py) run at open under an advisory lock, so processes starting together
migrate once. The password comes from the URL (TEAMBRIDGE_DB) or PGPASSWORD, which asyncpg reads itself.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Sequence

import asyncpg

from core.model import ConversationKey, Usage
from core.store import postgres_schema
from core.store.pg_claims import ClaimBatcher
from core.store.pg_signals import PgSignals
from core.store.urls import redact
from core.store.postgres_answers import PostgresAnswers
from core.store.protocol import (ConversationRecord, FileRecord, HistoryItem, InflightReply, KnowledgeFile,
                                 ToolCallRecord, UsageRow)

if TYPE_CHECKING:  # pragma: no cover
    from core.chat.locks import TurnLocks
    from core.store.shares import RateShares
    from core.store.protocol import Store

log = logging.getLogger(__name__)

EVENT_RETENTION_SECONDS = 7 * 24 * 3600
EVENT_PRUNE_INTERVAL = 3600.0
LEASE_SECONDS = 30.0           # a process silent this long is taken for dead: others mark its replies
POOL_SIZE = 10
_PRUNED = ("thread_markers", "reply_roots", "containers")
MESSAGE_TIMES_KEPT = 3600.0    # a per-minute rate needs the last minute; older rows are pruned hourly


class PostgresStore(PostgresAnswers):
    """core.store.protocol.Store on PostgreSQL. `owner`: this process's id for its replies in flight (default: a
    new random id per start; set TEAMBRIDGE_INSTANCE to a stable name per process so that a restarted process
    marks its own cut replies at once instead of after the lease)."""

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
                            clock=self._clock, lock_key=_lock_key)

    def message_rates(self) -> "PgMessageRates":
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

    # ---- leases ------------------------------------------------------------------------------

    async def renew_lease(self) -> None:
        await self._require().execute(
            "INSERT INTO instances (owner, lease_until) VALUES ($1, $2)"
            " ON CONFLICT (owner) DO UPDATE SET lease_until = excluded.lease_until",
            self.owner, self._clock() + self._lease)

    async def _keep_lease(self) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            try:
                await self.renew_lease()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away for a moment: try again next round
                log.warning("could not renew this process's lease: %s", exc)

    # ---- conversations -----------------------------------------------------------------------

    @staticmethod
    def _conversation(row: asyncpg.Record) -> ConversationRecord:
        return ConversationRecord(
            key=row["key"], assistant=row["assistant"], backend_id=row["backend_id"],
            metadata=json.loads(row["metadata"] or "{}"), vector_store_id=row["vector_store_id"],
            created_at=row["created_at"], updated_at=row["updated_at"])

    async def get_conversation(self, key: ConversationKey, assistant: str) -> ConversationRecord | None:
        row = await self._require().fetchrow("SELECT * FROM conversations WHERE key = $1 AND assistant = $2",
                                             key.as_string(), assistant)
        return self._conversation(row) if row else None

    async def save_conversation(self, key: ConversationKey, assistant: str, backend_id: str,
                                metadata: dict[str, str]) -> None:
        now = self._clock()
        await self._require().execute(
            "INSERT INTO conversations (key, assistant, backend_id, metadata, vector_store_id, created_at,"
            " updated_at) VALUES ($1, $2, $3, $4, NULL, $5, $5)"
            " ON CONFLICT (key, assistant) DO UPDATE SET backend_id = excluded.backend_id,"
            " metadata = excluded.metadata, updated_at = excluded.updated_at",
            key.as_string(), assistant, backend_id, json.dumps(dict(metadata), ensure_ascii=False), now)

    async def set_conversation_vector_store(self, key: ConversationKey, assistant: str,
                                            vector_store_id: str) -> None:
        found = await self._require().fetchval(
            "UPDATE conversations SET vector_store_id = $1, updated_at = $2 WHERE key = $3 AND assistant = $4"
            " RETURNING 1", vector_store_id, self._clock(), key.as_string(), assistant)
        if not found:
            log.warning("no conversation %s for assistant %s to attach vector store %s to",
                        key.as_string(), assistant, vector_store_id)

    async def delete_conversation(self, key: ConversationKey, assistant: str) -> bool:
        return bool(await self._require().fetchval(
            "DELETE FROM conversations WHERE key = $1 AND assistant = $2 RETURNING 1", key.as_string(), assistant))

    async def list_conversations(self) -> list[ConversationRecord]:
        rows = await self._require().fetch("SELECT * FROM conversations ORDER BY created_at, key, assistant")
        return [self._conversation(r) for r in rows]

    async def count_conversations(self) -> int:
        return int(await self._require().fetchval("SELECT COUNT(*) FROM conversations"))

    # ---- preferences, thread markers, reply roots, containers, sync digests -------------------

    async def get_preference(self, scope: str) -> str | None:
        return await self._require().fetchval("SELECT assistant FROM preferences WHERE scope = $1", scope)

    async def set_preference(self, scope: str, assistant: str | None) -> None:
        if assistant is None:
            await self._require().execute("DELETE FROM preferences WHERE scope = $1", scope)
        else:
            await self._require().execute(
                "INSERT INTO preferences (scope, assistant) VALUES ($1, $2)"
                " ON CONFLICT (scope) DO UPDATE SET assistant = excluded.assistant", scope, assistant)

    async def thread_assistant(self, platform: str, channel: str, thread: str) -> str | None:
        return await self._require().fetchval(
            "SELECT assistant FROM thread_markers WHERE platform = $1 AND channel = $2 AND thread = $3"
            " AND expires_at > $4", platform, channel, thread, self._clock())

    async def mark_thread(self, platform: str, channel: str, thread: str, assistant: str, *, ttl: float) -> None:
        await self._require().execute(
            "INSERT INTO thread_markers (platform, channel, thread, assistant, expires_at) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (platform, channel, thread) DO UPDATE SET assistant = excluded.assistant,"
            " expires_at = excluded.expires_at", platform, channel, thread, assistant, self._clock() + ttl)

    async def reply_root(self, platform: str, message_id: str) -> str | None:
        return await self._require().fetchval(
            "SELECT root FROM reply_roots WHERE platform = $1 AND message_id = $2 AND expires_at > $3",
            platform, message_id, self._clock())

    async def save_reply_root(self, platform: str, message_id: str, root: str, *, ttl: float) -> None:
        await self._require().execute(
            "INSERT INTO reply_roots (platform, message_id, root, expires_at) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (platform, message_id) DO UPDATE SET root = excluded.root,"
            " expires_at = excluded.expires_at", platform, message_id, root, self._clock() + ttl)

    async def touch_container(self, container_id: str, *, ttl: float) -> bool:
        # As in SQLite: the INSERT alone decides (new, or expired and so a new billed session).
        now = self._clock()
        pool = self._require()
        fresh = await pool.fetchval(
            "INSERT INTO containers (container_id, expires_at) VALUES ($1, $2)"
            " ON CONFLICT (container_id) DO UPDATE SET expires_at = excluded.expires_at"
            " WHERE containers.expires_at <= $3 RETURNING 1", container_id, now + ttl, now)
        if not fresh:
            await pool.execute("UPDATE containers SET expires_at = $1 WHERE container_id = $2", now + ttl,
                               container_id)
        return bool(fresh)

    async def add_spare(self, pool: str, conversation_id: str) -> None:
        await self._require().execute(
            "INSERT INTO spare_conversations (pool, conversation_id, created_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (pool, conversation_id) DO NOTHING", pool, conversation_id, self._clock())

    async def take_spare(self, pool: str) -> str | None:
        # FOR UPDATE SKIP LOCKED: concurrent takers (other processes) pass over a row one of them is deleting,
        # so each spare goes to exactly one of them and nobody waits.
        return await self._require().fetchval(
            "DELETE FROM spare_conversations WHERE (pool, conversation_id) = (SELECT pool, conversation_id"
            " FROM spare_conversations WHERE pool = $1 ORDER BY created_at, conversation_id LIMIT 1"
            " FOR UPDATE SKIP LOCKED) RETURNING conversation_id", pool)

    async def count_spares(self, pool: str) -> int:
        return int(await self._require().fetchval("SELECT COUNT(*) FROM spare_conversations WHERE pool = $1", pool))

    async def get_sync_digest(self, platform: str, scope: str) -> str | None:
        return await self._require().fetchval(
            "SELECT digest FROM sync_digests WHERE platform = $1 AND scope = $2", platform, scope)

    async def save_sync_digest(self, platform: str, scope: str, digest: str) -> None:
        await self._require().execute(
            "INSERT INTO sync_digests (platform, scope, digest, synced_at) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (platform, scope) DO UPDATE SET digest = excluded.digest,"
            " synced_at = excluded.synced_at", platform, scope, digest, self._clock())

    # ---- de-duplication ----------------------------------------------------------------------

    async def claim_event(self, platform: str, event_key: str) -> bool:
        now = self._clock()
        self._require()
        # batched with the other claims of this moment: one INSERT for a burst (core/store/pg_claims.py)
        won = await self._claims.claim(platform, event_key)
        if now - self._last_prune >= EVENT_PRUNE_INTERVAL:
            await self.prune_events()
        return bool(won)

    async def prune_events(self) -> int:
        now = self._clock()
        self._last_prune = now
        pool = self._require()
        status = await pool.execute("DELETE FROM processed_events WHERE created_at < $1",
                                    now - EVENT_RETENTION_SECONDS)
        await pool.execute("DELETE FROM message_times WHERE at <= $1", now - MESSAGE_TIMES_KEPT)
        for table in _PRUNED:  # our own constant names, not input
            await pool.execute(f"DELETE FROM {table} WHERE expires_at <= $1", now)
        return int(status.split()[-1])

    # ---- uploaded files ----------------------------------------------------------------------

    async def get_file(self, sha256: str, purpose: str) -> str | None:
        return await self._require().fetchval("SELECT file_id FROM files WHERE sha256 = $1 AND purpose = $2",
                                              sha256, purpose)

    async def save_file(self, sha256: str, purpose: str, file_id: str, name: str, size: int) -> None:
        await self._require().execute(
            "INSERT INTO files (sha256, purpose, file_id, name, size, created_at) VALUES ($1, $2, $3, $4, $5, $6)"
            " ON CONFLICT (sha256, purpose) DO UPDATE SET file_id = excluded.file_id, name = excluded.name,"
            " size = excluded.size, created_at = excluded.created_at",
            sha256, purpose, file_id, name, int(size), self._clock())

    async def list_files(self) -> list[FileRecord]:
        rows = await self._require().fetch(
            "SELECT sha256, purpose, file_id, name, size, created_at FROM files ORDER BY created_at, file_id")
        return [FileRecord(**dict(r)) for r in rows]

    async def delete_file(self, file_id: str) -> None:
        await self._require().execute("DELETE FROM files WHERE file_id = $1", file_id)

    # ---- usage -------------------------------------------------------------------------------

    async def record_usage(self, *, assistant: str, platform: str, workspace: str, channel: str, user: str,
                           model: str, usage: Usage) -> None:
        await self._require().execute(
            'INSERT INTO usage (ts, assistant, platform, workspace, channel, "user", model, input_tokens,'
            " cached_tokens, output_tokens, tool_calls, code_interpreter_sessions)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            self._clock(), assistant, platform, workspace, channel, user, model, usage.input_tokens,
            usage.cached_tokens, usage.output_tokens, usage.tool_calls, usage.code_interpreter_sessions)

    async def usage_rows(self, since: float, until: float) -> list[UsageRow]:
        rows = await self._require().fetch(
            'SELECT id, ts, assistant, platform, workspace, channel, "user", model, input_tokens, cached_tokens,'
            " output_tokens, tool_calls, code_interpreter_sessions FROM usage WHERE ts >= $1 AND ts < $2"
            " ORDER BY ts, id", float(since), float(until))
        return [UsageRow(*r) for r in rows]

    async def forget_usage_user(self, user: str, replacement: str) -> int:
        rows = await self._require().fetch('UPDATE usage SET "user" = $1 WHERE "user" = $2 RETURNING 1',
                                           replacement, user)
        return len(rows)

    # ---- the audit trail of tool calls ---------------------------------------------------------

    async def record_tool_call(self, record: ToolCallRecord) -> None:
        await self._require().execute(
            'INSERT INTO tool_calls (at, conversation, platform, channel, "user", assistant, tool, server,'
            " arguments_sha256, approval, approved_by, outcome, duration_ms)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            float(record.at), record.conversation, record.platform, record.channel, record.user, record.assistant,
            record.tool, record.server, record.arguments_sha256, record.approval, record.approved_by,
            record.outcome, int(record.duration_ms))

    async def tool_calls(self, since: float, until: float) -> list[ToolCallRecord]:
        rows = await self._require().fetch(
            'SELECT at, conversation, platform, channel, "user", assistant, tool, server, arguments_sha256,'
            " approval, approved_by, outcome, duration_ms FROM tool_calls WHERE at >= $1 AND at < $2"
            " ORDER BY at, id", float(since), float(until))
        return [ToolCallRecord(*r[:12], duration_ms=int(r[12])) for r in rows]

    # ---- replies in flight -------------------------------------------------------------------

    async def add_inflight(self, platform: str, channel: str, message_id: str, thread: str | None) -> int:
        return int(await self._require().fetchval(
            "INSERT INTO inflight (platform, channel, message_id, thread, started_at, owner)"
            " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            platform, channel, message_id, thread, self._clock(), self.owner))

    async def remove_inflight(self, inflight_id: int) -> None:
        await self._require().execute("DELETE FROM inflight WHERE id = $1", inflight_id)

    @staticmethod
    def _inflight(r: asyncpg.Record) -> InflightReply:
        return InflightReply(id=r["id"], platform=r["platform"], channel=r["channel"], message_id=r["message_id"],
                             thread=r["thread"], started_at=r["started_at"], owner=r["owner"])

    async def list_inflight(self, platform: str | None = None) -> list[InflightReply]:
        if platform is None:
            rows = await self._require().fetch("SELECT * FROM inflight ORDER BY id")
        else:
            rows = await self._require().fetch("SELECT * FROM inflight WHERE platform = $1 ORDER BY id", platform)
        return [self._inflight(r) for r in rows]

    async def take_orphaned_inflight(self, platform: str, *, own: bool = False) -> list[InflightReply]:
        # DELETE ... RETURNING: each orphan goes to exactly one taker, however many processes sweep at once.
        rows = await self._require().fetch(
            "DELETE FROM inflight WHERE platform = $1 AND (($2 AND owner = $3) OR (owner <> $3 AND NOT EXISTS"
            " (SELECT 1 FROM instances i WHERE i.owner = inflight.owner AND i.lease_until > $4))) RETURNING *",
            platform, own, self.owner, self._clock())
        return sorted((self._inflight(r) for r in rows), key=lambda r: r.id)

    # ---- knowledge ---------------------------------------------------------------------------

    async def get_knowledge_store(self, assistant: str) -> str | None:
        return await self._require().fetchval(
            "SELECT vector_store_id FROM knowledge_stores WHERE assistant = $1", assistant)

    async def save_knowledge_store(self, assistant: str, vector_store_id: str) -> None:
        await self._require().execute(
            "INSERT INTO knowledge_stores (assistant, vector_store_id, created_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (assistant) DO UPDATE SET vector_store_id = excluded.vector_store_id,"
            " created_at = excluded.created_at", assistant, vector_store_id, self._clock())

    async def list_knowledge_files(self, assistant: str) -> list[KnowledgeFile]:
        rows = await self._require().fetch(
            "SELECT path, sha256, file_id, status, error FROM knowledge_files WHERE assistant = $1 ORDER BY path",
            assistant)
        return [KnowledgeFile(*r) for r in rows]

    async def save_knowledge_file(self, assistant: str, path: str, sha256: str, file_id: str, status: str,
                                  error: str | None = None) -> None:
        await self._require().execute(
            "INSERT INTO knowledge_files (assistant, path, sha256, file_id, status, error)"
            " VALUES ($1, $2, $3, $4, $5, $6)"
            " ON CONFLICT (assistant, path) DO UPDATE SET sha256 = excluded.sha256,"
            " file_id = excluded.file_id, status = excluded.status, error = excluded.error",
            assistant, path, sha256, file_id, status, error)

    async def delete_knowledge_file(self, assistant: str, path: str) -> None:
        await self._require().execute("DELETE FROM knowledge_files WHERE assistant = $1 AND path = $2",
                                      assistant, path)

    # ---- local history -----------------------------------------------------------------------

    async def load_history(self, conversation: str) -> list[HistoryItem]:
        rows = await self._require().fetch(
            "SELECT seq, data, tokens FROM history_items WHERE conversation = $1 ORDER BY seq", conversation)
        return [HistoryItem(data=json.loads(r["data"]), tokens=r["tokens"], seq=r["seq"]) for r in rows]

    @asynccontextmanager
    async def _history_transaction(self, conversation: str) -> AsyncIterator[asyncpg.Connection]:
        """A transaction holding this conversation's history lock: appends from several processes queue up."""
        async with self._require().acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key("history:" + conversation))
            yield conn

    async def append_history(self, conversation: str, items: Sequence[HistoryItem]) -> None:
        if not items:
            return
        async with self._history_transaction(conversation) as conn:
            last = await conn.fetchval(
                "SELECT COALESCE(MAX(seq), 0) FROM history_items WHERE conversation = $1", conversation)
            await _insert_history(conn, conversation, items, int(last) + 1)

    async def replace_history(self, conversation: str, items: Sequence[HistoryItem]) -> None:
        async with self._history_transaction(conversation) as conn:
            await conn.execute("DELETE FROM history_items WHERE conversation = $1", conversation)
            await _insert_history(conn, conversation, items, 1)

    async def delete_history(self, conversation: str) -> None:
        await self._require().execute("DELETE FROM history_items WHERE conversation = $1", conversation)


async def _insert_history(conn: asyncpg.Connection, conversation: str, items: Sequence[HistoryItem],
                          first: int) -> None:
    for seq, item in enumerate(items, start=first):
        await conn.execute("INSERT INTO history_items (conversation, seq, data, tokens) VALUES ($1, $2, $3, $4)",
                           conversation, seq, json.dumps(dict(item.data), ensure_ascii=False), int(item.tokens))


def _lock_key(text: str) -> int:
    """A signed 64-bit advisory lock key for a string (a collision only makes two keys wait for each other)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


class PgMessageRates:
    """core.chat.limits.MessageRates on PostgreSQL: one short transaction per message (only when a per-minute
    limit is configured), under an advisory lock on the user, so that two processes admitting the same user's
    messages at once count both."""

    def __init__(self, pool: Callable[[], asyncpg.Pool]) -> None:
        self._pool = pool

    async def admit(self, user: str, limit: int, window: float, now: float) -> float | None:
        async with self._pool().acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key("rate-user:" + user))
            await conn.execute("DELETE FROM message_times WHERE user_id = $1 AND at <= $2", user, now - window)
            oldest = await conn.fetchval(
                "SELECT at FROM message_times WHERE user_id = $1 ORDER BY at DESC OFFSET $2 LIMIT 1",
                user, max(0, limit - 1))
            if oldest is not None:
                return float(oldest) + window
            await conn.execute("INSERT INTO message_times (user_id, at) VALUES ($1, $2)", user, now)
            return None


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
        from core.chat.locks import KeyedLocks

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
        lock_key = _lock_key("turn:" + key)
        async with self._local.hold(key):
            pause = self.MIN_POLL
            while not await self._query("SELECT pg_try_advisory_lock($1)", lock_key):
                await asyncio.sleep(pause)
                pause = min(pause * 2, self.MAX_POLL)
            try:
                yield
            finally:
                try:
                    await asyncio.shield(self._query("SELECT pg_advisory_unlock($1)", lock_key))
                except Exception as exc:  # the connection is gone, and the lock with it
                    log.warning("could not release a turn lock: %s", exc)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            await conn.close()


if TYPE_CHECKING:  # pragma: no cover - lets a type checker confirm PostgresStore satisfies the port
    def _satisfies_port(store: PostgresStore) -> Store:
        return store
