"""SqliteStore: what the bot remembers across messages and restarts."""
from __future__ import annotations

import asyncio
import sqlite3

import pytest

import core.store.sqlite as store_module
from core.model import ConversationKey, Usage
from core.ports import ConversationRecord, InflightReply
from core.store.sqlite import SCHEMA_VERSION, SqliteStore

DAY = 24 * 3600.0


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def key(channel: str = "C1", thread: str = "", user: str = "U1", platform: str = "slack") -> ConversationKey:
    return ConversationKey(platform=platform, workspace="T1", channel=channel, thread=thread, user=user)


def user_version(path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("PRAGMA user_version").fetchone()[0]


def tables(path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


# ---- schema --------------------------------------------------------------------------------------


async def test_fresh_database_is_migrated_to_latest_version(tmp_path):
    path = tmp_path / "state" / "teambridge.db"  # parent directory does not exist yet
    async with SqliteStore(path) as store:
        assert await store.schema_version() == SCHEMA_VERSION
    assert user_version(path) == SCHEMA_VERSION
    assert tables(path) >= {"conversations", "preferences", "processed_events", "files", "usage", "inflight",
                            "knowledge_stores", "knowledge_files"}


async def test_reopening_applies_nothing_and_keeps_data(tmp_path, caplog):
    path = tmp_path / "t.db"
    async with SqliteStore(path) as store:
        await store.set_preference("slack:T1:C1", "coder")
    caplog.clear()
    with caplog.at_level("INFO", logger="core.store.sqlite"):
        async with SqliteStore(path) as store:
            assert await store.get_preference("slack:T1:C1") == "coder"
    assert user_version(path) == SCHEMA_VERSION
    assert not [r for r in caplog.records if "migrated" in r.getMessage()]


async def test_a_new_migration_is_applied_once_on_an_existing_database(tmp_path, monkeypatch):
    path = tmp_path / "t.db"
    async with SqliteStore(path) as store:
        await store.set_preference("p", "coder")

    extra = ("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
             "INSERT INTO notes (body) VALUES ('hello')")
    monkeypatch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS + (extra,))
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    for _ in range(2):  # the second open must not insert the row again
        async with SqliteStore(path) as store:
            assert await store.schema_version() == SCHEMA_VERSION + 1
            assert await store.get_preference("p") == "coder"
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT body FROM notes").fetchall() == [("hello",)]


async def test_a_failing_migration_is_rolled_back_entirely(tmp_path, monkeypatch):
    path = tmp_path / "t.db"
    async with SqliteStore(path):
        pass
    broken = ("CREATE TABLE half_done (id INTEGER)", "THIS IS NOT SQL")
    monkeypatch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS + (broken,))
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(sqlite3.OperationalError):
        await SqliteStore(path).open()
    assert user_version(path) == SCHEMA_VERSION
    assert "half_done" not in tables(path)


async def test_a_database_from_a_newer_version_is_refused_clearly(tmp_path):
    path = tmp_path / "t.db"
    async with SqliteStore(path):
        pass
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    with pytest.raises(RuntimeError, match="newer than this teambridge"):
        await SqliteStore(path).open()


async def test_wal_and_connection_pragmas(tmp_path):
    path = tmp_path / "t.db"
    async with SqliteStore(path) as store:
        # journal_mode=WAL is persistent in the file, so a plain second connection sees it.
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert (tmp_path / "t.db-wal").exists()
        # The others are per connection: ask the store's own connection.
        assert (await store._fetch("PRAGMA foreign_keys"))[0][0] == 1
        assert (await store._fetch("PRAGMA synchronous"))[0][0] == 1  # NORMAL
        assert (await store._fetch("PRAGMA busy_timeout"))[0][0] == store_module.BUSY_TIMEOUT_MS


async def test_a_closed_store_says_so(tmp_path):
    store = SqliteStore(tmp_path / "t.db")
    with pytest.raises(RuntimeError, match="not open"):
        await store.claim_event("slack", "Ev1")
    await store.open()
    await store.close()
    await store.close()  # closing twice is harmless
    with pytest.raises(RuntimeError, match="not open"):
        await store.get_preference("x")


