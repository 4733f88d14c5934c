"""Conversations for admins: list them, read one, delete them (at the backend, their per-conversation vector
store and the files no one else uses, and our records), forget a person, and the retention sweep.

`teambridge conversations …`, the admins' `/forget` and the retention sweep all call this one module.
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

from core.config.schema import Config
from core.files.attachments import FileBackend, VectorStoreGone
from core.model import (AssistantItem, ConversationKey, FunctionCallItem, FunctionOutputItem, HistoryItem,
                        InboundMessage, SummaryItem, UserItem)
from core.ports import Session
from core.store.protocol import ConversationRecord, Store

log = logging.getLogger("teambridge.conversations")


@dataclass(frozen=True, slots=True)
class ShownItem:
    role: str          # user | assistant | tool
    text: str


class ConversationStore(Protocol):
    """Where a backend keeps a conversation's history: OpenAI's Conversations API, or our own store. `pending`:
    the id names a stored first answer whose conversation is not made yet (ConversationRecord.pending)."""

    async def items(self, conversation_id: str, *, pending: bool = False) -> list[ShownItem]: ...
    async def delete(self, conversation_id: str, *, pending: bool = False) -> bool: ...


class LocalConversations:
    """`ConversationStore` for a backend that keeps the history in our store (its Session)."""

    def __init__(self, session_of: Callable[[str], Session]) -> None:
        self._session_of = session_of

    async def items(self, conversation_id: str, *, pending: bool = False) -> list[ShownItem]:
        return [_local_item(item) for item in await self._session_of(conversation_id).get_items()]

    async def delete(self, conversation_id: str, *, pending: bool = False) -> bool:
        await self._session_of(conversation_id).clear()
        return True


def _local_item(item: HistoryItem) -> ShownItem:
    match item:
        case UserItem(text=text, images=images):
            return ShownItem("user", text + "".join(f" [image {name}]" for name in images))
        case AssistantItem(text=text):
            return ShownItem("assistant", text)
        case FunctionCallItem(name=name, arguments=arguments):
            return ShownItem("tool", f"called {name}({arguments})")
        case FunctionOutputItem(output=output):
            return ShownItem("tool", f"result: {output[:200]}")
        case SummaryItem(text=text, turns=turns):
            return ShownItem("summary", f"({turns} earlier turns condensed) {text}")
    return ShownItem("tool", type(item).__name__)


def shown_item(item: Mapping[str, Any]) -> ShownItem:
    """One history item (Responses / Conversations API shape, or a chat message) as a line an admin reads;
    tool calls summarised."""
    kind = item.get("type") or ("message" if "role" in item else "")
    if kind == "message":
        content = item.get("content")
        if isinstance(content, str):
            text = content
        else:
            parts = [p for p in content or [] if isinstance(p, Mapping)]
            text = "".join(str(p.get("text") or "") for p in parts)
            if not text and any(p.get("type") == "input_image" for p in parts):
                text = "[image]"
        return ShownItem(role=str(item.get("role") or "user"), text=text)
    if kind == "function_call":
        return ShownItem(role="tool", text=f"called {item.get('name')}({item.get('arguments') or ''})")
    if kind == "function_call_output":
        return ShownItem(role="tool", text=f"result: {str(item.get('output') or '')[:200]}")
    if kind == "code_interpreter_call":
        code = str(item.get("code") or "").strip().splitlines()
        return ShownItem(role="tool", text="ran code" + (f": {code[0]} …" if code else ""))
    if kind == "file_search_call":
        queries = item.get("queries") or []
        return ShownItem(role="tool", text="searched files" + (f": {', '.join(map(str, queries))}" if queries else ""))
    return ShownItem(role="tool", text=str(kind or "item"))


@dataclass(frozen=True, slots=True)
class ConversationRow:
    id: str            # the backend's conversation id
    assistant: str
    platform: str
    channel: str
    user_id: str
    user_name: str
    created: float
    last_used: float   # the latest answered turn (its creation when none was counted)
    key: str
    pending: bool = False   # `id` names the stored first answer; the conversation is not made yet


@dataclass(frozen=True, slots=True)
class DeleteReport:
    deleted: tuple[str, ...]             # conversation ids removed
    vector_stores: int = 0
    files: int = 0
    usage_rows_forgotten: int = 0

    def lines(self) -> list[str]:
        out = [f"Deleted {len(self.deleted)} conversation{'s' if len(self.deleted) != 1 else ''}"
               + (f", {self.vector_stores} vector store{'s' if self.vector_stores != 1 else ''}" if self.vector_stores else "")
               + (f", {self.files} file{'s' if self.files != 1 else ''}" if self.files else "") + "."]
        if self.usage_rows_forgotten:
            out.append(f"Replaced the user id in {self.usage_rows_forgotten} usage rows with a digest.")
        return out


def user_digest(user: str) -> str:
    """A one-way stand-in for a forgotten user id in the usage record (the cost stays countable)."""
    return "forgotten-" + hashlib.sha256(user.encode()).hexdigest()[:16]


class ConversationAdmin:
    def __init__(self, config: Config, store: Store, backends: Mapping[str, ConversationStore],
                 files: FileBackend | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._store = store
        self._backends = backends      # backend name (config `backends:`) -> where its conversations live
        self._files = files
        self._clock = clock

    # ---- reading -----------------------------------------------------------------------------------

    async def list(self, *, user: str | None = None, channel: str | None = None,
                   assistant: str | None = None) -> list[ConversationRow]:
        last = await self._last_used()
        rows = []
        for record in await self._store.list_conversations():
            row = _row(record, last)
            if (user and row.user_id != user) or (channel and row.channel != channel) or \
                    (assistant and row.assistant != assistant):
                continue
            rows.append(row)
        return rows

    async def find(self, conversation_id: str) -> ConversationRow | None:
        return next((r for r in await self.list() if r.id == conversation_id), None)

    async def items(self, row: ConversationRow) -> list[ShownItem]:
        return await self._backend_of(row).items(row.id, pending=row.pending)

    # ---- deleting ----------------------------------------------------------------------------------

    async def delete(self, rows: Sequence[ConversationRow], *, forget_user: str | None = None) -> DeleteReport:
        """Delete at the backend (already gone counts as deleted), the per-conversation vector stores and their
        files no one else uses, then our records. The next message from that place starts a new conversation."""
        records = {(r.key, r.assistant): r for r in await self._store.list_conversations()}
        doomed = {(r.key, r.assistant) for r in rows}
        vector_stores = files = 0
        deleted = []
        for row in rows:
            record = records.get((row.key, row.assistant))
            await self._backend_of(row).delete(row.id, pending=row.pending)
            if record is not None and record.vector_store_id and self._files is not None:
                keep = await self._files_in_use(exclude=doomed, records=records.values())
                removed = await self._delete_vector_store(record.vector_store_id, keep)
                if removed is not None:
                    vector_stores += 1
                    files += removed
            await self._store.delete_conversation(_key(row.key), row.assistant)
            await self._store.delete_answers(row.id)   # its answers and their ratings go with it
            deleted.append(row.id)
            log.info("deleted conversation %s (%s, %s)", row.id, row.assistant, row.key)
        forgotten = 0
        if forget_user:
            forgotten = await self._store.forget_usage_user(forget_user, user_digest(forget_user))
            # their questions go, their ratings stay as numbers under the digest
            await self._store.forget_answers_user(forget_user, user_digest(forget_user))
        return DeleteReport(tuple(deleted), vector_stores, files, forgotten)

    async def erase(self, record: ConversationRecord) -> None:
        """A conversation our records no longer hold (a /reset with reset_deletes): at the backend, with its
        per-conversation vector store and the files no one else uses."""
        row = _row(record, {})
        await self._backend_of(row).delete(row.id, pending=row.pending)
        if record.vector_store_id and self._files is not None:
            records = await self._store.list_conversations()
            keep = await self._files_in_use(exclude={(record.key, record.assistant)}, records=records)
            await self._delete_vector_store(record.vector_store_id, keep)
        await self._store.delete_answers(record.backend_id)
        log.info("deleted conversation %s at the backend (reset)", record.backend_id)

    async def sweep(self, days: int) -> DeleteReport:
        """Retention: delete conversations idle for more than `days` days."""
        cutoff = self._clock() - days * 86400
        idle = [r for r in await self.list() if r.last_used < cutoff]
        report = await self.delete(idle) if idle else DeleteReport(())
        await self._store.forget_questions(cutoff)   # answers older than that keep their ratings, not their text
        if idle:
            log.info("retention: deleted %d conversations idle for more than %d days", len(idle), days)
        return report

    # ---- helpers -----------------------------------------------------------------------------------

    def _backend_of(self, row: ConversationRow) -> ConversationStore:
        assistant = self._config.assistants.get(row.assistant)
        name = assistant.backend if assistant is not None else "openai"
        return self._backends.get(name) or next(iter(self._backends.values()))

    async def _last_used(self) -> dict[tuple[str, str, str, str], float]:
        """(platform, channel, user, assistant) -> latest answered turn."""
        last: dict[tuple[str, str, str, str], float] = {}
        for u in await self._store.usage_rows(0, self._clock() + 1):
            k = (u.platform, u.channel, u.user, u.assistant)
            last[k] = max(last.get(k, 0.0), u.ts)
        return last

    async def _files_in_use(self, *, exclude: set[tuple[str, str]],
                            records: Iterable[ConversationRecord]) -> set[str]:
        """File ids that stay in use: the assistants' knowledge, and other conversations' vector stores."""
        assert self._files is not None
        keep: set[str] = set()
        for name in self._config.assistants:
            keep.update(f.file_id for f in await self._store.list_knowledge_files(name))
        for record in records:
            if (record.key, record.assistant) in exclude or not record.vector_store_id:
                continue
            try:
                keep.update(f["file_id"] for f in await self._files.list_vector_store_files(record.vector_store_id))
            except VectorStoreGone:
                continue
        return keep

    async def _delete_vector_store(self, vector_store_id: str, keep: set[str]) -> int | None:
        """Deletes the store and its files that are not in `keep`; the number of files, None if it was gone."""
        assert self._files is not None
        try:
            file_ids = [f["file_id"] for f in await self._files.list_vector_store_files(vector_store_id)]
        except VectorStoreGone:
            return None
        await self._files.delete_vector_store(vector_store_id)
        removed = 0
        for file_id in file_ids:
            if file_id in keep:
                continue
            try:
                await self._files.delete_file(file_id)
            except Exception as exc:  # already gone: nothing to keep paying for
                log.info("file %s of vector store %s: %s", file_id, vector_store_id, exc)
            await self._store.delete_file(file_id)
            removed += 1
        return removed


def _key(text: str) -> ConversationKey:
    platform, workspace, channel, thread, user = text.split("|", 4)
    return ConversationKey(platform=platform, workspace=workspace, channel=channel, thread=thread, user=user)


def _row(record: ConversationRecord, last: Mapping[tuple[str, str, str, str], float]) -> ConversationRow:
    meta = record.metadata
    used = last.get((meta.get("platform", ""), meta.get("channel", ""), meta.get("user_id", ""), record.assistant))
    return ConversationRow(id=record.backend_id, assistant=record.assistant, platform=meta.get("platform", ""),
                           channel=meta.get("channel", ""), user_id=meta.get("user_id", ""),
                           user_name=meta.get("user_name", ""), created=record.created_at,
                           last_used=max(used or 0.0, record.created_at), key=record.key, pending=record.pending)


# The admins' /forget in chat lives in core/admin/forget.py; named here too, where callers found it first.
from core.admin.forget import ForgetCommand  # noqa: E402,F401
