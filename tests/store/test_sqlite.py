"""What only the SQLite store has: its file, its migrations, its pragmas. (Everything a Store promises is in
test_store_contract.py, which runs against SQLite too.)"""
from __future__ import annotations

import sqlite3

import pytest

import core.store.sqlite as store_module
from core.store.sqlite import SCHEMA_VERSION, SqliteStore
from core.store.sqlite_schema import MIGRATIONS


def user_version(path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("PRAGMA user_version").fetchone()[0]


def tables(path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


async def test_fresh_database_is_migrated_to_latest_version(tmp_path):
    path = tmp_path / "state" / "teambridge.db"  # parent directory does not exist yet
    async with SqliteStore(path) as store:
        assert await store.schema_version() == SCHEMA_VERSION
    assert user_version(path) == SCHEMA_VERSION
    assert tables(path) >= {"conversations", "preferences", "processed_events", "files", "usage", "inflight",
                            "knowledge_stores", "knowledge_files", "thread_markers", "reply_roots", "containers",
                            "sync_digests", "history_items"}


async def test_reopening_applies_nothing(tmp_path, caplog):
    path = tmp_path / "t.db"
    async with SqliteStore(path):
        pass
    caplog.clear()
    with caplog.at_level("INFO", logger="core.store.sqlite"):
        async with SqliteStore(path):
            pass
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


async def test_version_2_keys_in_preferences_move_to_their_own_tables(tmp_path):
    """Before schema 3, thread markers, Discord reply roots and billed containers were preference scopes."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        for migration in MIGRATIONS[:2]:
            for statement in migration:
                db.execute(statement)
        db.execute("PRAGMA user_version = 2")
        far = 4_000_000_000.0
        db.executemany("INSERT INTO preferences (scope, assistant, expires_at) VALUES (?, ?, ?)", [
            ("thread:slack:C1:1700.0001", "food", far),
            ("thread:discord:123:456", "math", far),
            ("discord:msg:789", "456", far),
            ("container:cntr_1", "billed", far),
            ("assistant:slack:T1:C1:U1", "docs", None),
        ])
    async with SqliteStore(path, clock=lambda: 1_700_000_000.0) as store:
        assert await store.thread_assistant("slack", "C1", "1700.0001") == "food"
        assert await store.thread_assistant("discord", "123", "456") == "math"
        assert await store.reply_root("discord", "789") == "456"
        assert await store.touch_container("cntr_1", ttl=60) is False   # billed already
        assert await store.get_preference("assistant:slack:T1:C1:U1") == "docs"
        assert await store.get_preference("thread:slack:C1:1700.0001") is None   # moved, not copied
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT scope FROM preferences").fetchall() == [("assistant:slack:T1:C1:U1",)]


async def test_wal_and_connection_pragmas(tmp_path):
    path = tmp_path / "t.db"
    async with SqliteStore(path) as store:
        # journal_mode=WAL is persistent in the file, so a plain second connection sees it.
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert (tmp_path / "t.db-wal").exists()
        # The others are per connection: ask the store's own connection.
        assert await store.connection_settings() == {
            "foreign_keys": 1, "synchronous": 1, "busy_timeout": store_module.BUSY_TIMEOUT_MS}  # synchronous=NORMAL
