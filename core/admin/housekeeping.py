"""`teambridge files list|delete` and `teambridge knowledge status`: what teambridge stored at OpenAI.

Only files teambridge itself uploaded (recorded in the store) are listed or deleted; other files in the
same OpenAI project are none of our business. Each function returns printable text.
"""
from __future__ import annotations

import logging
import time
from typing import Sequence

from core.config.schema import Config
from core.files.attachments import FileBackend, VectorStoreGone
from core.files.knowledge import knowledge_assistants
from core.store.protocol import Store

log = logging.getLogger(__name__)

ALL = "--all"


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _when(ts: float | int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts)) if ts else "?"


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


async def files_list(files: FileBackend, store: Store) -> str:
    ours = await store.list_files()
    if not ours:
        return "teambridge has not uploaded any files."
    remote = {f["id"]: f for f in await files.list_files()}
    rows = [("ID", "NAME", "SIZE", "PURPOSE", "CREATED")]
    total = 0
    missing = 0
    for row in ours:
        f = remote.get(row.file_id)
        if f is None:
            missing += 1
            rows.append((row.file_id, row.name, _size(row.size), row.purpose,
                         _when(row.created_at) + " (gone at OpenAI)"))
            continue
        total += f["bytes"] or 0
        rows.append((f["id"], f["name"] or row.name, _size(f["bytes"]), f["purpose"], _when(f["created_at"])))
    summary = f"{len(ours)} file(s), {_size(total)} at OpenAI"
    if missing:
        summary += f"; {missing} no longer exist there (`teambridge files delete --all` forgets them)"
    return _table(rows) + "\n" + summary


async def files_delete(files: FileBackend, store: Store, ids: Sequence[str] | str,
                       config: Config | None = None) -> str:
    """Delete the given file ids (or every file teambridge uploaded, with "--all") at OpenAI and forget them.

    Knowledge files deleted here are forgotten by their assistant too (pass `config`), so the next
    `knowledge sync` uploads them again instead of believing they are still there.
    """
    ours = {row.file_id: row for row in await store.list_files()}
    wanted = list(ours) if ids == ALL or (not isinstance(ids, str) and list(ids) == [ALL]) else \
        ([ids] if isinstance(ids, str) else list(ids))
    if not wanted:
        return "Nothing to delete."
    knowledge: dict[str, tuple[str, str]] = {}
    for assistant in knowledge_assistants(config) if config is not None else []:
        for row in await store.list_knowledge_files(assistant.name):
            knowledge[row.file_id] = (assistant.name, row.path)
    lines, deleted = [], 0
    for fid in wanted:
        if fid not in ours:
            lines.append(f"{fid}: not a file teambridge uploaded; left alone")
            continue
        try:
            await files.delete_file(fid)
        except Exception as exc:  # report and go on with the others; the admin sees which ones remain
            log.exception("deleting file %s failed", fid)
            lines.append(f"{fid}: could not delete ({type(exc).__name__}: {exc})")
            continue
        await store.delete_file(fid)
        if fid in knowledge:
            await store.delete_knowledge_file(*knowledge[fid])
        deleted += 1
        lines.append(f"{fid}: deleted ({ours[fid].name})")
    lines.append(f"{deleted} file(s) deleted.")
    return "\n".join(lines)


async def knowledge_status(config: Config, store: Store, files: FileBackend) -> str:
    assistants = knowledge_assistants(config)
    if not assistants:
        return "No assistant has a file_search tool."
    out: list[str] = []
    stores = {v["id"]: v for v in await files.list_vector_stores()}
    for assistant in assistants:
        vs_id = await store.get_knowledge_store(assistant.name)
        if not vs_id:
            out.append(f"{assistant.name}: no vector store yet (run `teambridge knowledge sync`)")
            continue
        info = stores.get(vs_id)
        try:
            remote = {f["file_id"]: f for f in await files.list_vector_store_files(vs_id)}
        except VectorStoreGone:
            out.append(f"{assistant.name}: vector store {vs_id} no longer exists (run `teambridge knowledge sync`)")
            continue
        head = f"{assistant.name}: vector store {vs_id}"
        if info is not None:
            head += f" ({info['status']}, {_size(info['usage_bytes'])})"
        out.append(head)
        rows = await store.list_knowledge_files(assistant.name)
        if not rows:
            out.append("  (no files)")
        for row in rows:
            f = remote.get(row.file_id)
            status = f["status"] if f else "missing from the vector store"
            error = (f and f.get("error")) or row.error
            out.append(f"  {status:<11} {row.path}" + (f": {error}" if error and status != "completed" else ""))
    return "\n".join(out)


async def vector_storage(config: Config, store: Store, files: FileBackend) -> list["StoredVectorStore"]:
    """Sizes of the vector stores teambridge created (knowledge and per-conversation), for storage cost."""
    from core.admin.usage import StoredVectorStore

    ours = {record.vector_store_id for record in await store.list_conversations() if record.vector_store_id}
    for name in config.assistants:
        vs_id = await store.get_knowledge_store(name)
        if vs_id:
            ours.add(vs_id)
    return [StoredVectorStore(id=v["id"], usage_bytes=v.get("usage_bytes") or 0, created_at=v.get("created_at") or 0,
                              ended_at=v.get("expires_at") if v.get("status") == "expired" else None)
            for v in await files.list_vector_stores() if v["id"] in ours]