# ---- conversations -------------------------------------------------------------------------------


async def test_conversation_is_found_again_after_a_restart(tmp_path):
    clock = Clock()
    path = tmp_path / "t.db"
    meta = {"platform": "slack", "channel": "C1", "user_id": "U1", "user_name": "Zoë 上海"}
    async with SqliteStore(path, clock=clock) as store:
        assert await store.get_conversation(key(), "coder") is None
        await store.save_conversation(key(), "coder", "conv_abc", meta)

    clock.now += 60
    async with SqliteStore(path, clock=clock) as store:  # the process restarted
        record = await store.get_conversation(key(), "coder")
        assert record == ConversationRecord(
            key=key().as_string(), assistant="coder", backend_id="conv_abc", metadata=meta,
            vector_store_id=None, created_at=clock.now - 60, updated_at=clock.now - 60)
        # Same place, other assistant or other user: a different conversation.
        assert await store.get_conversation(key(), "docs") is None
        assert await store.get_conversation(key(user="U2"), "coder") is None


async def test_saving_again_points_to_the_new_conversation_and_keeps_the_vector_store(tmp_path):
    clock = Clock()
    async with SqliteStore(tmp_path / "t.db", clock=clock) as store:
        await store.save_conversation(key(), "coder", "conv_1", {"a": "1"})
        clock.now += 5
        await store.set_conversation_vector_store(key(), "coder", "vs_9")
        clock.now += 5
        await store.save_conversation(key(), "coder", "conv_2", {"a": "2"})
        record = await store.get_conversation(key(), "coder")
        assert (record.backend_id, record.metadata, record.vector_store_id) == ("conv_2", {"a": "2"}, "vs_9")
        assert record.updated_at - record.created_at == 10
        # A vector store for a conversation that does not exist changes nothing.
        await store.set_conversation_vector_store(key(channel="gone"), "coder", "vs_x")
        assert await store.count_conversations() == 1


async def test_delete_conversation_starts_over(tmp_path):
    async with SqliteStore(tmp_path / "t.db") as store:
        await store.save_conversation(key(), "coder", "conv_1", {})
        await store.save_conversation(key(), "docs", "conv_2", {})
        assert await store.delete_conversation(key(), "coder") is True
        assert await store.delete_conversation(key(), "coder") is False
        assert await store.get_conversation(key(), "coder") is None
        assert (await store.get_conversation(key(), "docs")).backend_id == "conv_2"


async def test_list_and_count_conversations(tmp_path):
    clock = Clock()
    async with SqliteStore(tmp_path / "t.db", clock=clock) as store:
        assert await store.list_conversations() == []
        for i in range(3):
            clock.now += 1
            await store.save_conversation(key(thread=f"{i}"), "coder", f"conv_{i}", {})
        assert await store.count_conversations() == 3
        assert [r.backend_id for r in await store.list_conversations()] == ["conv_0", "conv_1", "conv_2"]


# ---- preferences ---------------------------------------------------------------------------------


async def test_preference_set_changed_and_cleared(tmp_path):
    path = tmp_path / "t.db"
    async with SqliteStore(path) as store:
        assert await store.get_preference("slack:T1:C1:U1") is None
        await store.set_preference("slack:T1:C1:U1", "coder")
        await store.set_preference("slack:T1:C1:U1", "docs")
    async with SqliteStore(path) as store:
        assert await store.get_preference("slack:T1:C1:U1") == "docs"
        await store.set_preference("slack:T1:C1:U1", None)
        assert await store.get_preference("slack:T1:C1:U1") is None
        await store.set_preference("slack:T1:C1:U1", None)  # clearing nothing is fine


# ---- de-duplication ------------------------------------------------------------------------------


async def test_an_event_is_claimed_once_also_after_a_restart(tmp_path):
    path = tmp_path / "t.db"
    async with SqliteStore(path) as store:
        assert await store.claim_event("slack", "Ev123") is True
        assert await store.claim_event("slack", "Ev123") is False  # Slack's retry of the same event
        assert await store.claim_event("discord", "Ev123") is True  # keys are per platform
    async with SqliteStore(path) as store:
        assert await store.claim_event("slack", "Ev123") is False


