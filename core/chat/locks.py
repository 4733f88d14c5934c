"""One turn at a time per conversation, behind a small seam so that the lock can live in the database.

`TurnLocks` is what ChatService needs; the composition root picks the implementation: `KeyedLocks` (asyncio,
one process — the SQLite default) or the PostgreSQL store's advisory locks (every process on one database).
"""
from __future__ import annotations

import asyncio
from typing import AsyncContextManager, Protocol


class TurnLocks(Protocol):
    """`async with locks.hold(key):` — held by one turn at a time; later turns of the key wait, in order,
    and none is dropped."""

    def hold(self, key: str) -> AsyncContextManager[None]: ...


class KeyedLocks:
    """TurnLocks in one process. Locks are created on demand and dropped when nobody holds or waits for them,
    so memory stays flat."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def hold(self, key: str) -> "_Held":
        # A class, not @asynccontextmanager: every answer takes a turn lock on its way to the model, and the
        # generator-based form costs an async generator, its hooks and contextlib's wrapper per message.
        return _Held(self._locks, key)

    def __len__(self) -> int:
        return len(self._locks)


class _Held:
    """One `async with KeyedLocks.hold(key)`: counted as a user of the key's lock from entering until leaving
    (waiting included, so the lock is not dropped under a waiter); waiters queue in FIFO order: later messages
    wait their turn, none dropped."""

    __slots__ = ("_locks", "_key", "_lock")

    def __init__(self, locks: dict[str, tuple[asyncio.Lock, int]], key: str) -> None:
        self._locks = locks
        self._key = key
        self._lock: asyncio.Lock | None = None

    async def __aenter__(self) -> None:
        locks, key = self._locks, self._key
        lock, users = locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        locks[key] = (lock, users + 1)
        try:
            await lock.acquire()
        except BaseException:   # cancelled while waiting: no longer a user
            self._leave()
            raise
        self._lock = lock

    async def __aexit__(self, *exc: object) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()
        self._leave()

    def _leave(self) -> None:
        locks, key = self._locks, self._key
        lock, users = locks[key]
        if users <= 1:
            del locks[key]
        else:
            locks[key] = (lock, users - 1)
