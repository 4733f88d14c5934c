"""A real PostgreSQL server for the tests, started from the tests themselves (the server itself:
bots/standins/postgres.py, shared with the bench). TEAMBRIDGE_TEST_POSTGRES (a postgresql:// URL of a server whose
user may CREATE DATABASE) uses that server instead.

With no server at all the PostgreSQL tests are skipped — except in CI (CI=true), where that is a failure.
"""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from bots.standins.postgres import ExternalServer, PostgresServer, bin_dir


def unavailable(reason: str) -> None:
    """Skip — or, in CI, fail: CI must run the PostgreSQL tests (`.ci/run` installs the server)."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"PostgreSQL is required in CI: {reason}", pytrace=False)
    pytest.skip(f"no PostgreSQL server: {reason}")


@pytest.fixture(scope="session")
def postgres_server():
    """The session's PostgreSQL server (started on first use, stopped at the end)."""
    external = os.environ.get("TEAMBRIDGE_TEST_POSTGRES", "").strip()
    if external:
        yield ExternalServer(external)
        return
    binaries = bin_dir()
    if binaries is None:
        unavailable("no initdb/pg_ctl found (apt-get install postgresql)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        unavailable("running as root without runuser")
    server = PostgresServer(binaries)
    try:
        server.start()
    except (OSError, subprocess.CalledProcessError, RuntimeError, KeyError, LookupError) as exc:
        server.stop()
        detail = exc.stderr.decode(errors="replace")[-500:] if isinstance(exc, subprocess.CalledProcessError) else ""
        unavailable(f"could not start it: {exc} {detail}")
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A fresh database on the session's server."""
    return postgres_server.new_database()
