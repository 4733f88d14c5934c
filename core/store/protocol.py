"""The Store seam: every method core and the platform adapters call on persistence, and the rows it returns.

Two implementations: core.store.sqlite.SqliteStore (the embedded default, one process) and
core.store.postgres.PostgresStore (several processes on one database). tests/store/test_store_contract.py is
written once and runs against each, so a third store is one module plus a fixture.

Rows are frozen dataclasses, never dicts: a caller that misspells a column fails at once, and a store that
forgets one fails the contract suite.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence

from core.model import ConversationKey, Usage

if TYPE_CHECKING:  # pragma: no cover
    from core.chat.locks import TurnLocks
    from core.store.signals import Signals
    from core.store.shares import RateShares
    from core.chat.limits import MessageRates


@dataclass(frozen=True, slots=True)
class ConversationRecord:
    key: str
    assistant: str
    backend_id: str
    metadata: dict[str, str]
    vector_store_id: str | None
    created_at: float
    updated_at: float
    # True: the conversation is not made yet — `backend_id` names the stored first answer its history is kept in
    # (OpenAI: a stored response, `store: true`), and the backend makes the conversation from it
    # (AssistantBackend.make_conversation) after that answer, or at the thread's next message after a crash.
    pending: bool = False


@dataclass(frozen=True, slots=True)
class InflightReply:
    """A reply message being streamed. `owner`: the process streaming it (see Store.take_orphaned_inflight)."""
    id: int
    platform: str
    channel: str
    message_id: str
    thread: str | None
    started_at: float
    owner: str = ""


@dataclass(frozen=True, slots=True)
class FileRecord:
    """A file teambridge uploaded to the backend: content hash + purpose -> the backend's file id."""
    sha256: str
    purpose: str
    file_id: str
    name: str
    size: int
    created_at: float


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One answered turn, as counted for reports and limits."""
    id: int
    ts: float
    assistant: str
    platform: str
    workspace: str
    channel: str
    user: str
    model: str
    input_tokens: int = 0          # includes cached_tokens
    cached_tokens: int = 0
    output_tokens: int = 0
    tool_calls: int = 0
    code_interpreter_sessions: int = 0


@dataclass(frozen=True, slots=True)
class KnowledgeFile:
    """One config file of an assistant's file_search knowledge, as last synced."""
    path: str
    sha256: str
    file_id: str
    status: str                    # in_progress | completed | failed
    error: str | None = None


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """One item of a conversation's history kept by teambridge (backends without server-side history).

    `data` is the backend's own JSON-able item (a message, a tool call, a summary); `tokens` its estimated
    size, so a backend can budget its context without re-counting. `seq`: its position, set by the store when
    loading (ignored when writing)."""
    data: Mapping[str, Any] = field(default_factory=dict)
    tokens: int = 0
    seq: int = 0


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    """One tool call in the audit trail (core/tools/audit.py writes them)."""
    at: float                  # unix time the call was asked for
    conversation: str          # the backend's conversation id
    platform: str
    channel: str
    user: str                  # id of the person whose message led to the call
    assistant: str
    tool: str                  # as the server / Python names it
    server: str                # MCP server name; "" for a function tool
    arguments_sha256: str
    approval: str              # not_needed | approved | denied | timeout | unavailable
    approved_by: str           # who approved or denied ("" when nobody decided)
    outcome: str               # ok | error | not_run
    duration_ms: int           # the tool's own run time (0 when it did not run)


@dataclass(frozen=True, slots=True)
class AnswerRecord:
    """One answer the bot gave, as its buttons (rate, retry) and `teambridge feedback` find it again."""
    id: str                    # the answer's own id (carried by its buttons)
    platform: str
    workspace: str
    channel: str
    thread: str | None
    message_id: str            # the answer's first message ("" when it posted none)
    assistant: str
    model: str
    user: str                  # who asked
    user_name: str
    question: str              # the text that was answered (asked again by Retry)
    is_direct: bool
    outcome: str               # answered | stopped | failed
    at: float                  # unix time the answer ended
    conversation_id: str = ""  # the backend's conversation it belongs to ("": recorded before they were linked)


