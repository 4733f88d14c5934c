"""Database locations: which store a location names, and how to show one without its password."""
from __future__ import annotations

from pathlib import Path

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def redact(location: str) -> str:
    """A database location fit for a log line or a message: a URL loses its password."""
    if "://" not in location or "@" not in location:
        return location
    scheme, rest = location.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    return f"{scheme}://{credentials.split(':', 1)[0]}@{host}"


def is_postgres_url(location: str | Path) -> bool:
    return str(location).startswith(POSTGRES_SCHEMES)
