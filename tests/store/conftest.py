"""The `stores` fixture: one database per test, on every Store implementation the machine can run.

The contract suite (test_store_contract.py) asks only for `stores`; a new implementation joins it with one more
parameter here (see STORE_KINDS) and nothing else."""
from __future__ import annotations

import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Callable

import pytest

from core.store.protocol import Store
from core.store.sqlite import SqliteStore


class StoreFactory:
    """Stores on one test's database. Each call is a new connection — a restarted or a second process."""

    kind = "?"
    shared = False   # True: several processes may share the database (turn locks hold across them)

    def new(self, *, clock: Callable[[], float] = time.time, owner: str | None = None) -> Store:
        raise NotImplementedError

    @asynccontextmanager
    async def open(self, *, clock: Callable[[], float] = time.time, owner: str | None = None) -> AsyncIterator[Store]:
        store = self.new(clock=clock, owner=owner)
        await store.open()
        try:
            yield store
        finally:
            await store.close()


class SqliteFactory(StoreFactory):
    kind = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path

    def new(self, *, clock: Callable[[], float] = time.time, owner: str | None = None) -> Store:
        return SqliteStore(self.path, clock=clock, **({"owner": owner} if owner else {}))


class PostgresFactory(StoreFactory):
    kind = "postgresql"
    shared = True

    def __init__(self, url: str) -> None:
        self.url = url

    def new(self, *, clock: Callable[[], float] = time.time, owner: str | None = None) -> Store:
        from core.store.postgres import PostgresStore
        return PostgresStore(self.url, clock=clock, owner=owner)


STORE_KINDS = ["sqlite", "postgresql"]


@pytest.fixture(params=STORE_KINDS)
async def stores(request, tmp_path) -> AsyncIterator[StoreFactory]:
    if request.param == "sqlite":
        yield SqliteFactory(tmp_path / "state" / "teambridge.db")
    else:
        # a fresh database on the session's real PostgreSQL server (tests/support/postgres.py)
        yield PostgresFactory(request.getfixturevalue("postgres_url"))
