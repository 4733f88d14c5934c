"""User attachments -> model inputs: vision images, code interpreter files, the conversation's vector store.

Routing is by what the bytes are (core.files.sniff), the assistant's tools, what its backend offers
(core.model.Capabilities: hosted tools, vision, uploads) and its per-route size limits (AssistantConfig.files). Uploads are de-duplicated by sha256 + purpose through the store, so the same bytes
are never uploaded twice, however often users attach them.
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
from core.model import HOSTED_TOOLS, Attachment, Capabilities, ConversationKey, UserFacingError
from core.ports import InputDocument, InputImage, Store
from core.backends.tokens import estimate
from core.files.extract import EXTRACTABLE, NotExtractable, extract_text
from core.files.sniff import FileKind, mime_for, name_ext, sniff

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


# ---- routing tables ----------------------------------------------------------------------------

IMAGE_EXTS = frozenset({"png", "jpeg", "gif", "webp"})
# What OpenAI's code interpreter reads (its documented list, plus the data formats pandas opens).
CODE_EXTS = frozenset({
    "csv", "tsv", "xlsx", "xls", "json", "ipynb", "txt", "py", "parquet", "pkl", "xml", "yaml", "sql", "r",
    "js", "ts", "sh", "c", "cpp", "cs", "java", "go", "rb", "php", "css", "tex", "log", "zip", "tar", "gz",
    "md", "html", "pdf", "docx", "pptx", "doc",
    "png", "jpeg", "gif",
})
# What file_search indexes (OpenAI's list).
SEARCH_EXTS = frozenset({
    "pdf", "docx", "doc", "md", "txt", "html", "pptx", "json", "tex", "py", "js", "ts", "sh", "c", "cpp",
    "cs", "css", "java", "go", "rb", "php", "rst",
})
# Documents are for reading, data is for computing: each kind prefers one tool and falls back to the other.
DOC_EXTS = frozenset({"pdf", "docx", "doc", "md", "html", "pptx", "rst", "tex"})

PURPOSE_CODE = "user_data"
PURPOSE_SEARCH = "assistants"
PURPOSE_VISION = "vision"

ROUTE_VISION = "vision"
ROUTE_CODE = "code_interpreter"
ROUTE_SEARCH = "file_search"
ROUTE_TEXT = "text"            # extracted here and sent as text (backends without hosted file tools)


@dataclass(frozen=True, slots=True)
class PreparedInputs:
    images: tuple[InputImage, ...] = ()
    container_file_ids: tuple[str, ...] = ()
    vector_store_ids: tuple[str, ...] = ()
    documents: tuple[InputDocument, ...] = ()
    notes: tuple[str, ...] = ()


# Without a backend's declaration, the tools the assistant names are taken to be there (`teambridge check`
# refuses a hosted tool its backend lacks, so a loaded config only names tools that exist).
TRUST_CONFIG = Capabilities(hosted_tools=HOSTED_TOOLS, vision=True, file_uploads=True)


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


def _hosted(assistant: AssistantConfig, caps: Capabilities, tool: str) -> bool:
    return tool in caps.hosted_tools and assistant.tool(tool) is not None


def _vision(assistant: AssistantConfig, caps: Capabilities) -> bool:
    return assistant.vision and caps.vision


def routes_for(assistant: AssistantConfig, ext: str, caps: Capabilities = TRUST_CONFIG) -> list[str]:
    """Routes this assistant (on a backend with `caps`) has for a file kind, best first."""
    code = _hosted(assistant, caps, "code_interpreter")
    search = _hosted(assistant, caps, "file_search")
    out: list[str] = []
    if ext in IMAGE_EXTS:
        if _vision(assistant, caps):
            out.append(ROUTE_VISION)
        if code and ext in CODE_EXTS:
            out.append(ROUTE_CODE)
        return out
    if ext in DOC_EXTS:
        if search and ext in SEARCH_EXTS:
            out.append(ROUTE_SEARCH)
        if code and ext in CODE_EXTS:
            out.append(ROUTE_CODE)
        if not out and caps.document_tokens and ext in EXTRACTABLE:
            out.append(ROUTE_TEXT)
        return out
    # data, code and plain text: txt goes to the code interpreter when there is one, else file search.
    if code and ext in CODE_EXTS:
        out.append(ROUTE_CODE)
    if search and ext in SEARCH_EXTS:
        out.append(ROUTE_SEARCH)
    if not out and caps.document_tokens and ext in EXTRACTABLE:
        out.append(ROUTE_TEXT)
    return out


def limit_mb(assistant: AssistantConfig, route: str) -> float:
    f = assistant.files
    return {ROUTE_VISION: f.max_image_mb, ROUTE_CODE: f.max_code_interpreter_mb,
            ROUTE_SEARCH: f.max_document_mb, ROUTE_TEXT: f.max_document_mb}[route]


def accepts_text(assistant: AssistantConfig, caps: Capabilities = TRUST_CONFIG) -> str:
    """'It accepts ...' sentence for error messages, from what this assistant really has."""
    parts = []
    if _vision(assistant, caps):
        parts.append(f"images (png, jpeg, gif, webp, up to {_fmt_mb(assistant.files.max_image_mb)})")
    if _hosted(assistant, caps, "code_interpreter"):
        parts.append("data files for code (csv, xlsx, json, txt, py, ..., up to "
                     f"{_fmt_mb(assistant.files.max_code_interpreter_mb)})")
    if _hosted(assistant, caps, "file_search"):
        parts.append(f"documents (pdf, docx, md, txt, html, ..., up to {_fmt_mb(assistant.files.max_document_mb)})")
    elif caps.document_tokens:
        parts.append(f"documents and text files read as text (pdf, docx, pptx, txt, md, csv, json, code, ..., "
                     f"up to about {caps.document_tokens:,} tokens of text)")
    if not parts:
        return "It doesn't take file attachments; paste the text into your message instead."
    if len(parts) == 1:
        return f"It accepts {parts[0]}."
    return f"It accepts {', '.join(parts[:-1])} and {parts[-1]}."


def _fmt_mb(mb: float) -> str:
    return f"{mb:g} MB"


def _fmt_size(n: int) -> str:
    if n >= MB:
        return f"{n / MB:.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n} bytes"


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

        planned, problems = [], []
        for att in attachments:
            try:
                planned.append(await self._plan(assistant, att, caps))
            except UserFacingError as exc:
                problems.append(exc.message)
        if problems:
            # Nothing is uploaded when any attachment is refused: the user fixes the message and sends it
            # again, and gets one answer for the whole set.
            raise UserFacingError("\n".join(problems))

        images: list[InputImage] = []
        container: list[str] = []
        search: list[tuple[_Planned, str]] = []
        documents: list[InputDocument] = []
        notes: list[str] = []
        for p in planned:
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
        if search:
            vs_id = await self._index(assistant, key, metadata, vs_id, search)
        return PreparedInputs(images=tuple(images), container_file_ids=tuple(dict.fromkeys(container)),
                              vector_store_ids=(vs_id,) if vs_id else (), documents=tuple(documents),
                              notes=tuple(notes))

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
            raise self._too_big(assistant, name, att.size, claimed[0] if claimed else None, pre_limit)
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
            raise self._too_big(assistant, name, len(data), route, limit_mb(assistant, route))
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

    @staticmethod
    def _too_big(assistant: AssistantConfig, name: str, size: int, route: str | None, limit: float) -> UserFacingError:
        what = {ROUTE_VISION: "images", ROUTE_CODE: "data files", ROUTE_SEARCH: "documents",
                ROUTE_TEXT: "documents"}.get(route or "", "files")
        return UserFacingError(f"{name} is {_fmt_size(size)}; this assistant takes {what} up to {_fmt_mb(limit)}.")

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
                     vs_id: str | None, items: list[tuple[_Planned, str]]) -> str:
        file_ids = list(dict.fromkeys(fid for _, fid in items))
        search = assistant.tool("file_search")
        chunking = search.chunking if search is not None else None
        if vs_id:
            try:
                statuses = await self._files.add_files_to_vector_store(vs_id, file_ids, chunking=chunking)
                return self._check(items, statuses, vs_id)
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
        return self._check(items, statuses, vs_id)

    @staticmethod
    def _check(items: list[tuple[_Planned, str]], statuses: dict[str, tuple[str, str | None]], vs_id: str) -> str:
        failed = []
        for p, fid in items:
            status, error = statuses.get(fid, ("missing", "the file never reached the search index"))
            if status != "completed":
                failed.append(f"{p.attachment.name}: couldn't be prepared for search ({error or status}).")
        if failed:
            raise UserFacingError("\n".join(failed))
        return vs_id


def routes_for_any(assistant: AssistantConfig, route: str, caps: Capabilities = TRUST_CONFIG) -> bool:
    if route == ROUTE_VISION:
        return _vision(assistant, caps)
    if route == ROUTE_TEXT:
        return caps.document_tokens > 0
    return _hosted(assistant, caps, route)
