"""Group commit in the SQLite store's connection (core/store/sqlite_worker.py): statements queued together
commit together, each caller hears its own result only after the commit, and one failing statement fails alone."""
from __future__ import annotations

import asyncio
import sqlite3

from core.store.sqlite import SqliteStore
from core.store.sqlite_worker import SqliteWorker


async def test_a_burst_of_claims_commits_in_a_few_transactions_and_each_event_is_won_once(tmp_path):
    async with SqliteStore(tmp_path / "tb.db") as store:
        statements: list[str] = []
        await store._require().set_trace_callback(statements.append)
        events = [f"C1:{i}" for i in range(100)]
        first = await asyncio.gather(*(store.claim_event("slack", e) for e in events))
        again = await asyncio.gather(*(store.claim_event("slack", e) for e in events))
        assert first == [True] * 100 and again == [False] * 100
        commits = sum(s.strip().upper() == "COMMIT" for s in statements)
        assert 1 <= commits <= 10, commits     # one commit per statement would be 200


async def test_a_failing_statement_in_a_group_fails_alone_and_the_others_are_kept(tmp_path):
    worker = await SqliteWorker.connect(tmp_path / "w.db")
    try:
        await worker.execute_fetchall("CREATE TABLE t (k TEXT PRIMARY KEY)", group=False)
        results = await asyncio.gather(
            worker.execute_fetchall("INSERT INTO t VALUES ('a')"),
            worker.execute_fetchall("INSERT INTO t VALUES ('a')"),      # the primary key refuses it
            worker.execute_fetchall("INSERT INTO t VALUES ('b')"),
            return_exceptions=True)
        assert results[0] == [] and results[2] == []
        assert isinstance(results[1], sqlite3.IntegrityError)
        rows = await worker.execute_fetchall("SELECT k FROM t ORDER BY k")
        assert [r["k"] for r in rows] == ["a", "b"]
    finally:
        await worker.close()
    reopened = await SqliteWorker.connect(tmp_path / "w.db")   # committed: there after a restart
    try:
        assert len(await reopened.execute_fetchall("SELECT k FROM t")) == 2
    finally:
        await reopened.close()