async def test_fifty_concurrent_claims_of_one_event_have_one_winner(tmp_path):
    async with SqliteStore(tmp_path / "t.db") as store:
        results = await asyncio.gather(*(store.claim_event("slack", "C1:1700.0001") for _ in range(50)))
        assert results.count(True) == 1


async def test_two_processes_on_one_database_have_one_winner(tmp_path):
    # Two stores = two connections, like `teambridge run` started twice against the same file.
    path = tmp_path / "t.db"
    async with SqliteStore(path) as a, SqliteStore(path) as b:
        results = await asyncio.gather(*(s.claim_event("slack", f"Ev{i}")
                                         for i in range(20) for s in (a, b)))
        assert results.count(True) == 20


async def test_old_processed_events_are_pruned(tmp_path):
    clock = Clock()
    path = tmp_path / "t.db"
    async with SqliteStore(path, clock=clock) as store:
        assert await store.claim_event("slack", "old") is True
        clock.now += 6 * DAY
        assert await store.claim_event("slack", "recent") is True
    clock.now += 2 * DAY  # "old" is now 8 days old, "recent" 2 days
    async with SqliteStore(path, clock=clock) as store:
        with sqlite3.connect(path) as db:
            assert [r[0] for r in db.execute("SELECT event_key FROM processed_events")] == ["recent"]
        assert await store.claim_event("slack", "recent") is False
        # A process that keeps running prunes too.
        clock.now += 8 * DAY
        assert await store.claim_event("slack", "new") is True
        with sqlite3.connect(path) as db:
            assert [r[0] for r in db.execute("SELECT event_key FROM processed_events")] == ["new"]


# ---- uploaded files ------------------------------------------------------------------------------


async def test_a_file_is_uploaded_once_per_purpose(tmp_path):
    clock = Clock()
    path = tmp_path / "t.db"
    sha = "a" * 64
    async with SqliteStore(path, clock=clock) as store:
        assert await store.get_file(sha, "assistants") is None
        await store.save_file(sha, "assistants", "file-1", "data.csv", 120)
        await store.save_file(sha, "vision", "file-2", "data.csv", 120)
    async with SqliteStore(path, clock=clock) as store:
        assert await store.get_file(sha, "assistants") == "file-1"
        assert await store.get_file(sha, "vision") == "file-2"
        assert await store.list_files() == [
            {"sha256": sha, "purpose": "assistants", "file_id": "file-1", "name": "data.csv", "size": 120,
             "created_at": clock.now},
            {"sha256": sha, "purpose": "vision", "file_id": "file-2", "name": "data.csv", "size": 120,
             "created_at": clock.now},
        ]
        # The backend lost file-1: it is deleted here, and the next upload of the same bytes is remembered.
        await store.delete_file("file-1")
        assert await store.get_file(sha, "assistants") is None
        await store.save_file(sha, "assistants", "file-3", "data.csv", 120)
        await store.save_file(sha, "assistants", "file-4", "data.csv", 120)  # a concurrent upload won later
        assert await store.get_file(sha, "assistants") == "file-4"
        assert len(await store.list_files()) == 2


# ---- usage ---------------------------------------------------------------------------------------


async def test_usage_rows_in_a_time_window(tmp_path):
    clock = Clock(1000.0)
    async with SqliteStore(tmp_path / "t.db", clock=clock) as store:
        for i in range(5):  # turns at t=1000, 1010, ..., 1040
            await store.record_usage(assistant="coder", platform="slack", workspace="T1", channel="C1",
                                     user=f"U{i}", model="gpt-5-mini",
                                     usage=Usage(input_tokens=100 + i, cached_tokens=10, output_tokens=20,
                                                 tool_calls=i, code_interpreter_sessions=1))
            clock.now += 10
        rows = await store.usage_rows(1010.0, 1030.0)  # since inclusive, until exclusive
        assert [r["user"] for r in rows] == ["U1", "U2"]
        assert rows[0] == {"id": rows[0]["id"], "ts": 1010.0, "assistant": "coder", "platform": "slack",
                           "workspace": "T1", "channel": "C1", "user": "U1", "model": "gpt-5-mini",
                           "input_tokens": 101, "cached_tokens": 10, "output_tokens": 20, "tool_calls": 1,
                           "code_interpreter_sessions": 1}
        assert await store.usage_rows(2000.0, 3000.0) == []
        assert sum(r["input_tokens"] for r in await store.usage_rows(0, 10_000)) == 510


