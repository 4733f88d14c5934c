"""The Store's statements, written once for SQLite and PostgreSQL (core.store.protocol.Store).

The SQL is portable: ON CONFLICT ... DO NOTHING/UPDATE, RETURNING, a quoted "user", `?` placeholders (the
PostgreSQL store numbers them $1, $2 … once per statement text and remembers it: core.store.postgres.numbered).
Parameters are passed as the column's Python type (float for DOUBLE PRECISION, int, bool): asyncpg refuses an
int where a float8 is expected and SQLite takes either.

What stays with each database (core/store/sqlite.py, core/store/postgres.py): how a statement reaches it
(`_fetch`), the transaction that keeps a conversation's history appends in order (`_history_transaction`), its
migrations, and the few statements that genuinely differ (taking a spare, rating an answer, claiming events in
batches, what else expires). Rows read on every message are cached only where one process owns the database
(core.store.cache, SQLite). The answers and feedback statements are core/store/sql_answers.py; usage, tool
calls, uploads, knowledge and history core/store/sql_records.py.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, AsyncContextManager, Awaitable, Callable, Sequence

from core.model import ConversationKey
from core.store.protocol import ConversationRecord, InflightReply
from core.store.sql_answers import SqlAnswers
from core.store.sql_records import SqlRecords

log = logging.getLogger("core.store")

EVENT_RETENTION_SECONDS = 7 * 24 * 3600   # processed events older than this are pruned
EVENT_PRUNE_INTERVAL = 3600.0             # a long-running process prunes at most this often
LEASE_SECONDS = 30.0                      # a process silent this long is taken for dead (its replies: orphans)

# tables whose rows expire (expires_at); our own constant names, so the statements are constants too
_PRUNE_EXPIRED = tuple(f"DELETE FROM {table} WHERE expires_at <= ?"
                       for table in ("thread_markers", "reply_roots", "containers"))

# execute(sql, params) -> rows, inside a transaction
Execute = Callable[[str, Sequence[Any]], Awaitable[list[Any]]]


class SqlStore(SqlAnswers, SqlRecords):
    """The statements of core.store.protocol.Store over a database's `_fetch(sql, params)`."""

    owner: str
    _clock: Callable[[], float]
    _lease: float
    _last_prune: float = 0.0
    _TAKE_SPARE: str          # (pool,): delete and return the oldest spare conversation of a pool, once

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:  # pragma: no cover - per database
        """Run one statement (its own transaction) and return its rows."""
        raise NotImplementedError

    def _history_transaction(self, conversation: str) -> AsyncContextManager[Execute]:  # pragma: no cover
        """A transaction in which reading a conversation's last seq and appending after it belong together."""
        raise NotImplementedError

    # ---- the lease of this process ---------------------------------------------------------------

    async def renew_lease(self) -> None:
        await self._fetch(
            "INSERT INTO instances (owner, lease_until) VALUES (?, ?)"
            " ON CONFLICT (owner) DO UPDATE SET lease_until = excluded.lease_until",
            (self.owner, float(self._clock() + self._lease)))

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
    def _conversation(row: Any) -> ConversationRecord:
        return ConversationRecord(
            key=row["key"], assistant=row["assistant"], backend_id=row["backend_id"],
            metadata=json.loads(row["metadata"] or "{}"), vector_store_id=row["vector_store_id"],
            created_at=row["created_at"], updated_at=row["updated_at"], pending=bool(row["pending"]))

    async def get_conversation(self, key: ConversationKey, assistant: str) -> ConversationRecord | None:
        rows = await self._fetch("SELECT * FROM conversations WHERE key = ? AND assistant = ?",
                                 (key.as_string(), assistant))
        return self._conversation(rows[0]) if rows else None

    async def save_conversation(self, key: ConversationKey, assistant: str, backend_id: str,
                                metadata: dict[str, str], *, pending: bool = False) -> None:
        """Insert, or point an existing (key, assistant) at a new backend conversation (`pending`: at the
        stored first answer a conversation is still to be made from, see ConversationRecord.pending).

        created_at and vector_store_id of an existing row are kept.
        """
        await self._write_conversation(key, assistant, backend_id, metadata, pending, float(self._clock()))

    async def _write_conversation(self, key: ConversationKey, assistant: str, backend_id: str,
                                  metadata: dict[str, str], pending: bool, now: float) -> None:
        await self._fetch(
            "INSERT INTO conversations (key, assistant, backend_id, metadata, vector_store_id, created_at,"
            " updated_at, pending) VALUES (?, ?, ?, ?, NULL, ?, ?, ?)"
            " ON CONFLICT (key, assistant) DO UPDATE SET backend_id = excluded.backend_id,"
            " metadata = excluded.metadata, updated_at = excluded.updated_at, pending = excluded.pending",
            (key.as_string(), assistant, backend_id, json.dumps(dict(metadata), ensure_ascii=False), now, now,
             bool(pending)))

    async def set_conversation_vector_store(self, key: ConversationKey, assistant: str,
                                            vector_store_id: str) -> None:
        rows = await self._fetch(
            "UPDATE conversations SET vector_store_id = ?, updated_at = ? WHERE key = ? AND assistant = ?"
            " RETURNING 1", (vector_store_id, float(self._clock()), key.as_string(), assistant))
        if not rows:
            # E.g. a /reset deleted the conversation while its upload was running: nothing to attach to.
            log.warning("no conversation %s for assistant %s to attach vector store %s to",
                        key.as_string(), assistant, vector_store_id)

    async def delete_conversation(self, key: ConversationKey, assistant: str) -> bool:
        rows = await self._fetch("DELETE FROM conversations WHERE key = ? AND assistant = ? RETURNING 1",
                                 (key.as_string(), assistant))
        return bool(rows)

    async def list_conversations(self) -> list[ConversationRecord]:
        rows = await self._fetch("SELECT * FROM conversations ORDER BY created_at, key, assistant")
        return [self._conversation(r) for r in rows]

    async def count_conversations(self) -> int:
        rows = await self._fetch("SELECT COUNT(*) FROM conversations")
        return int(rows[0][0])

    # ---- preferences -------------------------------------------------------------------------

    async def get_preference(self, scope: str) -> str | None:
        rows = await self._fetch("SELECT assistant FROM preferences WHERE scope = ?", (scope,))
        return rows[0][0] if rows else None

    async def set_preference(self, scope: str, assistant: str | None) -> None:
        """None clears the choice (routing decides again)."""
        if assistant is None:
            await self._fetch("DELETE FROM preferences WHERE scope = ?", (scope,))
        else:
            # (SQLite's preferences table still has the expires_at of its schema version 2; nothing reads it.)
            await self._fetch("INSERT INTO preferences (scope, assistant) VALUES (?, ?)"
                              " ON CONFLICT (scope) DO UPDATE SET assistant = excluded.assistant", (scope, assistant))

    # ---- thread markers, reply roots, containers, spares, sync digests ----------------------------

    async def thread_assistant(self, platform: str, channel: str, thread: str) -> str | None:
        marker = await self._thread_marker(platform, channel, thread)
        if marker is None or marker[1] <= self._clock():
            return None
        return marker[0]

    async def _thread_marker(self, platform: str, channel: str, thread: str) -> tuple[str, float] | None:
        """(assistant, expires_at), expired or not: the expiry is checked by the reader, so a cache can keep it."""
        rows = await self._fetch(
            "SELECT assistant, expires_at FROM thread_markers WHERE platform = ? AND channel = ? AND thread = ?",
            (platform, channel, thread))
        return (rows[0][0], rows[0][1]) if rows else None

    async def mark_thread(self, platform: str, channel: str, thread: str, assistant: str, *, ttl: float) -> None:
        await self._save_thread_marker(platform, channel, thread, assistant, float(self._clock() + ttl))

    async def _save_thread_marker(self, platform: str, channel: str, thread: str, assistant: str,
                                  expires: float) -> None:
        await self._fetch(
            "INSERT INTO thread_markers (platform, channel, thread, assistant, expires_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (platform, channel, thread) DO UPDATE SET assistant = excluded.assistant,"
            " expires_at = excluded.expires_at", (platform, channel, thread, assistant, expires))

    async def reply_root(self, platform: str, message_id: str) -> str | None:
        rows = await self._fetch(
            "SELECT root FROM reply_roots WHERE platform = ? AND message_id = ? AND expires_at > ?",
            (platform, message_id, float(self._clock())))
        return rows[0][0] if rows else None

    async def save_reply_root(self, platform: str, message_id: str, root: str, *, ttl: float) -> None:
        await self._fetch(
            "INSERT INTO reply_roots (platform, message_id, root, expires_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (platform, message_id) DO UPDATE SET root = excluded.root,"
            " expires_at = excluded.expires_at", (platform, message_id, root, float(self._clock() + ttl)))

    async def touch_container(self, container_id: str, *, ttl: float) -> bool:
        # The INSERT decides atomically (across coroutines and processes): it writes a row only when the
        # container is new or its last use is older than its life (it expired, and a new billed session began);
        # a live container's row is left alone, returns nothing, and only has its expiry moved afterwards.
        now = float(self._clock())
        fresh = await self._fetch(
            "INSERT INTO containers (container_id, expires_at) VALUES (?, ?)"
            " ON CONFLICT (container_id) DO UPDATE SET expires_at = excluded.expires_at"
            " WHERE containers.expires_at <= ? RETURNING 1", (container_id, now + ttl, now))
        if not fresh:
            await self._fetch("UPDATE containers SET expires_at = ? WHERE container_id = ?", (now + ttl, container_id))
        return bool(fresh)

    async def add_spare(self, pool: str, conversation_id: str) -> None:
        await self._fetch("INSERT INTO spare_conversations (pool, conversation_id, created_at) VALUES (?, ?, ?)"
                          " ON CONFLICT (pool, conversation_id) DO NOTHING",
                          (pool, conversation_id, float(self._clock())))

    async def take_spare(self, pool: str) -> str | None:
        # One DELETE ... RETURNING: two takers (coroutines or processes) never get the same spare.
        rows = await self._fetch(self._TAKE_SPARE, (pool,))
        return rows[0][0] if rows else None

    async def count_spares(self, pool: str) -> int:
        rows = await self._fetch("SELECT COUNT(*) FROM spare_conversations WHERE pool = ?", (pool,))
        return int(rows[0][0])

    async def save_spare_demand(self, pool: str, demand: int) -> None:
        await self._fetch("INSERT INTO spare_demand (pool, demand, at) VALUES (?, ?, ?)"
                          " ON CONFLICT (pool) DO UPDATE SET demand = excluded.demand, at = excluded.at",
                          (pool, demand, float(self._clock())))

    async def spare_demand(self, pool: str) -> int:
        rows = await self._fetch("SELECT demand FROM spare_demand WHERE pool = ?", (pool,))
        return int(rows[0][0]) if rows else 0

    async def get_sync_digest(self, platform: str, scope: str) -> str | None:
        rows = await self._fetch("SELECT digest FROM sync_digests WHERE platform = ? AND scope = ?",
                                 (platform, scope))
        return rows[0][0] if rows else None

    async def save_sync_digest(self, platform: str, scope: str, digest: str) -> None:
        await self._fetch(
            "INSERT INTO sync_digests (platform, scope, digest, synced_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (platform, scope) DO UPDATE SET digest = excluded.digest,"
            " synced_at = excluded.synced_at", (platform, scope, digest, float(self._clock())))

    # ---- de-duplication ----------------------------------------------------------------------

    async def claim_event(self, platform: str, event_key: str) -> bool:
        # One INSERT against the primary key: the first writer wins, across coroutines and processes alike.
        # No read-then-write race. (PostgreSQL sends the claims of one moment as one statement instead.)
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
        now = float(self._clock())
        self._last_prune = now
        rows = await self._fetch("DELETE FROM processed_events WHERE created_at < ? RETURNING 1",
                                 (now - EVENT_RETENTION_SECONDS,))
        for statement in _PRUNE_EXPIRED:
            await self._fetch(statement, (now,))
        return len(rows)

    # ---- replies in flight -------------------------------------------------------------------

    async def add_inflight(self, platform: str, channel: str, message_id: str, thread: str | None) -> int:
        rows = await self._fetch(
            "INSERT INTO inflight (platform, channel, message_id, thread, started_at, owner)"
            " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            (platform, channel, message_id, thread, float(self._clock()), self.owner))
        return int(rows[0][0])

    async def take_orphaned_inflight(self, platform: str, *, own: bool = False) -> list[InflightReply]:
        """Remove and return the platform's replies whose process is gone (its lease ran out) — and, with `own`
        (at start, before this process streams anything), those left under this process's own name.
        DELETE ... RETURNING: each orphan goes to exactly one taker, however many processes sweep at once."""
        rows = await self._fetch(
            "DELETE FROM inflight WHERE platform = ? AND ((? AND owner = ?) OR (owner <> ? AND NOT EXISTS"
            " (SELECT 1 FROM instances i WHERE i.owner = inflight.owner AND i.lease_until > ?))) RETURNING *",
            (platform, bool(own), self.owner, self.owner, float(self._clock())))
        return sorted((self._inflight(r) for r in rows), key=lambda r: r.id)

    @staticmethod
    def _inflight(r: Any) -> InflightReply:
        return InflightReply(id=r["id"], platform=r["platform"], channel=r["channel"], message_id=r["message_id"],
                             thread=r["thread"], started_at=r["started_at"], owner=r["owner"])

    async def remove_inflight(self, inflight_id: int) -> None:
        await self._fetch("DELETE FROM inflight WHERE id = ?", (int(inflight_id),))

    async def list_inflight(self, platform: str | None = None) -> list[InflightReply]:
        if platform is None:
            rows = await self._fetch("SELECT * FROM inflight ORDER BY id")
        else:
            rows = await self._fetch("SELECT * FROM inflight WHERE platform = ? ORDER BY id", (platform,))
        return [self._inflight(r) for r in rows]
