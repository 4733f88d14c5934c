"""History kept by teambridge, for servers that keep none (`type: responses`, `type: chat_completions`).

A LocalSession is core.ports.Session over the store: each conversation's items (user text, answers, function
calls and their outputs, a summary of condensed turns) survive restarts and go along with every request.

HistoryWindow keeps a request under the backend's `context_tokens`: when the history is over its share, the
oldest turns are condensed into a short summary by the same model (one extra request, whose usage is counted
with the turn), and if that fails they are dropped. The answer never fails because the window is full.
"""
from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Protocol, Sequence

from core.backends.tokens import PER_ITEM, TokenCounter, estimate
from core.errors import BackendError
from core.model import AssistantItem, FunctionCallItem, FunctionOutputItem, HistoryItem, SummaryItem, Usage, UserItem
from core.store.protocol import HistoryItem as HistoryRow

log = logging.getLogger(__name__)

SUMMARY_PREFIX = "Summary of the earlier conversation (older messages were condensed):\n"
CONDENSE_INSTRUCTIONS = (
    "You condense chat transcripts. Summarize the conversation below in at most 200 words, in its own language. "
    "Keep names, numbers, facts, decisions, the user's preferences and open questions; drop pleasantries. "
    "Write the summary only.")
CONDENSE_MAX_OUTPUT = 512
IMAGE_TOKENS = 1000  # what one image costs a vision model, roughly (OpenAI: 85-1105 for `detail: auto`)
KEEP_SHARE = 0.5     # after condensing, the kept turns use at most this share of the budget: room to grow


class HistoryStore(Protocol):
    """The store's part of local history (core.store.protocol.Store implements it): opaque JSON rows."""

    async def load_history(self, conversation: str) -> list[HistoryRow]: ...
    async def append_history(self, conversation: str, items: Sequence[HistoryRow]) -> None: ...
    async def replace_history(self, conversation: str, items: Sequence[HistoryRow]) -> None: ...
    async def delete_history(self, conversation: str) -> None: ...


# ---- items <-> the store's rows (JSON the store does not interpret) ----------------------------------------


def to_row(item: HistoryItem, count: Callable[[str], int] = estimate) -> HistoryRow:
    match item:
        case UserItem(text=text, images=images):
            data: dict[str, Any] = {"kind": "user", "text": text, **({"images": list(images)} if images else {})}
        case AssistantItem(text=text):
            data = {"kind": "assistant", "text": text}
        case FunctionCallItem(call_id=call_id, name=name, arguments=arguments):
            data = {"kind": "function_call", "call_id": call_id, "name": name, "arguments": arguments}
        case FunctionOutputItem(call_id=call_id, output=output):
            data = {"kind": "function_output", "call_id": call_id, "output": output}
        case SummaryItem(text=text, turns=turns):
            data = {"kind": "summary", "text": text, "turns": turns}
    return HistoryRow(data=data, tokens=count(item_text(item)) + PER_ITEM)


def from_row(row: HistoryRow) -> HistoryItem | None:
    d = row.data
    match d.get("kind"):
        case "user":
            return UserItem(str(d.get("text", "")), tuple(d.get("images") or ()))
        case "assistant":
            return AssistantItem(str(d.get("text", "")))
        case "function_call":
            return FunctionCallItem(str(d.get("call_id", "")), str(d.get("name", "")), str(d.get("arguments", "{}")))
        case "function_output":
            return FunctionOutputItem(str(d.get("call_id", "")), str(d.get("output", "")))
        case "summary":
            return SummaryItem(str(d.get("text", "")), int(d.get("turns") or 0))
    log.warning("history row of an unknown kind skipped: %r", d.get("kind"))
    return None


class LocalSession:
    """`count`: how items written from now on are sized (the model's counter); each row keeps its count, so a
    turn does not re-count the whole history."""

    server_side = False

    def __init__(self, store: HistoryStore, conversation_id: str, count: Callable[[str], int] = estimate) -> None:
        self._store = store
        self.session_id = conversation_id
        self.count = count

    async def get_items(self, limit: int | None = None) -> list[HistoryItem]:
        items = [item for item, _ in await self.get_sized()]
        return items if limit is None else items[-limit:] if limit > 0 else []

    async def get_sized(self) -> list[tuple[HistoryItem, int]]:
        """Each item with its size in tokens, as counted when it was written."""
        out = []
        for row in await self._store.load_history(self.session_id):
            item = from_row(row)
            if item is not None:
                out.append((item, row.tokens or self.count(item_text(item)) + PER_ITEM))
        return out

    async def add_items(self, items: Sequence[HistoryItem]) -> None:
        await self._store.append_history(self.session_id, [to_row(i, self.count) for i in items])

    async def replace_items(self, items: Sequence[HistoryItem]) -> None:
        await self._store.replace_history(self.session_id, [to_row(i, self.count) for i in items])

    async def clear(self) -> None:
        await self._store.delete_history(self.session_id)


class LocalSessions:
    """Conversations whose id is made here: nothing to create at a server."""

    def __init__(self, store: HistoryStore) -> None:
        self._store = store

    async def create(self, metadata: dict[str, str]) -> str:
        return f"local_{uuid.uuid4().hex}"

    def open(self, conversation_id: str) -> LocalSession:
        return LocalSession(self._store, conversation_id)

    def prepare(self) -> None:
        return None

    async def ready(self, conversation_id: str) -> None:
        return None

    async def aclose(self) -> None:
        return None