# ---- replies in flight ---------------------------------------------------------------------------


async def test_replies_in_flight_survive_a_crash(tmp_path):
    clock = Clock()
    path = tmp_path / "t.db"
    store = SqliteStore(path, clock=clock)
    await store.open()
    a = await store.add_inflight("slack", "C1", "1700.0001", "1699.0000")
    b = await store.add_inflight("discord", "42", "99", None)
    c = await store.add_inflight("slack", "C2", "1700.0002", None)
    await store.remove_inflight(c)  # that answer finished
    await store.close()  # (a kill -9 loses nothing either: every write is committed when it returns)

    async with SqliteStore(path, clock=clock) as store:
        assert await store.list_inflight() == [
            InflightReply(id=a, platform="slack", channel="C1", message_id="1700.0001", thread="1699.0000",
                          started_at=clock.now),
            InflightReply(id=b, platform="discord", channel="42", message_id="99", thread=None,
                          started_at=clock.now),
        ]
        assert [r.id for r in await store.list_inflight("discord")] == [b]
        await store.remove_inflight(a)  # marked interrupted
        await store.remove_inflight(a)  # twice is harmless
        assert [r.id for r in await store.list_inflight()] == [b]


async def test_writes_are_durable_without_a_clean_close(tmp_path):
    path = tmp_path / "t.db"
    store = SqliteStore(path)
    await store.open()
    await store.add_inflight("slack", "C1", "1.0", None)
    # Another connection (the next process after a crash) sees it while this one was never closed.
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT message_id FROM inflight").fetchall() == [("1.0",)]
    await store.close()


# ---- knowledge -----------------------------------------------------------------------------------


async def test_knowledge_store_and_files(tmp_path):
    path = tmp_path / "t.db"
    async with SqliteStore(path) as store:
        assert await store.get_knowledge_store("docs") is None
        assert await store.list_knowledge_files("docs") == []
        await store.save_knowledge_store("docs", "vs_1")
        await store.save_knowledge_file("docs", "knowledge/b.md", "b" * 64, "file-b", "in_progress")
        await store.save_knowledge_file("docs", "knowledge/a.pdf", "a" * 64, "file-a", "completed")
        await store.save_knowledge_file("other", "knowledge/a.pdf", "a" * 64, "file-x", "completed")
    async with SqliteStore(path) as store:
        assert await store.get_knowledge_store("docs") == "vs_1"
        assert await store.list_knowledge_files("docs") == [
            {"path": "knowledge/a.pdf", "sha256": "a" * 64, "file_id": "file-a", "status": "completed",
             "error": None},
            {"path": "knowledge/b.md", "sha256": "b" * 64, "file_id": "file-b", "status": "in_progress",
             "error": None},
        ]
        await store.save_knowledge_file("docs", "knowledge/b.md", "b" * 64, "file-b", "failed",
                                        error="unsupported_file")
        await store.delete_knowledge_file("docs", "knowledge/a.pdf")
        assert await store.list_knowledge_files("docs") == [
            {"path": "knowledge/b.md", "sha256": "b" * 64, "file_id": "file-b", "status": "failed",
             "error": "unsupported_file"}]
        await store.save_knowledge_store("docs", "vs_2")  # the old vector store expired at the backend
        assert await store.get_knowledge_store("docs") == "vs_2"
        assert len(await store.list_knowledge_files("other")) == 1


# ---- many answers at once ------------------------------------------------------------------------


