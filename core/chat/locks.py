"""One turn at a time per conversation, behind a small seam so that the lock can live in the database.

`TurnLocks` is what ChatService needs; the composition root picks the implementation: `KeyedLocks` (asyncio,
one process — the SQLite default) or the PostgreSQL store's advisory locks (every process on one database).
"""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import AsyncContextManager, AsyncIterator, Protocol


class TurnLocks(Protocol):
    """`async with locks.hold(key):` — held by one turn at a time; later turns of the key wait, in order,
    and none is dropped."""

    def hold(self, key: str) -> AsyncContextManager[None]: ...


class KeyedLocks:
    """TurnLocks in one process. Locks are created on demand and dropped when nobody holds or waits for them,
    so memory stays flat."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:  # waiters queue in FIFO order: later messages wait their turn, none dropped
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