# ---- staying under context_tokens ---------------------------------------------------------------------------

# (transcript) -> (summary text, usage of the request). Raises on any failure.
Summarize = Callable[[str], Awaitable[tuple[str, Usage]]]


@dataclass(frozen=True, slots=True)
class Window:
    items: tuple[HistoryItem, ...]   # what this turn sends, the summary (if any) first
    usage: Usage = Usage()           # of a condensing request made for this turn
    condensed: int = 0               # turns condensed (or dropped) for this turn

    @property
    def summary(self) -> str:
        return next((i.text for i in self.items if isinstance(i, SummaryItem)), "")

    @property
    def turns(self) -> tuple[HistoryItem, ...]:
        return tuple(i for i in self.items if not isinstance(i, SummaryItem))


def item_text(item: HistoryItem) -> str:
    match item:
        case UserItem(text=text) | AssistantItem(text=text) | SummaryItem(text=text):
            return text
        case FunctionCallItem(name=name, arguments=arguments):
            return f"{name}({arguments})"
        case FunctionOutputItem(output=output):
            return output
    return ""


def transcript(items: Sequence[HistoryItem]) -> str:
    lines = []
    for item in items:
        match item:
            case SummaryItem(text=text):
                lines.append(f"(Earlier: {text})")
            case UserItem(text=text):
                lines.append(f"User: {text}")
            case AssistantItem(text=text):
                lines.append(f"Assistant: {text}")
            case FunctionCallItem(name=name, arguments=arguments):
                lines.append(f"Assistant called {name}({arguments})")
            case FunctionOutputItem(output=output):
                lines.append(f"Tool result: {output}")
    return "\n".join(lines)


def split_turns(items: Sequence[HistoryItem]) -> tuple[list[HistoryItem], list[list[HistoryItem]]]:
    """(leading summaries, turns): a turn starts at each user message and holds what answered it."""
    head: list[HistoryItem] = []
    turns: list[list[HistoryItem]] = []
    for item in items:
        if isinstance(item, UserItem) or (turns == [] and not isinstance(item, SummaryItem)):
            turns.append([item])
        elif turns:
            turns[-1].append(item)
        else:
            head.append(item)
    return head, turns


def with_summary(instructions: str, summary: str) -> str:
    """The summary of condensed turns rides in the instructions (the system message): a user message there
    would break the user/assistant alternation that many chat templates insist on."""
    if not summary:
        return instructions
    return f"{instructions}\n\n{SUMMARY_PREFIX}{summary}" if instructions else SUMMARY_PREFIX + summary


def budget(context_tokens: int, tokens: TokenCounter, *, instructions: str, text: str, tools: list[Any],
           images: int, max_output: int | None) -> int:
    """Tokens left for the history once a turn's own parts and room for the answer are counted."""
    reserve = max_output or min(4096, context_tokens // 4)
    fixed = (tokens.count(instructions) + tokens.count(text) + (tokens.count(json.dumps(tools)) if tools else 0)
             + images * IMAGE_TOKENS + 3 * PER_ITEM)
    return max(0, context_tokens - reserve - fixed)


class HistoryWindow:
    """Fits one conversation's history into `budget` tokens (context_tokens less what the turn adds)."""

    def __init__(self, tokens: TokenCounter, summarize: Summarize, context_tokens: int) -> None:
        self._tokens = tokens
        self._summarize = summarize
        self._context = context_tokens

    def size(self, items: Sequence[HistoryItem]) -> int:
        return sum(self._tokens.count(item_text(i)) + PER_ITEM for i in items)

    async def fit(self, session: LocalSession, budget: int) -> Window:
        sized = await session.get_sized()
        items = [item for item, _ in sized]
        if sum(n for _, n in sized) <= budget:
            return Window(tuple(items))
        sizes = {id(item): n for item, n in sized}
        head, turns = split_turns(items)
        kept: list[list[HistoryItem]] = []
        used = 0
        for turn in reversed(turns):          # the latest turns stay whole, as many as fit in their share
            size = sum(sizes[id(i)] for i in turn)
            if used + size > budget * KEEP_SHARE:
                break
            kept.insert(0, turn)
            used += size
        older = head + [i for t in turns[:len(turns) - len(kept)] for i in t]
        n_older = len(turns) - len(kept) + sum(i.turns for i in head if isinstance(i, SummaryItem))
        recent = [i for t in kept for i in t]
        usage = Usage()
        new: list[HistoryItem] = recent
        try:
            text, usage = await self._summarize(self._shorten(transcript(older)))
            summary = SummaryItem(text.strip(), n_older)
            if summary.text and self.size([summary]) + used <= budget:
                new = [summary, *recent]
            else:
                log.warning("conversation %s: the summary does not fit; %d older turns dropped",
                            session.session_id, n_older)
        except Exception as exc:   # condensing is a nicety: without it the oldest turns are dropped
            log.warning("conversation %s: condensing %d older turns failed (%s); they were dropped",
                        session.session_id, n_older, exc.message if isinstance(exc, BackendError) else exc)
        await session.replace_items(new)
        return Window(tuple(new), usage, len(turns) - len(kept))

    def _shorten(self, text: str) -> str:
        """The condensing request must fit the window too: keep the transcript's start (an earlier summary)
        and its end, cut from the middle."""
        limit = int(self._context * 0.6)
        size = self._tokens.count(text)
        if size <= limit:
            return text
        keep = max(200, int(len(text) * limit / size) // 2)
        return text[:keep] + "\n[…]\n" + text[-keep:]
