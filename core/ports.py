"""The seams between core, the platforms and the model backends (typing.Protocols)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, AsyncIterator, Awaitable, Callable, Protocol, Sequence, runtime_checkable

from core.model import BackendEvent, Capabilities, HistoryItem, OutboundFile, ToolUpdate
# The Store seam and its rows live with the stores (core/store/protocol.py); named here too because this module
# is where every seam is listed.
from core.store.protocol import ConversationRecord, InflightReply, Store  # noqa: F401
from core.reply.lifetime import ReplyLifetime

if TYPE_CHECKING:  # pragma: no cover
    from core.config.schema import AssistantConfig
    from core.tools.approval import Approver


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
class InputDocument:
    """A file's text, extracted locally, for a backend without a hosted tool that reads files."""
    name: str
    text: str


@dataclass(frozen=True, slots=True)
class HostedInputs:
    """What the backend's hosted tools get with this turn (OpenAI: code interpreter files, vector stores)."""
    container_file_ids: tuple[str, ...] = ()      # files for the code interpreter's container
    vector_store_ids: tuple[str, ...] = ()        # stores for file_search (knowledge + per-conversation uploads)


@dataclass(frozen=True, slots=True)
class Turn:
    """One user message to answer, with everything the backend needs."""
    assistant: "AssistantConfig"
    conversation_id: str        # "": a new thread's first turn, its conversation made after it (see ConversationStarted)
    text: str
    user_id: str = ""
    images: tuple[InputImage, ...] = ()
    documents: tuple[InputDocument, ...] = ()
    hosted: HostedInputs = HostedInputs()
    metadata: dict[str, str] = field(default_factory=dict)
    approver: "Approver | None" = None             # asks a person before a tool under require_approval runs
    cache_key: str = ""         # prompt_cache_key: the same for every turn of the conversation (ConversationKey.digest)


OnPosted = Callable[[str], Awaitable[None]]  # called with a platform message id when a reply message is created


class ReplyStream(Protocol):
    """A reply being streamed into one chat location. core.reply.stream.EditStream is the default.

    text()/status() while the model answers; then exactly one of close() (the answer is complete; an
    optional footer) or fail() (a one-line notice ends it) — fail() may follow a close() that raised.
    `lifetime` says where the reply is (streaming, finished, stopped, failed) and lets platforms watch its
    end and readers stop it (text() raises ReplyStopped once stopped). tests/reply/test_stream_contract.py
    is the contract every implementation passes."""

    lifetime: ReplyLifetime

    async def text(self, delta: str) -> None: ...
    async def status(self, update: ToolUpdate | None) -> None: ...
    async def close(self, footer: str = "") -> None: ...
    async def fail(self, notice: str) -> None: ...


class ReplyTarget(Protocol):
    """Where one answer goes. Implemented by every platform adapter."""

    limits: Limits

    async def post(self, text: str) -> str: ...                   # returns the new message's id
    # `final`: the message will show this text from now on. A target may skip a progress edit (final=False),
    # e.g. when a newer text is on its way anyway, and then returns False; final edits are always made.
    async def edit(self, message_id: str, text: str, *, final: bool = False) -> bool: ...
    # where the posted file can be opened (a permalink, an attachment URL, a path), or None
    async def upload(self, file: OutboundFile) -> str | None: ...
    async def notice(self, text: str, *, ephemeral: bool = False) -> None: ...  # short one-off reply
    # "is typing" / thinking status; may no-op. Awaited in the answer's way (before its conversation is set up), so
    # it returns at once: it sets a timer (shown only when the first words are slow). Only a zero delay (tests, to
    # see the indicator before an instant answer) sends the platform call before returning.
    async def typing(self) -> None: ...
    def open_stream(self, on_posted: OnPosted) -> ReplyStream | None: ...  # native stream, or None for EditStream


@runtime_checkable
class PlatformAdapter(Protocol):
    name: str

    async def start(self) -> None: ...          # connect and begin delivering messages to the service
    async def stop_receiving(self) -> None: ... # shutdown, first step: no new events (answers in flight go on)
    async def stop(self) -> None: ...           # shutdown, last step: close the platform's connections
    async def wait_dead(self) -> str: ...       # returns (why) when the platform connection gave up for good
    @property
    def connected(self) -> bool: ...            # receiving events right now (for a readiness probe)
    async def mark_interrupted(self, channel: str, message_id: str, thread: str | None) -> None: ...


class Session(Protocol):
    """Where one conversation's history lives (after openai-agents-python's memory/session.py).

    `server_side`: the server keeps the items (OpenAI's Conversations API) and a request only names the
    conversation; otherwise teambridge keeps them (core.backends.history.LocalSession) and every request
    carries them."""

    session_id: str
    server_side: bool

    async def get_items(self, limit: int | None = None) -> list[HistoryItem]: ...   # oldest first; limit: latest N
    async def add_items(self, items: Sequence[HistoryItem]) -> None: ...
    async def clear(self) -> None: ...


class AssistantBackend(Protocol):
    capabilities: Capabilities

    async def create_conversation(self, metadata: dict[str, str]) -> str: ...
    # Backends with capabilities.deferred_conversations: a conversation made ahead if one is ready now, else None
    # (the thread's first turn then goes with Turn.conversation_id "" and reports ConversationStarted) ...
    async def ready_conversation(self, metadata: dict[str, str]) -> str | None: ...
    # ... and the conversation made from such a turn's stored answer (ConversationStarted.pending). BackendError.
    async def make_conversation(self, pending: str, metadata: dict[str, str]) -> str: ...
    def session(self, conversation_id: str) -> Session: ...
    def run(self, turn: Turn) -> AsyncIterator[BackendEvent]: ...
    def prepare(self) -> None: ...   # a long-running process has started: set up now what the first turns would
    async def aclose(self) -> None: ...
