"""One SQLite connection (aiosqlite: sqlite3 on a thread of its own), with group commit.

Every statement on its own would cost SQLite a commit (a WAL append) per write: a burst of 200 mentions makes
~1,500 of them before the first answer starts. Here statements queued while the connection is busy — or in
the same event-loop turn — are taken together as one job, and consecutive single-statement writes of a job
commit as one transaction (group commit). Nothing waits for a batch to fill: an idle connection takes a
statement at once, so one message alone sees no extra latency.

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
from typing import Any, Sequence

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
        self._db = db
        self._pending: list[_Statement] = []
        self._job: asyncio.Task | None = None   # the job with the connection now
        self._scheduled = False                  # a flush is due in this loop turn
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

    def _flush(self) -> None:
        self._scheduled = False
        if self._job is not None or not self._pending:
            return
        job, self._pending = self._pending, []
        self._job = asyncio.ensure_future(self._run(job))

    async def _run(self, job: list[_Statement]) -> None:
        try:
            await self._execute(job)
        finally:
            self._job = None
            for st in job:
                if st.future.done():          # its caller was cancelled
                    continue
                if st.error is not None:
                    st.future.set_exception(st.error)
                elif st.result is None:       # the job itself was cancelled (closing)
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
                await asyncio.shield(self._job)
        await self._db.close()

    # ---- one job: statements in order, runs of groupable ones in one transaction ---------------------------

    async def _execute(self, job: list[_Statement]) -> None:
        i = 0
        while i < len(job):
            j = i
            while j < len(job) and job[j].group:
                j += 1
            if j - i >= 2 and not self._db.in_transaction:
                await self._group(job[i:j])
            else:
                for st in job[i:max(j, i + 1)]:
                    await self._one(st)
                j = max(j, i + 1)
            i = j

    async def _group(self, group: list[_Statement]) -> None:
        db = self._db
        writes = any(not st.sql.lstrip()[:6].lower().startswith(_READS) for st in group)
        try:
            # IMMEDIATE when writing: the write lock up front (another process waits on busy_timeout), never
            # a read lock that can't be upgraded
            await db.execute_fetchall("BEGIN IMMEDIATE" if writes else "BEGIN")
        except sqlite3.Error:
            for st in group:           # no transaction: each on its own, as without grouping
                await self._one(st)
            return
        done: list[_Statement] = []
        for st in group:
            await self._one(st)
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
                await db.execute_fetchall("COMMIT")
            except sqlite3.Error as exc:
                try:
                    await db.execute_fetchall("ROLLBACK")
                except sqlite3.Error:
                    pass
                for st in done:
                    st.result, st.error = None, exc

    async def _one(self, st: _Statement) -> None:
        try:
            st.result = list(await self._db.execute_fetchall(st.sql, st.params))
        except Exception as exc:  # noqa: BLE001 - handed to the statement's caller
            st.error = exc
