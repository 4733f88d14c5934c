"""One SQLite connection (aiosqlite: sqlite3 on a thread of its own), with group commit and one hand-off per batch.

Every statement on its own would cost SQLite a commit (a WAL append) per write: a burst of 200 mentions makes
~1,500 of them before the first answer starts. Here statements queued while the connection is busy — or in
the same event-loop turn — are taken together as one job, and consecutive single-statement writes of a job
commit as one transaction (group commit). Nothing waits for a batch to fill: an idle connection takes a
statement at once, so one message alone sees no extra latency.

The connection is aiosqlite's: sqlite3 on a thread of its own, fed by a queue. A job crosses to that thread once
and comes back once: the thread runs every statement of it (BEGIN and COMMIT included) in one go and the loop then
resolves all their futures in one call. aiosqlite's public methods cross twice per statement (a queue put, a thread
wake-up and a loop wake-up each way), which cost more CPU than the statements themselves; so the job goes through
`Connection._execute`, the one call every public aiosqlite method is built on (it queues a function for the
connection's thread) — pinned in pyproject.toml to the versions that have it (every store test fails without
it). SQLite calls stay off the event loop: a commit may wait up to busy_timeout for another process's lock, and
a checkpoint writes the database file.

Durability is unchanged: a statement's future resolves only after the transaction holding it has committed.
Atomicity per statement is unchanged too: SQLite undoes a failing statement (a constraint, say) by itself
and the others in the transaction commit; if a failure aborts the whole transaction, every statement in it
fails with that error and nothing of it is kept. Exactly-once claims still rest on the primary key (the
INSERT … ON CONFLICT DO NOTHING RETURNING decides), which a transaction does not change.

Statements that manage a transaction themselves (BEGIN / COMMIT / ROLLBACK and what the caller runs between
them) are sent with `group=False`: they run in their place in the queue and are never wrapped.
"""
from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path
from typing import Any, Callable, Sequence

import aiosqlite

log = logging.getLogger(__name__)

_READS = ("select", "pragma")


class _Statement:
    __slots__ = ("sql", "params", "future", "group", "result", "error")

    def __init__(self, sql: str, params: Sequence[Any], future: asyncio.Future, group: bool) -> None:
        self.sql, self.params, self.future, self.group = sql, params, future, group
        self.result: list[sqlite3.Row] | None = None
        self.error: BaseException | None = None


class SqliteWorker:
    """`await SqliteWorker.connect(path)`; `execute_fetchall(sql, params)`; `close()`."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._connection = db
        self._db: sqlite3.Connection = db._conn   # used on aiosqlite's thread only (in the jobs it runs)
        self._pending: list[_Statement] = []
        self._job: asyncio.Future | None = None   # the job with the connection now
        self._scheduled = False                    # a flush is due in this loop turn
        self._closed = False

    @classmethod
    async def connect(cls, path: str | Path) -> "SqliteWorker":
        # isolation_level=None: autocommit; transactions are begun here (groups) or by the caller (group=False)
        db = await aiosqlite.connect(str(path), isolation_level=None)
        db.row_factory = sqlite3.Row
        return cls(db)

    def execute_fetchall(self, sql: str, params: Sequence[Any] = (), *, group: bool = True) -> asyncio.Future:
        """The statement's rows (a future). `group=False`: never wrapped in a group transaction."""
        if self._closed:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending.append(_Statement(sql, params, fut, group))
        if self._job is None and not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return fut

    async def set_trace_callback(self, callback: Callable[[str], object] | None) -> None:
        """Every statement SQLite runs, as text (tests count the commits); called on the connection's thread."""
        await self._connection.set_trace_callback(callback)

    def _flush(self) -> None:
        self._scheduled = False
        if self._job is not None or not self._pending:
            return
        job, self._pending = self._pending, []
        self._job = asyncio.ensure_future(self._connection._execute(self._execute, job))
        self._job.add_done_callback(lambda done: self._finish(done, job))

    def _finish(self, done: asyncio.Future, job: list[_Statement]) -> None:
        self._job = None
        if not done.cancelled() and done.exception() is not None:   # a bug here, not a statement's error
            log.error("SQLite job failed", exc_info=done.exception())
        for st in job:
            if st.future.done():          # its caller was cancelled
                continue
            if st.error is not None:
                st.future.set_exception(st.error)
            elif st.result is None:       # the job never ran (closing)
                st.future.set_exception(sqlite3.ProgrammingError("Cannot operate on a closed database."))
            else:
                st.future.set_result(st.result)
        if self._pending and not self._closed:
            self._flush()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        while self._job is not None or self._pending:   # what was queued before closing still runs
            if self._job is None:
                self._flush()
            if self._job is not None:
                await asyncio.wait([self._job])
                await asyncio.sleep(0)   # its done callback (resolving the futures) has run
        await self._connection.close()

    # ---- one job, on the connection's thread: statements in order, runs of groupable ones in one transaction ----

    def _execute(self, job: list[_Statement]) -> None:
        i = 0
        while i < len(job):
            j = i
            while j < len(job) and job[j].group:
                j += 1
            if j - i >= 2 and not self._db.in_transaction:
                self._group(job[i:j])
            else:
                for st in job[i:max(j, i + 1)]:
                    self._one(st)
                j = max(j, i + 1)
            i = j

    def _group(self, group: list[_Statement]) -> None:
        db = self._db
        writes = any(not st.sql.lstrip()[:6].lower().startswith(_READS) for st in group)
        try:
            # IMMEDIATE when writing: the write lock up front (another process waits on busy_timeout), never
            # a read lock that can't be upgraded
            db.execute("BEGIN IMMEDIATE" if writes else "BEGIN")
        except sqlite3.Error:
            for st in group:           # no transaction: each on its own, as without grouping
                self._one(st)
            return
        done: list[_Statement] = []
        for st in group:
            self._one(st)
            if st.error is not None and not db.in_transaction:
                # the error ended the transaction: what ran before it in the group is undone
                for earlier in done:
                    earlier.result, earlier.error = None, st.error
                done = []
                continue
            if db.in_transaction:
                done.append(st)
        if db.in_transaction:
            try:
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                for st in done:
                    st.result, st.error = None, exc

    def _one(self, st: _Statement) -> None:
        try:
            st.result = self._db.execute(st.sql, st.params).fetchall()
        except Exception as exc:  # noqa: BLE001 - handed to the statement's caller
            st.error = exc