async def test_hundreds_of_concurrent_answers_share_one_store(tmp_path):
    async with SqliteStore(tmp_path / "t.db") as store:
        async def answer(i: int) -> int:
            assert await store.claim_event("slack", f"Ev{i}")
            k = key(thread=str(i))
            if await store.get_conversation(k, "coder") is None:
                await store.save_conversation(k, "coder", f"conv_{i}", {"n": str(i)})
            inflight = await store.add_inflight("slack", "C1", f"{i}.0", str(i))
            await store.record_usage(assistant="coder", platform="slack", workspace="T1", channel="C1",
                                     user="U1", model="m", usage=Usage(input_tokens=1, output_tokens=2))
            await store.remove_inflight(inflight)
            return inflight

        ids = await asyncio.gather(*(answer(i) for i in range(300)))
        assert len(set(ids)) == 300
        assert await store.count_conversations() == 300
        assert await store.list_inflight() == []
        assert len(await store.usage_rows(0, float("inf"))) == 300


async def test_statements_do_not_leak_into_a_failing_transaction(tmp_path):
    # Another coroutine's write issued while a multi-statement transaction is open must neither join it
    # nor be rolled back with it.
    async with SqliteStore(tmp_path / "t.db") as store:
        started = asyncio.Event()

        async def failing_transaction() -> None:
            async with store._transaction() as execute:
                await execute("INSERT INTO preferences (scope, assistant) VALUES ('tx', 'coder')")
                started.set()
                await asyncio.sleep(0)  # let the other coroutines queue their statements
                await asyncio.sleep(0)
                raise ValueError("boom")

        async def claims() -> list[bool]:
            await started.wait()
            return list(await asyncio.gather(*(store.claim_event("slack", f"E{i}") for i in range(10))))

        results = await asyncio.gather(failing_transaction(), claims(), return_exceptions=True)
        assert isinstance(results[0], ValueError)
        assert results[1] == [True] * 10
        assert await store.get_preference("tx") is None
        assert all([not await store.claim_event("slack", f"E{i}") for i in range(10)])


async def test_cached_reads_follow_writes_even_when_they_race(tmp_path):
    """Preferences and conversations are cached in memory; a read racing a write must not keep the old value."""
    async with SqliteStore(tmp_path / "c.db") as store:
        key = ConversationKey("slack", "T1", "C1", "1.1", "")
        assert await store.get_preference("assistant:x") is None           # cached as missing
        await asyncio.gather(store.get_preference("assistant:x"), store.set_preference("assistant:x", "math"),
                             store.get_preference("assistant:x"))
        assert await store.get_preference("assistant:x") == "math"
        assert await store.get_conversation(key, "food") is None
        await asyncio.gather(store.get_conversation(key, "food"), store.save_conversation(key, "food", "conv_1", {}),
                             store.get_conversation(key, "food"))
        assert (await store.get_conversation(key, "food")).backend_id == "conv_1"
        await store.set_conversation_vector_store(key, "food", "vs_1")
        assert (await store.get_conversation(key, "food")).vector_store_id == "vs_1"
        assert await store.delete_conversation(key, "food")
        assert await store.get_conversation(key, "food") is None
    async with SqliteStore(tmp_path / "c.db") as store:  # and what was written is what a new process reads
        assert await store.get_preference("assistant:x") == "math"


async def test_preferences_with_a_ttl_are_forgotten_after_it_and_others_stay(tmp_path):
    now = [1_000_000.0]
    async with SqliteStore(tmp_path / "p.db", clock=lambda: now[0]) as store:
        await store.set_preference("thread:slack:C1:1.1", "food", ttl=3600)
        await store.set_preference("assistant:slack:T1:C1:U1", "math")
        assert await store.get_preference("thread:slack:C1:1.1") == "food"
    now[0] += 3601
    async with SqliteStore(tmp_path / "p.db", clock=lambda: now[0]) as store:  # pruned when opened
        assert await store.get_preference("thread:slack:C1:1.1") is None
        assert await store.get_preference("assistant:slack:T1:C1:U1") == "math"
        assert await store.schema_version() == 2
