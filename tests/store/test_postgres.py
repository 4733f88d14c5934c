"""What only the PostgreSQL store has: its URL, its migrations under a lock, its password handling. (Everything a
Store promises is in test_store_contract.py, which runs against a real PostgreSQL server too.)"""
from __future__ import annotations

import asyncio
import logging

import asyncpg
import pytest

from core.config.load import load_config
from core.store import make_store
from core.store.postgres import PostgresStore, numbered, redact
from core.store.postgres_schema import SCHEMA_VERSION
from core.store.sqlite_schema import SCHEMA_VERSION as SQLITE_SCHEMA_VERSION
from core.store.sqlite import SqliteStore


async def test_the_database_setting_picks_the_store(tmp_path):
    assert isinstance(make_store(tmp_path / "t.db"), SqliteStore)
    assert isinstance(make_store("teambridge.db"), SqliteStore)
    assert isinstance(make_store("postgresql://tb@db:5432/teambridge"), PostgresStore)
    assert isinstance(make_store("postgres://tb@db/teambridge"), PostgresStore)


def test_a_password_in_the_config_file_is_refused_without_echoing_it(tmp_path):
    text = ("database: postgresql://tb:s3cret@db:5432/teambridge\ndefault_assistant: food\n"
            "assistants:\n  food: {model: gpt-5-mini}\n")
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(Exception) as err:
        load_config(path)
    assert "PGPASSWORD" in str(err.value) and "s3cret" not in str(err.value)
    path.write_text(text.replace("tb:s3cret@", "tb@"))
    ok = load_config(path)
    assert ok.database == "postgresql://tb@db:5432/teambridge"


async def test_processes_starting_together_migrate_once(postgres_url, caplog):
    stores = [PostgresStore(postgres_url, owner=f"p{i}") for i in range(4)]
    with caplog.at_level(logging.INFO, logger="core.store.postgres"):
        await asyncio.gather(*(s.open() for s in stores))
    try:
        assert [await s.schema_version() for s in stores] == [SCHEMA_VERSION] * 4
        migrated = [r for r in caplog.records if "migrated to schema version" in r.getMessage()]
        assert len(migrated) == SCHEMA_VERSION
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_a_database_from_a_newer_version_is_refused_clearly(postgres_url):
    async with PostgresStore(postgres_url):
        pass
    conn = await asyncpg.connect(postgres_url)
    await conn.execute("UPDATE teambridge_schema SET version = version + 5")
    await conn.close()
    with pytest.raises(RuntimeError, match="newer than this teambridge"):
        await PostgresStore(postgres_url).open()


async def test_an_unreachable_server_is_reported_without_the_password():
    store = PostgresStore("postgresql://tb:hunter2@127.0.0.1:1/teambridge")
    with pytest.raises(RuntimeError) as err:
        await store.open()
    assert "cannot connect to PostgreSQL at postgresql://tb@127.0.0.1:1/teambridge" in str(err.value)
    assert "hunter2" not in str(err.value)
    assert redact("postgresql://u:p@h/db") == "postgresql://u@h/db"


async def test_the_password_may_come_from_pgpassword(postgres_url, monkeypatch):
    """PGPASSWORD is read by the driver itself; the URL then carries none (as in config.yaml)."""
    user, rest = postgres_url.split("://", 1)[1].split("@", 1)
    password = user.split(":", 1)[1]
    bare = "postgresql://postgres@" + rest
    monkeypatch.setenv("PGPASSWORD", "wrong")
    with pytest.raises(RuntimeError, match="cannot connect"):
        await PostgresStore(bare).open()
    monkeypatch.setenv("PGPASSWORD", password)
    async with PostgresStore(bare) as store:
        assert await store.claim_event("slack", "Ev1") is True


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_teambridge_migrate_brings_the_database_to_this_versions_schema(tmp_path, kind, request):
    import os
    import subprocess
    import sys

    from tests.console_harness import REPO

    location = str(tmp_path / "tb.db") if kind == "sqlite" else request.getfixturevalue("postgres_url")
    config = tmp_path / "config.yaml"
    config.write_text("default_assistant: food\nassistants:\n  food: {model: gpt-5-mini}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEAMBRIDGE_", "OPENAI_"))}
    env.update(PYTHONPATH=str(REPO), TEAMBRIDGE_DB=location)
    for _ in range(2):   # the second run finds nothing to do
        done = subprocess.run([sys.executable, "-m", "bots.app", "migrate", "--config", str(config)], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().endswith("schema version " + str(SQLITE_SCHEMA_VERSION if kind == "sqlite" else SCHEMA_VERSION))
        assert "teambridge-test" not in done.stdout + done.stderr   # the test server's password


async def test_a_question_mark_inside_a_literal_or_quoted_name_is_not_a_placeholder(postgres_url):
    # The statements are written once with `?` placeholders (core/store/sql.py); PostgreSQL numbers them. A `?`
    # in a string literal or a quoted name is text, and numbering it would shift every parameter after it.
    sql = """SELECT 'why?' || ? AS "who?", 'it''s ?' || ? AS b"""
    assert numbered(sql) == """SELECT 'why?' || $1 AS "who?", 'it''s ?' || $2 AS b"""
    conn = await asyncpg.connect(postgres_url)
    try:
        row = await conn.fetchrow(numbered(sql), " asked", " here")
    finally:
        await conn.close()
    assert dict(row) == {"who?": "why? asked", "b": "it's ? here"}
