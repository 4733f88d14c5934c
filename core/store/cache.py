"""Read caches for a store that one process owns (SQLite): the rows read on every message, kept in memory.

`CachedReads` sits in front of the shared statements (core.store.sql.SqlStore) in the SQLite store's class:
a hit returns without a statement; a write goes through to the database and updates the cache around it.
Never for PostgreSQL: another process may have written since, so PostgresStore has no cache at all (not even
a no-op one on its hot paths).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

from core.model import ConversationKey
from core.store.protocol import ConversationRecord

MISSING = object()
"""What a cache returns for a key it does not know (None is a cached "no such row")."""

ALL_PREFERENCES = 20_000
"""Up to this many stored preferences are read whole when the store opens (see CachedReads.load_preferences)."""


class ReadCache:
    """A bounded, write-through cache of rows this process reads on every message (and often finds missing).

    Missing rows are cached too: most preference look-ups find nothing.
    """

    def __init__(self, size: int = 20_000) -> None:
        self._size = size
        self._data: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any) -> Any:
        value = self._data.get(key, MISSING)
        if value is not MISSING:
            self._data.move_to_end(key)
        return value

    def put(self, key: Any, value: Any) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        if len(self._data) > self._size:
            self._data.popitem(last=False)

    def drop(self, key: Any) -> None:
        self._data.pop(key, None)


class CachedReads:
    """Conversations, preferences, thread markers and knowledge stores, cached in front of the statements.

    Writes update the cache before the statement (readers see them at once, even while it is queued) and again
    after it (a read racing the write may have put the old value back)."""

    def __init__(self) -> None:
        self._conversations = ReadCache()      # (key, assistant) -> ConversationRecord | None
        self._preferences = ReadCache()        # scope -> assistant | None
        self._threads = ReadCache()            # (platform, channel, thread) -> (assistant, expires_at) | None
        self._knowledge_stores = ReadCache()   # assistant -> vector store id | None
        self._all_preferences: dict[str, str] | None = None   # every stored preference, once loaded

    # ---- conversations -----------------------------------------------------------------------

    async def get_conversation(self, key: ConversationKey, assistant: str) -> ConversationRecord | None:
        cache_key = (key.as_string(), assistant)
        cached = self._conversations.get(cache_key)
        if cached is not MISSING:
            return cached
        record = await super().get_conversation(key, assistant)  # type: ignore[misc]
        self._conversations.put(cache_key, record)
        return record

    async def save_conversation(self, key: ConversationKey, assistant: str, backend_id: str,
                                metadata: dict[str, str], *, pending: bool = False) -> None:
        cache_key = (key.as_string(), assistant)
        known = self._conversations.get(cache_key)
        now = float(self._clock())  # type: ignore[attr-defined]
        if known is MISSING:   # an existing row's created_at and vector store are not known here: read again
            self._conversations.drop(cache_key)
            await super()._write_conversation(key, assistant, backend_id, metadata,  # type: ignore[misc]
                                              pending, now)
            self._conversations.drop(cache_key)  # again: a read that raced the write is stale
            return
        # The row as the statement leaves it: the thread's next message finds it here, not by a round trip in
        # front of its request (a first turn's row is saved twice: pending, then made).
        record = ConversationRecord(
            key=cache_key[0], assistant=assistant, backend_id=backend_id, metadata=dict(metadata),
            vector_store_id=known.vector_store_id if known is not None else None,
            created_at=known.created_at if known is not None else now, updated_at=now, pending=bool(pending))
        self._conversations.put(cache_key, record)
        try:
            await super()._write_conversation(key, assistant, backend_id, metadata,  # type: ignore[misc]
                                              pending, now)
        except BaseException:
            self._conversations.drop(cache_key)   # not written: read it again
            raise
        self._conversations.put(cache_key, record)  # again: a read that raced the write put the old row back

    async def set_conversation_vector_store(self, key: ConversationKey, assistant: str,
                                            vector_store_id: str) -> None:
        cache_key = (key.as_string(), assistant)
        self._conversations.drop(cache_key)
        await super().set_conversation_vector_store(key, assistant, vector_store_id)  # type: ignore[misc]
        self._conversations.drop(cache_key)

    async def delete_conversation(self, key: ConversationKey, assistant: str) -> bool:
        cache_key = (key.as_string(), assistant)
        self._conversations.drop(cache_key)
        found = await super().delete_conversation(key, assistant)  # type: ignore[misc]
        self._conversations.drop(cache_key)
        return found

    # ---- preferences -------------------------------------------------------------------------

    async def load_preferences(self, limit: int = ALL_PREFERENCES) -> bool:
        """Read every stored preference once (when there are at most `limit`): only people who chose an
        assistant have one, so the table is small, and a message from anyone else is then answered without a
        statement — in a burst of mentions from new people that was one round trip to the database each, in
        front of the request to the model. True when loaded."""
        rows = await self._fetch("SELECT scope, assistant FROM preferences LIMIT ?",  # type: ignore[attr-defined]
                                 (limit + 1,))
        if len(rows) > limit:
            return False   # a big table: looked up per scope, as before
        self._all_preferences = {scope: assistant for scope, assistant in rows}
        return True

    async def get_preference(self, scope: str) -> str | None:
        if self._all_preferences is not None:
            return self._all_preferences.get(scope)
        cached = self._preferences.get(scope)
        if cached is not MISSING:
            return cached
        value = await super().get_preference(scope)  # type: ignore[misc]
        self._preferences.put(scope, value)
        return value

    async def set_preference(self, scope: str, assistant: str | None) -> None:
        known = (self._all_preferences.get(scope) if self._all_preferences is not None
                 else self._preferences.get(scope))
        if known == assistant:
            return  # already so: no write
        self._put_preference(scope, assistant)
        await super().set_preference(scope, assistant)  # type: ignore[misc]
        self._put_preference(scope, assistant)

    def _put_preference(self, scope: str, assistant: str | None) -> None:
        if self._all_preferences is None:
            self._preferences.put(scope, assistant)
        elif assistant is None:
            self._all_preferences.pop(scope, None)
        else:
            self._all_preferences[scope] = assistant

    # ---- thread markers (expiry is checked on the cached row: core.store.sql.SqlStore.thread_assistant) -----

    async def _thread_marker(self, platform: str, channel: str, thread: str) -> tuple[str, float] | None:
        cache_key = (platform, channel, thread)
        cached = self._threads.get(cache_key)
        if cached is MISSING:
            cached = await super()._thread_marker(platform, channel, thread)  # type: ignore[misc]
            self._threads.put(cache_key, cached)
        return cached

    async def _save_thread_marker(self, platform: str, channel: str, thread: str, assistant: str,
                                  expires: float) -> None:
        cache_key = (platform, channel, thread)
        self._threads.put(cache_key, (assistant, expires))
        await super()._save_thread_marker(platform, channel, thread, assistant, expires)  # type: ignore[misc]
        self._threads.put(cache_key, (assistant, expires))

    # ---- knowledge stores --------------------------------------------------------------------

    async def get_knowledge_store(self, assistant: str) -> str | None:
        cached = self._knowledge_stores.get(assistant)
        if cached is not MISSING:
            return cached
        value = await super().get_knowledge_store(assistant)  # type: ignore[misc]
        self._knowledge_stores.put(assistant, value)
        return value

    async def save_knowledge_store(self, assistant: str, vector_store_id: str) -> None:
        self._knowledge_stores.drop(assistant)
        await super().save_knowledge_store(assistant, vector_store_id)  # type: ignore[misc]
        self._knowledge_stores.drop(assistant)
