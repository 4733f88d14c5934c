"""User attachments -> model inputs: vision images, code interpreter files, the conversation's vector store.

Where a file can go is decided by core.files.routes (what the bytes are, the assistant's tools, what its backend
offers, the per-route size limits). Uploads are de-duplicated by sha256 + purpose through the store, so the same
bytes are never uploaded twice, however often users attach them.

A file that cannot be used never costs the message: it is set aside with the reason (`PreparedInputs.refused`),
the other files and the text go on, and the service tells the person (and the model) what was left out.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import weakref
from dataclasses import dataclass
from pathlib import PurePath
from typing import Protocol, Sequence

from core.config.schema import AssistantConfig, ChunkingConfig
from core.model import Attachment, BackendError, Capabilities, ConversationKey, UserFacingError
from core.ports import InputDocument, InputImage, Store
from core.backends.tokens import estimate
from core.files.extract import NotExtractable, extract_text
from core.files.sniff import FileKind, mime_for, name_ext, sniff
# The routing tables and what they say live in core.files.routes; named here too, where callers found them first.
from core.files.routes import (  # noqa: F401
    CODE_EXTS, DOC_EXTS, IMAGE_EXTS, PURPOSE_CODE, PURPOSE_SEARCH, PURPOSE_VISION, ROUTE_CODE, ROUTE_SEARCH,
    ROUTE_TEXT, ROUTE_VISION, SEARCH_EXTS, TRUST_CONFIG, accepts_text, limit_mb, routes_for, routes_for_any,
    too_big)

log = logging.getLogger(__name__)

MB = 1024 * 1024


class VectorStoreGone(Exception):
    """The vector store no longer exists (deleted, or expired by its expires_after policy)."""


class FileBackend(Protocol):
    """The file side of a model backend. core.backends.openai.files.OpenAIFileBackend is the OpenAI one."""

    async def upload(self, name: str, data: bytes, purpose: str) -> str: ...
    async def create_vector_store(self, name: str, metadata: dict[str, str], expires_after_days: int | None,
                                  chunking: ChunkingConfig | None) -> str: ...
    # file_id -> (status, error); waits until processing ended. Raises VectorStoreGone.
    async def add_files_to_vector_store(self, vector_store_id: str, file_ids: list[str], *,
                                        chunking: ChunkingConfig | None = None
                                        ) -> dict[str, tuple[str, str | None]]: ...
    async def remove_file_from_vector_store(self, vector_store_id: str, file_id: str) -> None: ...
    async def delete_vector_store(self, vector_store_id: str) -> None: ...
    async def delete_file(self, file_id: str) -> None: ...
    async def list_files(self) -> list[dict]: ...
    async def list_vector_stores(self) -> list[dict]: ...
    # [{"file_id", "status", "error"}]. Raises VectorStoreGone.
    async def list_vector_store_files(self, vector_store_id: str) -> list[dict]: ...


@dataclass(frozen=True, slots=True)
class Refused:
    """An attachment left out of the turn, and why, in words for the person who sent it."""
    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class PreparedInputs:
    images: tuple[InputImage, ...] = ()
    container_file_ids: tuple[str, ...] = ()
    vector_store_ids: tuple[str, ...] = ()
    documents: tuple[InputDocument, ...] = ()
    notes: tuple[str, ...] = ()
    refused: tuple[Refused, ...] = ()   # files the model does not get; the message still goes on


@dataclass(frozen=True, slots=True)
class _Planned:
    attachment: Attachment
    data: bytes
    kind: FileKind
    route: str
    upload_name: str
    text: str = ""                 # ROUTE_TEXT: the extracted text


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _upload_name(name: str, kind: FileKind) -> str:
    """Give the file the extension of what it is: OpenAI's tools go by the extension."""
    path = PurePath(name or "file")
    if name_ext(path.name) == kind.ext or kind.ext == "bin":
        return path.name
    stem = path.stem if path.suffix else path.name
    return f"{stem}.{'jpg' if kind.ext == 'jpeg' else kind.ext}"


