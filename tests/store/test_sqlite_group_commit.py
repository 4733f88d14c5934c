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


async def test_people_who_never_chose_an_assistant_cost_no_statement_and_choices_survive_a_restart(tmp_path):
    """Every message reads its sender's choice of assistant; in a burst of new people that was a round trip to
    the database each, in front of the request to the model. The stored choices are few: read whole at open."""
    async with SqliteStore(tmp_path / "tb.db") as store:
        await store.set_preference("assistant:discord:G:C1:alice", "math")
    async with SqliteStore(tmp_path / "tb.db") as store:
        statements: list[str] = []
        await store._require().set_trace_callback(statements.append)
        people = [f"assistant:discord:G:C{i}:user{i}" for i in range(50)]
        assert await asyncio.gather(*(store.get_preference(p) for p in people)) == [None] * 50
        assert await store.get_preference("assistant:discord:G:C1:alice") == "math"
        assert not any("preferences" in s for s in statements)
        await store.set_preference(people[0], "math")          # a choice is written through, and read back
        await store.set_preference("assistant:discord:G:C1:alice", None)
        assert await store.get_preference(people[0]) == "math"
        assert await store.get_preference("assistant:discord:G:C1:alice") is None
    async with SqliteStore(tmp_path / "tb.db") as store:
        assert await store.get_preference(people[0]) == "math"
        assert await store.get_preference("assistant:discord:G:C1:alice") is None