@dataclass(frozen=True, slots=True)
class FeedbackRow:
    """One person's rating of one answer (their latest click), with where the answer is."""
    at: float                  # when they rated (or last changed it)
    answer_id: str
    platform: str
    workspace: str
    channel: str
    thread: str | None
    message_id: str
    assistant: str
    model: str
    asker: str                 # who asked the question
    user: str                  # who rated
    rating: int                # +1 (👍) or -1 (👎)


class Store(Protocol):
    """Persistence. Every write is committed when the call returns (a kill -9 loses nothing written)."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def schema_version(self) -> int: ...
    def turn_locks(self) -> "TurnLocks": ...   # one turn at a time per conversation, for every process sharing it
    def signals(self) -> "Signals": ...         # nudges between the processes sharing it (button clicks)
    # this process's part of the app's rate budgets in `scope` (core/store/shares.py), `window` seconds long
    def rate_shares(self, scope: str, *, window: float, refresh: float = 1.0) -> "RateShares": ...
    # each user's message rate across the processes sharing it; None: one process counts in memory
    def message_rates(self) -> "MessageRates | None": ...

    # ---- conversations: (conversation key, assistant) -> the backend's conversation ---------------------
    async def get_conversation(self, key: ConversationKey, assistant: str) -> ConversationRecord | None: ...
    async def save_conversation(self, key: ConversationKey, assistant: str, backend_id: str,
                                metadata: dict[str, str], *, pending: bool = False) -> None: ...
    async def set_conversation_vector_store(self, key: ConversationKey, assistant: str,
                                            vector_store_id: str) -> None: ...
    async def delete_conversation(self, key: ConversationKey, assistant: str) -> bool: ...
    async def list_conversations(self) -> list[ConversationRecord]: ...
    async def count_conversations(self) -> int: ...

    # ---- a user's chosen assistant per place (set by `/assistant NAME`; None clears it) ---------------
    async def get_preference(self, scope: str) -> str | None: ...
    async def set_preference(self, scope: str, assistant: str | None) -> None: ...

    # ---- threads the bot answered in: follow-ups need no mention and stay with that assistant ----------
    async def thread_assistant(self, platform: str, channel: str, thread: str) -> str | None: ...
    async def mark_thread(self, platform: str, channel: str, thread: str, assistant: str, *, ttl: float) -> None: ...

    # ---- reply chains: which conversation root one of the bot's messages belongs to (Discord) ---------
    async def reply_root(self, platform: str, message_id: str) -> str | None: ...
    async def save_reply_root(self, platform: str, message_id: str, root: str, *, ttl: float) -> None: ...

    # ---- code interpreter containers: billed once per life (they expire after idle minutes) ----------
    async def touch_container(self, container_id: str, *, ttl: float) -> bool: ...   # True: first use in ttl

    # ---- spare conversations made ahead at a backend (`pool` names the server); take is atomic -------
    async def add_spare(self, pool: str, conversation_id: str) -> None: ...
    async def take_spare(self, pool: str) -> str | None: ...     # removes and returns the oldest, or None
    async def count_spares(self, pool: str) -> int: ...
    # how many spares the last burst of new threads needed (0: none known), so the next start makes that many
    async def save_spare_demand(self, pool: str, demand: int) -> None: ...
    async def spare_demand(self, pool: str) -> int: ...

    # ---- what a platform last registered (e.g. Discord's slash-command payload hash per scope) --------
    async def get_sync_digest(self, platform: str, scope: str) -> str | None: ...
    async def save_sync_digest(self, platform: str, scope: str, digest: str) -> None: ...

    # ---- de-duplication: True the first time (platform, event_key) is claimed, False afterwards -------
    async def claim_event(self, platform: str, event_key: str) -> bool: ...
    async def prune_events(self) -> int: ...

    # ---- uploaded files: sha256 + purpose -> backend file id ------------------------------------------
    async def get_file(self, sha256: str, purpose: str) -> str | None: ...
    async def save_file(self, sha256: str, purpose: str, file_id: str, name: str, size: int) -> None: ...
    async def list_files(self) -> list[FileRecord]: ...
    async def delete_file(self, file_id: str) -> None: ...

    # ---- usage: one row per answered turn ------------------------------------------------------------
    async def record_usage(self, *, assistant: str, platform: str, workspace: str, channel: str, user: str,
                           model: str, usage: Usage) -> None: ...
    async def usage_rows(self, since: float, until: float) -> list[UsageRow]: ...   # since <= ts < until
    # An erased person: their user id in the usage rows becomes `replacement` (a digest); returns rows changed.
    async def forget_usage_user(self, user: str, replacement: str) -> int: ...

    # ---- answers and what people thought of them (core/reply/controls.py) ------------------------------
    async def save_answer(self, answer: AnswerRecord) -> None: ...   # saving an id again replaces it
    async def get_answer(self, answer_id: str) -> AnswerRecord | None: ...
    # One rating per person per answer: a second call replaces the first. Returns the rating it replaced.
    async def rate_answer(self, answer_id: str, user: str, rating: int) -> int | None: ...
    async def feedback_rows(self, since: float, until: float) -> list[FeedbackRow]: ...   # since <= at < until
    # An erased person: their questions blanked, their id (asker and rater) replaced by `replacement` (a digest).
    async def forget_answers_user(self, user: str, replacement: str) -> int: ...
    # Retention: the questions of answers that ended before `before` are blanked (they cannot be retried any more).
    async def forget_questions(self, before: float) -> int: ...
    # A conversation erased (deleted by an admin, /forget, the retention sweep, a reset that deletes): its answers
    # and their ratings go with it. Returns how many answers.
    async def delete_answers(self, conversation_id: str) -> int: ...
    # A pending conversation made (ConversationRecord.pending): its answers now belong to the conversation's id.
    async def relink_answers(self, old: str, new: str) -> int: ...

    # ---- the audit trail of tool calls ----------------------------------------------------------------
    async def record_tool_call(self, record: ToolCallRecord) -> None: ...
    async def tool_calls(self, since: float, until: float) -> list[ToolCallRecord]: ...   # since <= at < until

    # ---- replies in flight (marked "cut off" after a crash) ------------------------------------------
    async def add_inflight(self, platform: str, channel: str, message_id: str, thread: str | None) -> int: ...
    async def remove_inflight(self, inflight_id: int) -> None: ...
    async def list_inflight(self, platform: str | None = None) -> list[InflightReply]: ...
    # Removes and returns the platform's replies whose process is gone (its lease ran out; every open store
    # renews its own) and, with `own`, those under this store's own owner name (at start, before streaming).
    # Each reply goes to one taker, however many processes sweep at once.
    async def take_orphaned_inflight(self, platform: str, *, own: bool = False) -> list[InflightReply]: ...
    async def renew_lease(self) -> None: ...   # an open store renews its own every lease/3; this renews now

    # ---- knowledge: a vector store per assistant, synced from the config's files ----------------------
    async def get_knowledge_store(self, assistant: str) -> str | None: ...
    async def save_knowledge_store(self, assistant: str, vector_store_id: str) -> None: ...
    async def list_knowledge_files(self, assistant: str) -> list[KnowledgeFile]: ...
    async def save_knowledge_file(self, assistant: str, path: str, sha256: str, file_id: str, status: str,
                                  error: str | None = None) -> None: ...
    async def delete_knowledge_file(self, assistant: str, path: str) -> None: ...

    # ---- local history (backends that keep the conversation themselves), per backend conversation id --
    async def load_history(self, conversation: str) -> list[HistoryItem]: ...
    async def append_history(self, conversation: str, items: Sequence[HistoryItem]) -> None: ...
    async def replace_history(self, conversation: str, items: Sequence[HistoryItem]) -> None: ...
    async def delete_history(self, conversation: str) -> None: ...


class EventClaims(Protocol):
    """First writer wins: the one seam de-duplication needs. Every Store is one."""

    async def claim_event(self, platform: str, event_key: str) -> bool: ...
