"""Frozen value types shared by core and the platform adapters.

Adapters translate platform payloads into these; backends yield the event types at the bottom.
Nothing here knows Slack, Discord or OpenAI.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Literal

from core.errors import BackendError, ReplyStopped, UserFacingError  # noqa: F401  (re-exported: their old home)


@dataclass(frozen=True, slots=True)
class Author:
    id: str
    name: str = ""
    roles: tuple[str, ...] = ()  # Discord role ids (or names); empty elsewhere
    is_admin: bool = False       # platform-level admin flag (workspace admin / guild administrator)


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file a user attached. `read()` is bound by the adapter (downloads with the platform's credentials)."""
    name: str
    size: int | None
    content_type: str | None
    read: Callable[[], Awaitable[bytes]] = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class InboundMessage:
    platform: str                    # "console" | "slack" | "discord"
    workspace: str                   # Slack team id, Discord guild id ("" for DMs / console)
    channel: str                     # channel id (a DM channel id for DMs)
    author: Author
    text: str                        # bot mention already stripped
    thread: str | None = None        # Slack thread_ts, Discord thread id; None when not threaded
    attachments: tuple[Attachment, ...] = ()
    is_direct: bool = False
    mentions_bot: bool = False
    event_id: str | None = None      # platform event id, for de-duplication
    message_id: str | None = None    # platform message id (Slack ts, Discord snowflake)
    channel_parents: tuple[str, ...] = ()  # Discord category / parent channel of a thread
    assistant: str | None = None     # explicit choice (slash command option), wins over routing


@dataclass(frozen=True, slots=True)
class ConversationKey:
    """Which conversation a message belongs to, after the assistant's scope was applied."""
    platform: str
    workspace: str
    channel: str
    thread: str
    user: str

    def as_string(self) -> str:
        return "|".join((self.platform, self.workspace, self.channel, self.thread, self.user))

    def digest(self, assistant: str) -> str:
        """The conversation's name for a model server's prompt cache (`prompt_cache_key`): the same for every turn
        of this conversation with `assistant`, from its first on, and no platform id in the clear."""
        return "conv-" + hashlib.sha256(f"{self.as_string()}|{assistant}".encode()).hexdigest()[:32]


# ---- what a backend yields while it answers -------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


ToolStatus = Literal["started", "running", "done", "failed"]


@dataclass(frozen=True, slots=True)
class ToolUpdate:
    """Progress of a tool call."""
    item_id: str
    tool: str                  # "code_interpreter" | "file_search" | "function" | "image_generation" | ...
    status: ToolStatus
    title: str                 # short, human: "Running code", "Searching files", "Calling query_weather"
    detail: str = ""           # code, logs, arguments, result preview


@dataclass(frozen=True, slots=True)
class OutboundFile:
    name: str
    data: bytes = field(repr=False)
    mime: str = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class Citation:
    index: int                 # 1-based footnote number
    title: str                 # file name or page title
    file_id: str = ""
    url: str = ""


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    tool_calls: int = 0
    code_interpreter_sessions: int = 0

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(*(a + b for a, b in zip(
            (self.input_tokens, self.cached_tokens, self.output_tokens, self.tool_calls,
             self.code_interpreter_sessions),
            (other.input_tokens, other.cached_tokens, other.output_tokens, other.tool_calls,
             other.code_interpreter_sessions))))


@dataclass(frozen=True, slots=True)
class Completed:
    usage: Usage
    response_id: str = ""
    containers: tuple[str, ...] = ()  # code interpreter containers the turn used (a session is billed per container)
    model: str = ""                   # the name usage is recorded and priced under ("" = the assistant's model)


@dataclass(frozen=True, slots=True)
class ConversationStarted:
    """A new thread's first turn went to the model before its conversation existed (none was ready; backends
    with `Capabilities.deferred_conversations`): where the thread's history is now. `pending`: the id names the
    stored answer the conversation is to be made from (AssistantBackend.make_conversation, after the answer);
    otherwise it is the conversation itself, made during the turn (before a tool round)."""
    conversation_id: str
    pending: bool = False


BackendEvent = TextDelta | ToolUpdate | OutboundFile | Citation | Completed | ConversationStarted


# ---- what a backend offers ------------------------------------------------------------------------

HOSTED_TOOLS = frozenset({"code_interpreter", "file_search", "image_generation", "web_search"})


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend type offers, declared once per type (core.backends.capabilities).

    `teambridge check` refuses a hosted tool the backend lacks; attachment routing sends files only where a
    backend can take them (uploads by id, hosted tools) and extracts text locally elsewhere."""
    hosted_tools: frozenset[str] = frozenset()   # tool types the server runs itself
    server_history: bool = False                 # the server keeps the conversation (Conversations API)
    vision: bool = True                          # images can go along as input
    file_uploads: bool = False                   # a Files API: uploads referenced by id
    document_tokens: int = 0                     # documents go along as locally extracted text up to this size
    # a new thread's first turn may go before its conversation exists (the server keeps the answer, the
    # conversation is made from it afterwards): ready_conversation / make_conversation / ConversationStarted
    deferred_conversations: bool = False


# ---- a conversation's history, backend-neutral (kept locally for servers without state) -------------


@dataclass(frozen=True, slots=True)
class UserItem:
    text: str
    images: tuple[str, ...] = ()   # names of images the user attached (the pixels go along once, in their turn)


@dataclass(frozen=True, slots=True)
class AssistantItem:
    text: str


@dataclass(frozen=True, slots=True)
class FunctionCallItem:
    call_id: str
    name: str
    arguments: str                 # JSON text, as the model wrote it


@dataclass(frozen=True, slots=True)
class FunctionOutputItem:
    call_id: str
    output: str


@dataclass(frozen=True, slots=True)
class SummaryItem:
    """Older turns condensed by the model into a short summary (sent in place of what it replaces)."""
    text: str
    turns: int = 0                 # how many turns it stands for


HistoryItem = UserItem | AssistantItem | FunctionCallItem | FunctionOutputItem | SummaryItem

