"""Fixtures every test folder may use."""
from tests.support.postgres import postgres_server, postgres_url  # noqa: F401  (a real PostgreSQL, on demand)
from tests.run_harness import run_processes  # noqa: F401  (`teambridge run` processes, killed when a test ends)
