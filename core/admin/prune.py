"""What teambridge left at OpenAI: `files list --remote`, `files prune`, `knowledge prune`.

Found at OpenAI, not only in the local database: files with the purposes teambridge uploads with
(`assistants`, `user_data`, `vision`) and vector stores carrying teambridge's metadata (`teambridge:
knowledge` or `teambridge: conversation`). In use is what the config or a stored conversation still needs:

- a vector store is in use when it is the knowledge store of an assistant in the config, or the store of a
  conversation in the database;
- a file is in use when it is a knowledge file of an assistant in the config, or sits in a vector store in use.
  Images (purpose `vision`) stay: they are part of their conversation's history at OpenAI.

Prune deletes only what teambridge created — files recorded in its database, vector stores with its metadata —
and nothing in use. Without `apply` it only says what it would delete. Each function returns printable text and
reports progress (done, total, what) through `progress`.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

from core.config.schema import Config
from core.files.attachments import PURPOSE_CODE, PURPOSE_SEARCH, PURPOSE_VISION, FileBackend, VectorStoreGone
from core.store.protocol import FileRecord, Store

log = logging.getLogger(__name__)

OUR_PURPOSES = (PURPOSE_SEARCH, PURPOSE_CODE, PURPOSE_VISION)
STORE_KINDS = ("knowledge", "conversation")

Progress = Callable[[int, int, str], None]


def _no_progress(done: int, total: int, what: str) -> None:
    pass


@dataclass(frozen=True, slots=True)
class RemoteFile:
    id: str
    name: str
    purpose: str
    bytes: int
    created_at: int
    ours: bool          # recorded in teambridge's database (teambridge uploaded it)
    used_by: str        # "" when nothing uses it


@dataclass(frozen=True, slots=True)
class RemoteStore:
    id: str
    name: str
    kind: str           # knowledge | conversation
    bytes: int
    created_at: int
    status: str
    used_by: str


@dataclass(frozen=True, slots=True)
class Inventory:
    files: list[RemoteFile]
    stores: list[RemoteStore]
    forgotten: list[FileRecord]  # rows of our database whose file no longer exists at OpenAI


async def inventory(config: Config, store: Store, files: FileBackend, progress: Progress = _no_progress) -> Inventory:
    knowledge_stores: dict[str, str] = {}     # vector store id -> assistant
    knowledge_files: dict[str, str] = {}      # file id -> assistant
    for name in config.assistants:
        vs_id = await store.get_knowledge_store(name)
        if vs_id:
            knowledge_stores[vs_id] = name
        for row in await store.list_knowledge_files(name):
            knowledge_files[row.file_id] = name
    conversation_stores = {record.vector_store_id: record.assistant for record in await store.list_conversations()
                           if record.vector_store_id}

    stores: list[RemoteStore] = []
    for v in await files.list_vector_stores():
        kind = (v.get("metadata") or {}).get("teambridge", "")
        if kind not in STORE_KINDS:
            continue  # not ours
        used = (f"knowledge of {knowledge_stores[v['id']]}" if v["id"] in knowledge_stores else
                f"a {conversation_stores[v['id']]} conversation" if v["id"] in conversation_stores else "")
        if v.get("status") == "expired":
            used = ""
        stores.append(RemoteStore(v["id"], v.get("name") or "", kind, v.get("usage_bytes") or 0,
                                  v.get("created_at") or 0, v.get("status") or "", used))

    in_stores: dict[str, str] = {}
    live = [s for s in stores if s.used_by]
    for n, s in enumerate(live, 1):
        progress(n, len(live), f"reading vector store {s.id}")
        try:
            for f in await files.list_vector_store_files(s.id):
                in_stores.setdefault(f["file_id"], s.used_by)
        except VectorStoreGone:
            continue

    ours = {row.file_id: row for row in await store.list_files()}
    remote_files: list[RemoteFile] = []
    seen = set()
    for f in await files.list_files():
        if f.get("purpose") not in OUR_PURPOSES:
            continue
        seen.add(f["id"])
        used = (f"knowledge of {knowledge_files[f['id']]}" if f["id"] in knowledge_files else
                in_stores.get(f["id"], "") or ("conversation history (image)" if f["purpose"] == PURPOSE_VISION else ""))
        remote_files.append(RemoteFile(f["id"], f.get("name") or "", f["purpose"], f.get("bytes") or 0,
                                       f.get("created_at") or 0, f["id"] in ours, used))
    forgotten = [row for fid, row in ours.items() if fid not in seen]
    return Inventory(remote_files, stores, forgotten)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _when(ts: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts)) if ts else "?"


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def remote_text(inv: Inventory) -> str:
    rows = [("KIND", "ID", "PURPOSE", "NAME", "SIZE", "CREATED", "USED BY")]
    for f in inv.files:
        rows.append(("file", f.id, f.purpose, f.name, _size(f.bytes), _when(f.created_at),
                     f.used_by or ("unused" if f.ours else "unused; not in teambridge's database")))
    for s in inv.stores:
        rows.append(("vector_store", s.id, s.kind, s.name, _size(s.bytes), _when(s.created_at),
                     s.used_by or ("expired" if s.status == "expired" else "unused")))
    if len(rows) == 1:
        return "Nothing teambridge created is stored at OpenAI."
    unused_files = [f for f in inv.files if not f.used_by and f.ours]
    unused_stores = [s for s in inv.stores if not s.used_by]
    summary = (f"{len(inv.files)} file(s), {len(inv.stores)} vector store(s) at OpenAI; unused: "
               f"{len(unused_files)} file(s) ({_size(sum(f.bytes for f in unused_files))}), "
               f"{len(unused_stores)} vector store(s) — `teambridge files prune` / `teambridge knowledge prune`")
    return _table(rows) + "\n" + summary


async def prune_files(config: Config, store: Store, files: FileBackend, *, apply: bool,
                      progress: Progress = _no_progress) -> tuple[str, int]:
    """Delete files teambridge uploaded that nothing uses. Returns (text, how many failed)."""
    inv = await inventory(config, store, files, progress)
    unused = [f for f in inv.files if f.ours and not f.used_by]
    lines: list[str] = []
    if not apply:
        for f in unused:
            lines.append(f"would delete {f.id} ({f.name}, {f.purpose}, {_size(f.bytes)})")
        for row in inv.forgotten:
            lines.append(f"would forget {row.file_id} ({row.name}): no longer at OpenAI")
        if not unused and not inv.forgotten:
            return "No unused files.", 0
        lines.append(f"{len(unused)} unused file(s), {_size(sum(f.bytes for f in unused))}. "
                     "Nothing deleted (dry run): add --yes to delete them.")
        return "\n".join(lines), 0
    failed = 0
    for n, f in enumerate(unused, 1):
        progress(n, len(unused), f"deleting {f.id}")
        try:
            await files.delete_file(f.id)
        except Exception as exc:  # report and go on with the others
            log.warning("deleting file %s failed: %s", f.id, exc)
            lines.append(f"{f.id}: could not delete ({type(exc).__name__}: {exc})")
            failed += 1
            continue
        await store.delete_file(f.id)
        lines.append(f"deleted {f.id} ({f.name})")
    for row in inv.forgotten:
        await store.delete_file(row.file_id)
        lines.append(f"forgot {row.file_id} ({row.name}): no longer at OpenAI")
    lines.append(f"{len(unused) - failed} file(s) deleted, {_size(sum(f.bytes for f in unused))} freed."
                 if unused else "No unused files.")
    return "\n".join(lines), failed


async def prune_knowledge(config: Config, store: Store, files: FileBackend, *, apply: bool,
                          progress: Progress = _no_progress) -> tuple[str, int]:
    """Delete vector stores with teambridge's metadata that no assistant and no conversation uses."""
    inv = await inventory(config, store, files, progress)
    unused = [s for s in inv.stores if not s.used_by]
    if not unused:
        return "No unused vector stores.", 0
    if not apply:
        lines = [f"would delete {s.id} ({s.kind}: {s.name}, {_size(s.bytes)})" for s in unused]
        lines.append(f"{len(unused)} unused vector store(s). Nothing deleted (dry run): add --yes to delete them.")
        return "\n".join(lines), 0
    lines, failed = [], 0
    for n, s in enumerate(unused, 1):
        progress(n, len(unused), f"deleting {s.id}")
        try:
            await files.delete_vector_store(s.id)
        except Exception as exc:
            log.warning("deleting vector store %s failed: %s", s.id, exc)
            lines.append(f"{s.id}: could not delete ({type(exc).__name__}: {exc})")
            failed += 1
            continue
        lines.append(f"deleted {s.id} ({s.kind}: {s.name})")
    lines.append(f"{len(unused) - failed} vector store(s) deleted.")
    return "\n".join(lines), failed
