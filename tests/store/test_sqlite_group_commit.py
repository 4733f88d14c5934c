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


async def test_the_callers_of_one_job_go_on_one_at_a_time_in_the_order_they_asked(tmp_path):
    """A burst's claims come back in one job. Handed back all at once, every caller woke in the same turn of the
    event loop and each one's next step (aiohttp writing its request to the model, in a task of its own) waited
    behind all the others' work: the burst's requests left together at its end. One caller per turn, the first
    one's next step runs before the second one goes on: first come, first served."""
    worker = await SqliteWorker.connect(tmp_path / "w.db")
    try:
        await worker.execute_fetchall("CREATE TABLE t (k TEXT PRIMARY KEY)", group=False)
        seen: list[str] = []
        loop = asyncio.get_running_loop()

        async def caller(i: int) -> None:
            await worker.execute_fetchall("INSERT INTO t VALUES (?)", (str(i),))
            seen.append(f"{i} goes on")
            loop.call_soon(seen.append, f"{i}'s request leaves")   # as aiohttp's task writing the request

        await asyncio.gather(*(caller(i) for i in range(3)))
        await asyncio.sleep(0)
        assert seen == ["0 goes on", "0's request leaves", "1 goes on", "1's request leaves",
                        "2 goes on", "2's request leaves"]
    finally:
        await worker.close()


async def test_a_job_that_comes_back_while_an_earlier_one_is_handed_back_waits_behind_it(tmp_path):
    worker = await SqliteWorker.connect(tmp_path / "w.db")
    try:
        await worker.execute_fetchall("CREATE TABLE t (k TEXT PRIMARY KEY)", group=False)
        order: list[str] = []

        async def caller(name: str) -> None:
            await worker.execute_fetchall("INSERT INTO t VALUES (?)", (name,))
            order.append(name)

        first = [asyncio.ensure_future(caller(f"a{i}")) for i in range(300)]
        await asyncio.sleep(0)   # their job is on the connection's thread: the next statement makes a job of its own
        late = asyncio.ensure_future(caller("late"))
        await asyncio.gather(*first, late)
        assert order == [f"a{i}" for i in range(300)] + ["late"]
    finally:
        await worker.close()