class AttachmentRouter:
    """Turns a message's attachments into Turn inputs for one assistant and conversation.

    Call prepare() on every turn, with or without attachments: the conversation's vector store (from earlier
    uploads) is part of the result until it expires. Call it after the conversation row exists, so the vector
    store id can be recorded on it.
    """

    def __init__(self, files: FileBackend, store: Store, *, inline_image_max_bytes: int = 512 * 1024):
        self._files = files
        self._store = store
        # Small images go inline as data URLs (no upload to clean up later); big ones are uploaded once.
        self._inline_max = inline_image_max_bytes
        # The same bytes attached in two conversations at once must still be uploaded once.
        # Weak values: a lock lives only while some upload of those bytes holds or awaits it.
        self._upload_locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = \
            weakref.WeakValueDictionary()

    async def prepare(self, assistant: AssistantConfig, attachments: Sequence[Attachment],
                      key: ConversationKey, metadata: dict[str, str], *,
                      capabilities: Capabilities | None = None) -> PreparedInputs:
        """`capabilities`: what the assistant's backend offers (AssistantBackend.capabilities)."""
        caps = capabilities or TRUST_CONFIG
        record = await self._store.get_conversation(key, assistant.name)
        vs_id = record.vector_store_id if record is not None else None
        if not attachments:
            return PreparedInputs(vector_store_ids=(vs_id,) if vs_id else ())

        planned: list[_Planned] = []
        refused: list[Refused] = []
        for att in attachments:
            try:
                planned.append(await self._plan(assistant, att, caps))
            except UserFacingError as exc:  # this file is left out; the others and the text go on
                refused.append(Refused(att.name or "file", exc.message))

        images: list[InputImage] = []
        container: list[str] = []
        search: list[tuple[_Planned, str]] = []
        documents: list[InputDocument] = []
        notes: list[str] = []
        for p in planned:
            try:
                if p.route == ROUTE_TEXT:
                    documents.append(InputDocument(p.upload_name, p.text))
                elif p.route == ROUTE_VISION:
                    images.append(await self._image(p, caps))
                elif p.route == ROUTE_CODE:
                    container.append(await self._upload_once(p, PURPOSE_CODE))
                    if p.kind.ext in IMAGE_EXTS:
                        notes.append(f"{p.attachment.name}: this model can't look at images, so it went to the "
                                     "code interpreter.")
                else:
                    search.append((p, await self._upload_once(p, PURPOSE_SEARCH)))
            except Exception as exc:  # the file service refused this one (or is down): the text still goes on
                log.warning("upload of attachment %s for %s failed: %r", p.attachment.name, key.as_string(), exc)
                refused.append(Refused(p.attachment.name, f"{p.attachment.name}: couldn't be handed to the model "
                                                          f"({_reason(exc)})."))
        if search:
            try:
                vs_id, failed = await self._index(assistant, key, metadata, vs_id, search)
                refused.extend(failed)
            except Exception as exc:
                log.warning("indexing attachments for %s failed: %r", key.as_string(), exc)
                refused.extend(Refused(p.attachment.name, f"{p.attachment.name}: couldn't be prepared for search "
                                                          f"({_reason(exc)}).") for p, _ in search)
        return PreparedInputs(images=tuple(images), container_file_ids=tuple(dict.fromkeys(container)),
                              vector_store_ids=(vs_id,) if vs_id else (), documents=tuple(documents),
                              notes=tuple(notes), refused=tuple(refused))

    # ---- steps ------------------------------------------------------------------------------------

    async def _plan(self, assistant: AssistantConfig, att: Attachment, caps: Capabilities) -> _Planned:
        name = att.name or "file"
        claimed = routes_for(assistant, name_ext(name), caps)
        all_routes = [r for r in (ROUTE_VISION, ROUTE_CODE, ROUTE_SEARCH, ROUTE_TEXT)
                      if routes_for_any(assistant, r, caps)]
        if not all_routes:
            raise UserFacingError(f"{name}: this assistant can't read files. {accepts_text(assistant, caps)}")
        # Size check before downloading anything: against the route the name points to, or, when the name
        # says nothing useful, the largest limit this assistant has (the bytes may still fit a route).
        pre_limit = max(limit_mb(assistant, r) for r in (claimed[:1] or all_routes))
        if att.size is not None and att.size > pre_limit * MB:
            raise UserFacingError(too_big(name, att.size, claimed[0] if claimed else None, pre_limit))
        try:
            data = await att.read()
        except UserFacingError:
            raise
        except Exception as exc:
            log.exception("reading attachment %s failed", name)
            raise UserFacingError(f"{name}: couldn't download the file ({type(exc).__name__}).") from exc
        kind = sniff(name, data)
        routes = routes_for(assistant, kind.ext, caps)
        if not routes:
            raise UserFacingError(f"{name}: this assistant can't read that kind of file. "
                                  f"{accepts_text(assistant, caps)}")
        route = routes[0]
        if len(data) > limit_mb(assistant, route) * MB:
            raise UserFacingError(too_big(name, len(data), route, limit_mb(assistant, route)))
        if not data:
            raise UserFacingError(f"{name}: the file is empty.")
        text = await self._text(name, kind, data, caps) if route == ROUTE_TEXT else ""
        return _Planned(att, data, kind, route, _upload_name(name, kind), text)

    @staticmethod
    async def _text(name: str, kind: FileKind, data: bytes, caps: Capabilities) -> str:
        try:
            text = await asyncio.to_thread(extract_text, kind.ext, data)   # a long PDF takes a while
        except NotExtractable as exc:
            raise UserFacingError(f"{name}: {exc}. Paste the part you need into your message instead.") from exc
        if not text.strip():
            raise UserFacingError(f"{name}: there is no text in it to read.")
        size = estimate(text)
        if size > caps.document_tokens:
            raise UserFacingError(
                f"{name}: its text is about {size:,} tokens; this assistant's model reads documents of up to about "
                f"{caps.document_tokens:,} tokens (half of its context window). "
                "Attach a shorter part, or paste the section you need.")
        return text

    async def _image(self, p: _Planned, caps: Capabilities) -> InputImage:
        # A server without a Files API only takes images inline.
        if len(p.data) <= self._inline_max or not caps.file_uploads:
            b64 = base64.b64encode(p.data).decode("ascii")
            return InputImage(data_url=f"data:{mime_for(p.kind.ext)};base64,{b64}")
        return InputImage(file_id=await self._upload_once(p, PURPOSE_VISION))

    async def _upload_once(self, p: _Planned, purpose: str) -> str:
        digest = sha256(p.data)
        lock = self._upload_locks.get((digest, purpose))
        if lock is None:
            lock = self._upload_locks[(digest, purpose)] = asyncio.Lock()
        async with lock:
            known = await self._store.get_file(digest, purpose)
            if known:
                return known
            file_id = await self._files.upload(p.upload_name, p.data, purpose)
            await self._store.save_file(digest, purpose, file_id, p.upload_name, len(p.data))
            return file_id

    async def _index(self, assistant: AssistantConfig, key: ConversationKey, metadata: dict[str, str],
                     vs_id: str | None, items: list[tuple[_Planned, str]]) -> tuple[str, list[Refused]]:
        file_ids = list(dict.fromkeys(fid for _, fid in items))
        search = assistant.tool("file_search")
        chunking = search.chunking if search is not None else None
        if vs_id:
            try:
                statuses = await self._files.add_files_to_vector_store(vs_id, file_ids, chunking=chunking)
                return vs_id, self._failed(items, statuses)
            except VectorStoreGone:
                # The store expired (expires_after) since the last upload: start a new one. Earlier uploads
                # are no longer searchable; the model only sees this turn's files.
                log.info("vector store %s of %s expired; creating a new one", vs_id, key.as_string())
        vs_id = await self._files.create_vector_store(
            f"teambridge-conv-{assistant.name}",
            {**{k[:64]: str(v)[:512] for k, v in list(metadata.items())[:14]}, "teambridge": "conversation",
             "assistant": assistant.name},
            assistant.files.conversation_store_expiry_days, chunking)
        await self._store.set_conversation_vector_store(key, assistant.name, vs_id)
        statuses = await self._files.add_files_to_vector_store(vs_id, file_ids, chunking=chunking)
        return vs_id, self._failed(items, statuses)

    @staticmethod
    def _failed(items: list[tuple[_Planned, str]], statuses: dict[str, tuple[str, str | None]]) -> list[Refused]:
        """The files the search index could not take, with the index's reason."""
        failed = []
        for p, fid in items:
            status, error = statuses.get(fid, ("missing", "the file never reached the search index"))
            if status != "completed":
                failed.append(Refused(p.attachment.name,
                                      f"{p.attachment.name}: couldn't be prepared for search ({error or status})."))
        return failed


def _reason(exc: Exception) -> str:
    """A short reason for a failed upload, for the person (the log line has the rest)."""
    message = exc.message if isinstance(exc, (UserFacingError, BackendError)) else ""
    return message.strip().rstrip(".")[:200] or type(exc).__name__
