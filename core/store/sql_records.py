"""The Store's statements for what is recorded rather than looked up on every message: uploads, usage, the tool
call audit trail, knowledge files and local history. Written once for both databases (see core/store/sql.py:
`?` placeholders, parameters of the column's Python type); a mixin over the database's `_fetch` and
`_history_transaction`."""
from __future__ import annotations

import json
from typing import Any, AsyncContextManager, Callable, Sequence

from core.model import Usage
from core.store.protocol import FileRecord, HistoryItem, KnowledgeFile, ToolCallRecord, UsageRow

_USAGE_ROWS = ('SELECT id, ts, assistant, platform, workspace, channel, "user", model, input_tokens, cached_tokens,'
               " output_tokens, tool_calls, code_interpreter_sessions FROM usage WHERE ts >= ? AND ts < ?"
               " ORDER BY ts, id")
_TOOL_CALLS = ('SELECT at, conversation, platform, channel, "user", assistant, tool, server, arguments_sha256,'
               " approval, approved_by, outcome, duration_ms FROM tool_calls WHERE at >= ? AND at < ?"
               " ORDER BY at, id")
_INSERT_HISTORY = "INSERT INTO history_items (conversation, seq, data, tokens) VALUES (?, ?, ?, ?)"


class SqlRecords:
    _clock: Callable[[], float]

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:  # pragma: no cover - per database
        raise NotImplementedError

    def _history_transaction(self, conversation: str) -> AsyncContextManager[Any]:  # pragma: no cover
        raise NotImplementedError

    # ---- uploaded files ----------------------------------------------------------------------

    async def get_file(self, sha256: str, purpose: str) -> str | None:
        rows = await self._fetch("SELECT file_id FROM files WHERE sha256 = ? AND purpose = ?", (sha256, purpose))
        return rows[0][0] if rows else None

    async def save_file(self, sha256: str, purpose: str, file_id: str, name: str, size: int) -> None:
        # A re-upload of the same bytes (e.g. after the old file was deleted at the backend) replaces the id.
        await self._fetch(
            "INSERT INTO files (sha256, purpose, file_id, name, size, created_at) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (sha256, purpose) DO UPDATE SET file_id = excluded.file_id, name = excluded.name,"
            " size = excluded.size, created_at = excluded.created_at",
            (sha256, purpose, file_id, name, int(size), float(self._clock())))

    async def list_files(self) -> list[FileRecord]:
        rows = await self._fetch(
            "SELECT sha256, purpose, file_id, name, size, created_at FROM files ORDER BY created_at, file_id")
        return [FileRecord(*r) for r in rows]

    async def delete_file(self, file_id: str) -> None:
        await self._fetch("DELETE FROM files WHERE file_id = ?", (file_id,))

    # ---- usage -------------------------------------------------------------------------------

    async def record_usage(self, *, assistant: str, platform: str, workspace: str, channel: str, user: str,
                           model: str, usage: Usage) -> None:
        await self._fetch(
            'INSERT INTO usage (ts, assistant, platform, workspace, channel, "user", model, input_tokens,'
            " cached_tokens, output_tokens, tool_calls, code_interpreter_sessions)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (float(self._clock()), assistant, platform, workspace, channel, user, model, usage.input_tokens,
             usage.cached_tokens, usage.output_tokens, usage.tool_calls, usage.code_interpreter_sessions))

    async def usage_rows(self, since: float, until: float) -> list[UsageRow]:
        """Turns with since <= ts < until, oldest first."""
        rows = await self._fetch(_USAGE_ROWS, (float(since), float(until)))
        return [UsageRow(*r) for r in rows]

    async def forget_usage_user(self, user: str, replacement: str) -> int:
        rows = await self._fetch('UPDATE usage SET "user" = ? WHERE "user" = ? RETURNING 1', (replacement, user))
        return len(rows)

    # ---- the audit trail of tool calls ---------------------------------------------------------

    async def record_tool_call(self, record: ToolCallRecord) -> None:
        await self._fetch(
            'INSERT INTO tool_calls (at, conversation, platform, channel, "user", assistant, tool, server,'
            " arguments_sha256, approval, approved_by, outcome, duration_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (float(record.at), record.conversation, record.platform, record.channel, record.user,
             record.assistant, record.tool, record.server, record.arguments_sha256, record.approval,
             record.approved_by, record.outcome, int(record.duration_ms)))

    async def tool_calls(self, since: float, until: float) -> list[ToolCallRecord]:
        """Tool calls with since <= at < until, oldest first."""
        rows = await self._fetch(_TOOL_CALLS, (float(since), float(until)))
        return [ToolCallRecord(*tuple(r)[:12], duration_ms=int(r[12])) for r in rows]

    # ---- knowledge (vector store per assistant, synced from the config's files) --------------

    async def get_knowledge_store(self, assistant: str) -> str | None:
        rows = await self._fetch("SELECT vector_store_id FROM knowledge_stores WHERE assistant = ?", (assistant,))
        return rows[0][0] if rows else None

    async def save_knowledge_store(self, assistant: str, vector_store_id: str) -> None:
        await self._fetch(
            "INSERT INTO knowledge_stores (assistant, vector_store_id, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (assistant) DO UPDATE SET vector_store_id = excluded.vector_store_id,"
            " created_at = excluded.created_at", (assistant, vector_store_id, float(self._clock())))

    async def list_knowledge_files(self, assistant: str) -> list[KnowledgeFile]:
        """One assistant's files, ordered by path."""
        rows = await self._fetch(
            "SELECT path, sha256, file_id, status, error FROM knowledge_files WHERE assistant = ? ORDER BY path",
            (assistant,))
        return [KnowledgeFile(*r) for r in rows]

    async def save_knowledge_file(self, assistant: str, path: str, sha256: str, file_id: str, status: str,
                                  error: str | None = None) -> None:
        await self._fetch(
            "INSERT INTO knowledge_files (assistant, path, sha256, file_id, status, error)"
            " VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (assistant, path) DO UPDATE SET sha256 = excluded.sha256,"
            " file_id = excluded.file_id, status = excluded.status, error = excluded.error",
            (assistant, path, sha256, file_id, status, error))

    async def delete_knowledge_file(self, assistant: str, path: str) -> None:
        await self._fetch("DELETE FROM knowledge_files WHERE assistant = ? AND path = ?", (assistant, path))

    # ---- local history -----------------------------------------------------------------------

    async def load_history(self, conversation: str) -> list[HistoryItem]:
        rows = await self._fetch("SELECT seq, data, tokens FROM history_items WHERE conversation = ? ORDER BY seq",
                                 (conversation,))
        return [HistoryItem(data=json.loads(r[1]), tokens=r[2], seq=r[0]) for r in rows]

    async def append_history(self, conversation: str, items: Sequence[HistoryItem]) -> None:
        if not items:
            return
        async with self._history_transaction(conversation) as execute:  # the next seq and the inserts together
            rows = await execute("SELECT COALESCE(MAX(seq), 0) FROM history_items WHERE conversation = ?",
                                 (conversation,))
            await _insert_history(execute, conversation, items, int(rows[0][0]) + 1)

    async def replace_history(self, conversation: str, items: Sequence[HistoryItem]) -> None:
        """E.g. older turns condensed into a summary: the old items go and these take their place, at once."""
        async with self._history_transaction(conversation) as execute:
            await execute("DELETE FROM history_items WHERE conversation = ?", (conversation,))
            await _insert_history(execute, conversation, items, 1)

    async def delete_history(self, conversation: str) -> None:
        await self._fetch("DELETE FROM history_items WHERE conversation = ?", (conversation,))


async def _insert_history(execute: Any, conversation: str, items: Sequence[HistoryItem], first: int) -> None:
    for seq, item in enumerate(items, start=first):
        await execute(_INSERT_HISTORY, (conversation, seq, json.dumps(dict(item.data), ensure_ascii=False),
                                        int(item.tokens)))
