"""Fixtures every test folder may use."""
from tests.support.postgres import postgres_server, postgres_url  # noqa: F401  (a real PostgreSQL, on demand)
