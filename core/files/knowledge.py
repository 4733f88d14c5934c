"""Knowledge: an assistant's file_search files (config) kept in sync with its vector store.

`teambridge knowledge sync` and startup call KnowledgeSync.sync(config). It uploads only what is new or
changed (sha256 against the store's knowledge_files table), removes what was deleted or replaced (from the
vector store and from Files, since storage is billed per GB-day), waits for processing and reports per file.
"""
from __future__ import annotations

import asyncio
import glob
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

from core.config.files import matching_files
from core.config.schema import AssistantConfig, Config
from core.files.attachments import PURPOSE_SEARCH, FileBackend, VectorStoreGone, sha256
from core.store.protocol import KnowledgeFile, Store

log = logging.getLogger(__name__)

SyncAction = Literal["added", "unchanged", "updated", "removed", "failed"]
ADDED: SyncAction = "added"
UNCHANGED: SyncAction = "unchanged"
UPDATED: SyncAction = "updated"
REMOVED: SyncAction = "removed"
FAILED: SyncAction = "failed"

# Store purpose label for knowledge uploads: kept apart from attachment dedupe ("assistants"), because sync
# deletes a knowledge file when its source changes, and a conversation's vector store must not lose it then.
KNOWLEDGE_PURPOSE = "knowledge"


@dataclass(frozen=True, slots=True)
class SyncEntry:
    path: str          # relative to the config's directory
    action: SyncAction
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SyncReport:
    assistant: str
    vector_store_id: str
    entries: tuple[SyncEntry, ...]

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def failed(self) -> tuple[SyncEntry, ...]:
        """The entries that failed (empty when the sync went through)."""
        return tuple(e for e in self.entries if e.action == FAILED)

    def count(self, action: SyncAction) -> int:
        return sum(1 for e in self.entries if e.action == action)

    def lines(self) -> list[str]:
        head = (f"{self.assistant}: vector store {self.vector_store_id or '(none)'} - "
                f"{self.count(ADDED)} added, {self.count(UPDATED)} updated, {self.count(UNCHANGED)} unchanged, "
                f"{self.count(REMOVED)} removed, {self.count(FAILED)} failed")
        out = [head]
        for e in self.entries:
            out.append(f"  {e.action:<9} {e.path}" + (f": {e.reason}" if e.reason else ""))
        return out


def knowledge_assistants(config: Config, assistant_name: str | None = None) -> list[AssistantConfig]:
    names = [assistant_name] if assistant_name else list(config.assistants)
    return [config.assistants[n] for n in names
            if n in config.assistants and config.assistants[n].tool("file_search") is not None]


def resolve_files(config: Config, assistant: AssistantConfig) -> tuple[dict[str, Path], list[SyncEntry]]:
    """Paths/globs of the assistant's file_search section -> {relative posix path: absolute path}."""
    tool = assistant.tool("file_search")
    base = Path(config.base_dir)
    found: dict[str, Path] = {}
    problems: list[SyncEntry] = []
    for pattern in tool.files if tool is not None else []:
        # the same resolver `teambridge check` uses: relative to the config's directory, or absolute
        matches = [Path(p) for p in sorted(matching_files(pattern, base))]
        if not matches:
            problems.append(SyncEntry(pattern, FAILED, "no file matches this pattern" if glob.has_magic(pattern)
                                      else "file not found"))
        for p in matches:
            try:
                rel = p.resolve().relative_to(base.resolve()).as_posix()
            except ValueError:  # outside the config's directory (../shared/x.md, /srv/docs/a.md): as written
                rel = p.as_posix()
            found.setdefault(rel, p)
    return found, problems


