"""The seams between core, the platforms and the model backends (typing.Protocols)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, AsyncIterator, Awaitable, Callable, Protocol, runtime_checkable

from core.model import BackendEvent, ConversationKey, OutboundFile, ToolUpdate, Usage

if TYPE_CHECKING:  # pragma: no cover
    from core.config.schema import AssistantConfig


@dataclass(frozen=True, slots=True)
class Limits:
    max_chars: int              # longest text one message may hold on this surface
    edit_interval: float = 1.0  # seconds between edits of one message


@dataclass(frozen=True, slots=True)
class InputImage:
    """An image for vision input: an uploaded file id or a data URL."""
    file_id: str = ""
    data_url: str = ""


@dataclass(frozen=True, slots=True)
class Turn:
    """One user message to answer, with everything the backend needs."""
    assistant: "AssistantConfig"
    conversation_id: str
    text: str
    user_id: str = ""
    images: tuple[InputImage, ...] = ()
    container_file_ids: tuple[str, ...] = ()      # files for the code interpreter
    vector_store_ids: tuple[str, ...] = ()        # extra stores (per-conversation uploads)
    metadata: dict[str, str] = field(default_factory=dict)


OnPosted = Callable[[str], Awaitable[None]]  # called with a platform message id when a reply message is created


class ReplyStream(Protocol):
    """A reply being streamed into one chat location. core.reply.stream.EditStream is the default."""

    async def text(self, delta: str) -> None: ...
    async def status(self, update: ToolUpdate | None) -> None: ...
    async def close(self, footer: str = "") -> None: ...
    async def fail(self, notice: str) -> None: ...


class ReplyTarget(Protocol):
    """Where one answer goes. Implemented by every platform adapter."""

    limits: Limits

    async def post(self, text: str) -> str: ...                   # returns the new message's id
    async def edit(self, message_id: str, text: str) -> None: ...
    async def upload(self, file: OutboundFile) -> None: ...
    async def notice(self, text: str, *, ephemeral: bool = False) -> None: ...  # short one-off reply
    async def typing(self) -> None: ...                           # "is typing" / thinking status; may no-op
    def open_stream(self, on_posted: OnPosted) -> ReplyStream | None: ...  # native stream, or None for EditStream


@runtime_checkable
class PlatformAdapter(Protocol):
    name: str

    async def start(self) -> None: ...          # connect and begin delivering messages to the service
    async def stop(self) -> None: ...           # stop taking new messages
    async def mark_interrupted(self, channel: str, message_id: str, thread: str | None) -> None: ...


class AssistantBackend(Protocol):
    async def create_conversation(self, metadata: dict[str, str]) -> str: ...
    def run(self, turn: Turn) -> AsyncIterator[BackendEvent]: ...
    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ConversationRecord:
    key: str
    assistant: str
    backend_id: str
    metadata: dict[str, str]
    vector_store_id: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class InflightReply:
    id: int
    platform: str
    channel: str
    message_id: str
    thread: str | None
    started_at: float


class Store(Protocol):
    """Persistence. SQLite (core.store.sqlite.SqliteStore) is the embedded default."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    # conversations
    async def get_conversation(self, key: ConversationKey, assistant: str) -> ConversationRecord | None: ...
    async def save_conversation(self, key: ConversationKey, assistant: str, backend_id: str,
                                metadata: dict[str, str]) -> None: ...
    async def set_conversation_vector_store(self, key: ConversationKey, assistant: str, vector_store_id: str) -> None: ...
    async def delete_conversation(self, key: ConversationKey, assistant: str) -> bool: ...
    # user's chosen assistant per place (set by /assistant NAME)
    async def get_preference(self, scope: str) -> str | None: ...
    async def set_preference(self, scope: str, assistant: str | None, *, ttl: float | None = None) -> None: ...
    # de-duplication: True the first time (platform, event_key) is claimed, False afterwards
    async def claim_event(self, platform: str, event_key: str) -> bool: ...
    # uploaded files: sha256 + purpose -> backend file id
    async def get_file(self, sha256: str, purpose: str) -> str | None: ...
    async def save_file(self, sha256: str, purpose: str, file_id: str, name: str, size: int) -> None: ...
    async def list_files(self) -> list[dict]: ...
    async def delete_file(self, file_id: str) -> None: ...
    # usage
    async def record_usage(self, *, assistant: str, platform: str, workspace: str, channel: str, user: str,
                           model: str, usage: Usage) -> None: ...
    async def usage_rows(self, since: float, until: float) -> list[dict]: ...
    # replies in flight
    async def add_inflight(self, platform: str, channel: str, message_id: str, thread: str | None) -> int: ...
    async def remove_inflight(self, inflight_id: int) -> None: ...
    async def list_inflight(self, platform: str | None = None) -> list[InflightReply]: ...
