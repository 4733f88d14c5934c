"""FileBackend on OpenAI's Files and Vector Stores APIs (the real SDK, AsyncOpenAI injected)."""
from __future__ import annotations

import asyncio
import logging

import openai
from openai import AsyncOpenAI

from core.config.schema import ChunkingConfig
from core.files.attachments import VectorStoreGone
from core.files.sniff import mime_for, name_ext

log = logging.getLogger(__name__)

# POST /vector_stores/{id}/file_batches takes up to 2000 ids; smaller batches keep one slow file from
# holding up everything and keep each poll cheap.
BATCH_SIZE = 500


def _chunking(chunking: ChunkingConfig | None) -> dict | openai.Omit:
    if chunking is None:
        return openai.omit
    # The API rejects an overlap above half the chunk size; the config only bounds each number alone.
    overlap = min(chunking.chunk_overlap_tokens, chunking.max_chunk_size_tokens // 2)
    return {"type": "static", "static": {"max_chunk_size_tokens": chunking.max_chunk_size_tokens,
                                         "chunk_overlap_tokens": overlap}}


def _gone(exc: openai.APIStatusError) -> bool:
    # A deleted store answers 404; an expired one (expires_after) answers 400 mentioning "expired".
    return isinstance(exc, openai.NotFoundError) or (
        isinstance(exc, openai.BadRequestError) and "expired" in str(exc).lower())


class OpenAIFileBackend:
    def __init__(self, client: AsyncOpenAI, *, poll_interval_ms: int | None = None,
                 max_wait_seconds: float = 900.0):
        self._client = client
        # None: follow the server's openai-poll-after-ms hint (the SDK's default behaviour).
        self._poll = openai.omit if poll_interval_ms is None else poll_interval_ms
        self._max_wait = max_wait_seconds

    async def upload(self, name: str, data: bytes, purpose: str) -> str:
        created = await self._client.files.create(file=(name, data, mime_for(name_ext(name))), purpose=purpose)
        return created.id

    async def create_vector_store(self, name: str, metadata: dict[str, str], expires_after_days: int | None,
                                  chunking: ChunkingConfig | None) -> str:
        vs = await self._client.vector_stores.create(
            name=name, metadata=metadata,
            expires_after=({"anchor": "last_active_at", "days": expires_after_days}
                           if expires_after_days else openai.omit),
            chunking_strategy=_chunking(chunking))
        return vs.id

    async def add_files_to_vector_store(self, vector_store_id: str, file_ids: list[str], *,
                                        chunking: ChunkingConfig | None = None
                                        ) -> dict[str, tuple[str, str | None]]:
        """Attach files and wait for processing. Returns file_id -> (status, error message or None).

        upload_and_poll / create_and_poll return even when processing failed: status and last_error tell.
        """
        ids = list(dict.fromkeys(file_ids))
        result: dict[str, tuple[str, str | None]] = {}
        try:
            async with asyncio.timeout(self._max_wait):
                if len(ids) == 1:
                    vf = await self._client.vector_stores.files.create_and_poll(
                        ids[0], vector_store_id=vector_store_id, poll_interval_ms=self._poll,
                        chunking_strategy=_chunking(chunking))
                    result[vf.id] = (vf.status, vf.last_error.message if vf.last_error else None)
                    return result
                for start in range(0, len(ids), BATCH_SIZE):
                    batch = await self._client.vector_stores.file_batches.create_and_poll(
                        vector_store_id, file_ids=ids[start:start + BATCH_SIZE], poll_interval_ms=self._poll,
                        chunking_strategy=_chunking(chunking))
                    # The batch only counts; per-file status and errors come from its file list.
                    async for vf in self._client.vector_stores.file_batches.list_files(
                            batch.id, vector_store_id=vector_store_id, limit=100):
                        result[vf.id] = (vf.status, vf.last_error.message if vf.last_error else None)
        except TimeoutError:
            log.warning("vector store %s: processing not finished after %.0f s", vector_store_id, self._max_wait)
        except openai.APIStatusError as exc:
            if _gone(exc):
                raise VectorStoreGone(vector_store_id) from exc
            raise
        for fid in ids:
            result.setdefault(fid, ("in_progress", f"still processing after {self._max_wait:.0f} s"))
        return result

    async def remove_file_from_vector_store(self, vector_store_id: str, file_id: str) -> None:
        try:
            await self._client.vector_stores.files.delete(file_id, vector_store_id=vector_store_id)
        except openai.NotFoundError:
            # Already gone (store expired or file deleted elsewhere): the state we wanted.
            log.info("vector store %s: file %s was already removed", vector_store_id, file_id)

    async def delete_vector_store(self, vector_store_id: str) -> None:
        try:
            await self._client.vector_stores.delete(vector_store_id)
        except openai.NotFoundError:
            log.info("vector store %s was already deleted", vector_store_id)

    async def delete_file(self, file_id: str) -> None:
        try:
            await self._client.files.delete(file_id)
        except openai.NotFoundError:
            log.info("file %s was already deleted", file_id)

    async def list_files(self) -> list[dict]:
        return [{"id": f.id, "name": f.filename, "bytes": f.bytes, "purpose": f.purpose,
                 "created_at": f.created_at, "status": f.status}
                async for f in self._client.files.list()]

    async def list_vector_stores(self) -> list[dict]:
        return [{"id": v.id, "name": v.name, "status": v.status, "usage_bytes": v.usage_bytes,
                 "created_at": v.created_at, "expires_at": v.expires_at, "metadata": dict(v.metadata or {}),
                 "file_counts": v.file_counts.model_dump()}
                async for v in self._client.vector_stores.list(limit=100)]

    async def list_vector_store_files(self, vector_store_id: str) -> list[dict]:
        try:
            return [{"file_id": vf.id, "status": vf.status,
                     "error": vf.last_error.message if vf.last_error else None}
                    async for vf in self._client.vector_stores.files.list(vector_store_id=vector_store_id,
                                                                          limit=100)]
        except openai.APIStatusError as exc:
            if _gone(exc):
                raise VectorStoreGone(vector_store_id) from exc
            raise
