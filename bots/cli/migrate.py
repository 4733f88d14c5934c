"""`teambridge migrate`: bring the database to this version's schema now (every start does it too, under a lock;
operators who upgrade several processes may prefer to migrate once before starting them)."""
from __future__ import annotations

import argparse

from bots.cli.base import EXIT_FAILED, EXIT_OK, Invocation


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("migrate", parents=[common], help="apply the database schema migrations now")
    parser.set_defaults(handler=_migrate)


async def _migrate(inv: Invocation) -> int:
    from bots.runtime import database_location
    from core.store import make_store, redact

    location = database_location(inv.cfg, inv.env)
    store = make_store(location)
    try:
        await store.open()   # opening applies whatever this database lacks, under the store's migration lock
    except Exception as err:
        print(f"teambridge: could not migrate {redact(str(location))}: {err}")
        return EXIT_FAILED
    try:
        print(f"{redact(str(location))}: schema version {await store.schema_version()}")
    finally:
        await store.close()
    return EXIT_OK