class KnowledgeSync:
    def __init__(self, files: FileBackend, store: Store):
        self._files = files
        self._store = store
        self._lock = asyncio.Lock()   # startup sync and a CLI/admin sync must not interleave

    async def vector_store_ids(self, assistant_name: str) -> list[str]:
        vs = await self._store.get_knowledge_store(assistant_name)
        return [vs] if vs else []

    async def sync(self, config: Config, assistant_name: str | None = None, *,
                   progress: Callable[[int, int, str], None] | None = None) -> list[SyncReport]:
        """`progress(done, total, what)`: told about each file as it is read or uploaded (long syncs)."""
        async with self._lock:
            return [await self._sync_or_report(config, a, progress or _quiet)
                    for a in knowledge_assistants(config, assistant_name)]

    async def _sync_or_report(self, config: Config, assistant: AssistantConfig,
                              progress: Callable[[int, int, str], None]) -> SyncReport:
        """One assistant's sync; when it fails as a whole (OpenAI refuses the key, is down, ...) that is its
        report, and the other assistants (and the bot) go on."""
        try:
            return await self._sync_one(config, assistant, progress)
        except Exception as exc:  # noqa: BLE001 - reported per assistant; the caller decides what to do with it
            reason = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            log.warning("knowledge sync of %s failed: %s", assistant.name, reason)
            vs_id = await self._store.get_knowledge_store(assistant.name) or ""
            return SyncReport(assistant.name, vs_id, (SyncEntry("(sync)", FAILED, reason),))

    async def _sync_one(self, config: Config, assistant: AssistantConfig,
                        progress: Callable[[int, int, str], None] = lambda done, total, what: None) -> SyncReport:
        tool = assistant.tool("file_search")
        local, entries = resolve_files(config, assistant)
        known = {row.path: row for row in await self._store.list_knowledge_files(assistant.name)}

        vs_id = await self._store.get_knowledge_store(assistant.name)
        remote: dict[str, str] = {}
        if vs_id:
            try:
                remote = {f["file_id"]: f["status"] for f in await self._files.list_vector_store_files(vs_id)}
            except VectorStoreGone:
                log.warning("knowledge vector store %s of %s is gone; building a new one", vs_id, assistant.name)
                vs_id = None
        if not vs_id:
            vs_id = await self._files.create_vector_store(
                f"teambridge-{assistant.name}", {"teambridge": "knowledge", "assistant": assistant.name},
                None, tool.chunking)
            await self._store.save_knowledge_store(assistant.name, vs_id)
            remote = {}

        # Removed from the config or from disk.
        for path, row in sorted(known.items()):
            if path not in local:
                await self._drop(vs_id, assistant.name, row)
                entries.append(SyncEntry(path, REMOVED))

        # New, changed, or previously failed / lost at the backend.
        pending: list[tuple[str, str, str, bool]] = []   # (path, sha, file_id, was_known)
        for done, (path, abs_path) in enumerate(sorted(local.items()), 1):
            progress(done, len(local), f"{assistant.name}: {path}")
            try:
                data = await asyncio.to_thread(abs_path.read_bytes)
            except OSError as exc:
                entries.append(SyncEntry(path, FAILED, f"can't read: {exc.strerror or exc}"))
                continue
            digest = sha256(data)
            row = known.get(path)
            if row and row.sha256 == digest and row.status == "completed" \
                    and remote.get(row.file_id) == "completed":
                entries.append(SyncEntry(path, UNCHANGED))
                continue
            if row:
                await self._drop(vs_id, assistant.name, row)
            if not data:
                entries.append(SyncEntry(path, FAILED, "the file is empty"))
                continue
            file_id = await self._files.upload(abs_path.name, data, PURPOSE_SEARCH)
            await self._store.save_file(digest, KNOWLEDGE_PURPOSE, file_id, path, len(data))
            await self._store.save_knowledge_file(assistant.name, path, digest, file_id, "in_progress")
            pending.append((path, digest, file_id, bool(row and row.sha256 != digest)))

        if pending:
            progress(len(local), len(local), f"{assistant.name}: indexing {len(pending)} file(s)")
            statuses = await self._files.add_files_to_vector_store(vs_id, [p[2] for p in pending],
                                                                   chunking=tool.chunking)
            for path, digest, file_id, changed in pending:
                status, error = statuses.get(file_id, ("failed", "no status came back"))
                await self._store.save_knowledge_file(assistant.name, path, digest, file_id, status, error)
                if status == "completed":
                    entries.append(SyncEntry(path, UPDATED if changed else ADDED))
                else:
                    entries.append(SyncEntry(path, FAILED, error or status))
        return SyncReport(assistant.name, vs_id, tuple(sorted(entries, key=lambda e: e.path)))

    async def _drop(self, vs_id: str, assistant: str, row: KnowledgeFile) -> None:
        await self._files.remove_file_from_vector_store(vs_id, row.file_id)
        await self._files.delete_file(row.file_id)
        await self._store.delete_file(row.file_id)
        await self._store.delete_knowledge_file(assistant, row.path)


def _quiet(done: int, total: int, what: str) -> None:
    pass
