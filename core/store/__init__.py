"""Persistence: the Store seam (protocol.py) and its implementations (sqlite.py; postgres.py for several
processes). make_store picks one from the configured location."""
from __future__ import annotations

from pathlib import Path

from core.store.protocol import Store
from core.store.urls import is_postgres_url, redact  # noqa: F401  (re-exported)


def make_store(location: str | Path, *, owner: str | None = None, lease: float | None = None) -> Store:
    """A store for `database:` / TEAMBRIDGE_DB: a postgresql:// URL, or else an SQLite file path. Not opened yet.
    `owner`: this process's name for its replies in flight (see Store.take_orphaned_inflight); `lease`: seconds
    without renewal after which the others take this process for dead (default 30)."""
    extra: dict = {"lease": lease} if lease is not None else {}
    if is_postgres_url(location):
        from core.store.postgres import PostgresStore  # only deployments that use it need its driver
        return PostgresStore(str(location), owner=owner, **extra)
    from core.store.sqlite import SqliteStore
    return SqliteStore(Path(location), **({"owner": owner} if owner else {}), **extra)
