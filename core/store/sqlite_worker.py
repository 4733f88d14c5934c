"""One SQLite connection on a thread of its own, with group commit.

sqlite3 blocks, so every statement runs on one worker thread (as aiosqlite does). Handing each statement over
on its own costs the event loop a queue put, a cross-thread wake-up and a callback per statement, and SQLite a
commit (a WAL append) per write: a burst of 200 mentions makes ~1,500 of them before the first answer starts.
Here statements queued while the worker is busy — or in the same event-loop turn — go over together as one
job, and consecutive single-statement writes of a job commit as one transaction (group commit). Nothing waits
for a batch to fill: an idle worker takes a statement at once, so one message alone sees no extra latency.

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
import threading
from pathlib import Path
from queue import SimpleQueue
from typing import Any, Sequence

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

    def __init__(self, path: str | Path) -> None:
        self._path = str(path)
        self._jobs: SimpleQueue[list[_Statement] | None] = SimpleQueue()
        self._pending: list[_Statement] = []
        self._busy = False          # a job is with the worker
        self._scheduled = False     # a flush is due in this loop turn
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._closed: asyncio.Future | None = None

    @classmethod
    async def connect(cls, path: str | Path) -> "SqliteWorker":
        worker = cls(path)
        loop = asyncio.get_running_loop()
        worker._loop = loop
        opened: asyncio.Future = loop.create_future()
        worker._closed = loop.create_future()
        worker._thread = threading.Thread(target=worker._run, args=(opened,), name="teambridge-sqlite", daemon=True)
        worker._thread.start()
        await opened
        return worker

    # ---- the loop side ---------------------------------------------------------------------------------

    def execute_fetchall(self, sql: str, params: Sequence[Any] = (), *, group: bool = True) -> asyncio.Future:
        """The statement's rows (a future). `group=False`: never wrapped in a group transaction."""
        loop = self._loop
        assert loop is not None, "connect() first"
        if self._closed is None or self._closed.done():
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        fut = loop.create_future()
        self._pending.append(_Statement(sql, params, fut, group))
        if not self._busy and not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        self._scheduled = False
        if self._busy or not self._pending:
            return
        job, self._pending = self._pending, []
        self._busy = True
        self._jobs.put(job)

    def _done(self, job: list[_Statement]) -> None:
        self._busy = False
        for st in job:
            if st.future.done():          # its caller was cancelled
                continue
            if st.error is not None:
                st.future.set_exception(st.error)
            else:
                st.future.set_result(st.result)
        if self._pending:
            self._flush()

    async def close(self) -> None:
        if self._closed is None or self._thread is None:
            return
        if not self._closed.done():
            self._jobs.put(None)
        await asyncio.shield(self._closed)

    # ---- the worker thread -----------------------------------------------------------------------------

    def _run(self, opened: asyncio.Future) -> None:
        loop = self._loop
        assert loop is not None
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
        except BaseException as exc:  # noqa: BLE001 - reported to connect()'s caller
            loop.call_soon_threadsafe(_settle, opened, exc, None)
            loop.call_soon_threadsafe(_settle, self._closed, None, None)
            return
        self._conn = conn
        loop.call_soon_threadsafe(_settle, opened, None, None)
        try:
            while (job := self._jobs.get()) is not None:
                self._execute(conn, job)
                _call(loop, self._done, job)
        finally:
            try:
                conn.close()
            finally:
                _call(loop, _settle, self._closed, None, None)

    def _execute(self, conn: sqlite3.Connection, job: list[_Statement]) -> None:
        i = 0
        while i < len(job):
            j = i
            while j < len(job) and job[j].group:
                j += 1
            if j - i >= 2 and not conn.in_transaction:
                self._group(conn, job[i:j])
            else:
                for st in job[i:max(j, i + 1)]:
                    _one(conn, st)
                j = max(j, i + 1)
            i = j

    @staticmethod
    def _group(conn: sqlite3.Connection, group: list[_Statement]) -> None:
        writes = any(not st.sql.lstrip()[:6].lower().startswith(_READS) for st in group)
        try:
            # IMMEDIATE when writing: the write lock up front (another process waits on busy_timeout), never
            # a read lock that can't be upgraded
            conn.execute("BEGIN IMMEDIATE" if writes else "BEGIN")
        except sqlite3.Error:
            for st in group:           # no transaction: each on its own, as without grouping
                _one(conn, st)
            return
        done: list[_Statement] = []
        for st in group:
            _one(conn, st)
            if st.error is not None and not conn.in_transaction:
                # the error ended the transaction: what ran before it in the group is undone
                for earlier in done:
                    earlier.result, earlier.error = None, st.error
                done = []
                continue
            if conn.in_transaction:
                done.append(st)
        if conn.in_transaction:
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                for st in done:
                    st.result, st.error = None, exc


def _one(conn: sqlite3.Connection, st: _Statement) -> None:
    try:
        st.result = conn.execute(st.sql, st.params).fetchall()
    except BaseException as exc:  # noqa: BLE001 - handed to the statement's caller
        st.error = exc


def _call(loop: asyncio.AbstractEventLoop, fn, *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the loop was closed without closing the store: nobody waits any more
        pass


def _settle(fut: asyncio.Future | None, error: BaseException | None, result: Any) -> None:
    if fut is None or fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)
