"""`type: openai`: the Responses API with server-side Conversations and OpenAI's hosted tools.

The turn loop, the stream and the event mapping are the Responses API's (core.backends.responses); this adds
what only OpenAI serves: conversations (core.backends.openai.session), the code interpreter, file search and
image generation, container file downloads, and the request options OpenAI documents.
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import openai
from openai import AsyncOpenAI

from core.backends import errors
from core.backends.capabilities import BY_TYPE
from core.backends.direct import DirectJSON
from core.backends.openai.client import make_openai_client, safety_identifier
from core.backends.openai.first_turn import FirstTurns, cache_key
from core.backends.openai.session import WHO, ConversationSessions, clean_metadata
from core.backends.responses.backend import ResponsesBackend
from core.backends.tool_calls import ToolRegistryLike
from core.errors import BackendError
from core.ports import Session

if TYPE_CHECKING:  # pragma: no cover
    from core.backends.openai.spares import SpareLedger
    from core.ports import Turn

__all__ = ["OpenAIBackend", "make_openai_client", "safety_identifier", "clean_metadata"]

log = logging.getLogger(__name__)

_INCLUDE = ["code_interpreter_call.outputs", "file_search_call.results"]


class OpenAIBackend(ResponsesBackend):
    """core.ports.AssistantBackend on OpenAI's Responses + Conversations APIs."""

    capabilities = BY_TYPE["openai"]

    def __init__(self, client: AsyncOpenAI, tools: ToolRegistryLike, *, max_retries: int = 3,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, spare_conversations: int = 0,
                 compact_threshold: int | None = None, spare_ledger: "SpareLedger | None" = None) -> None:
        # One HTTP session for the direct requests (creating a conversation, POST /v1/responses): a new thread's
        # create hands its connection on to the answer's request, instead of each opening its own (a TLS
        # handshake each, at OpenAI) — in a burst of new threads that is one new connection per thread, not two.
        direct = DirectJSON.for_client(client)
        self._sessions_openai = sessions = ConversationSessions(client, spare_conversations, spare_ledger, direct=direct)
        self._first = FirstTurns(client, direct)   # first turns sent before their conversation exists
        super().__init__(client, tools, sessions,
                         who=WHO, max_retries=max_retries, sleep=sleep, download=self._download,
                         fallback=self._without_compaction, direct=direct)
        self._compaction = True
        self._compact_threshold = compact_threshold
        self._identifiers: dict[str, str] = {}   # user id -> safety identifier (see _safety_identifier)

    def _without_compaction(self, err: BackendError, params: dict[str, Any]) -> dict[str, Any] | None:
        """A server that refuses `context_management` (an OpenAI-compatible proxy, a model without compaction)
        gets the deprecated `truncation: auto` instead, from then on."""
        if "context_management" not in params or "context_management" not in err.message:
            return None
        self._compaction = False
        rest = {k: v for k, v in params.items() if k != "context_management"}
        return {**rest, "truncation": "auto"}

    async def _download(self, file_id: str, container_id: str) -> bytes:
        try:
            content = await self._client.containers.files.content.retrieve(file_id, container_id=container_id)
        except openai.APIError as exc:
            raise errors.as_backend_error(exc, WHO) from exc
        return content.content   # the SDK has read the whole body already

    def _variant(self) -> object:
        return self._compaction   # switched off once a server refuses it: the prepared parameters change

    def _assistant_params(self, a, server_side: bool) -> dict[str, Any]:
        p = super()._assistant_params(a, server_side)
        # When the conversation outgrows the window, OpenAI compacts its oldest items (a `compaction` item
        # replaces them) instead of failing with a 400. `truncation: auto` did that by dropping them, and is
        # deprecated in the current API description.
        if self._compaction:
            entry: dict[str, Any] = {"type": "compaction"}
            if self._compact_threshold:
                entry["compact_threshold"] = self._compact_threshold
            p["context_management"] = [entry]
        else:
            p["truncation"] = "auto"
        p["include"] = list(_INCLUDE)
        return p

    def _params(self, turn: "Turn", session: Session) -> dict[str, Any]:
        p = super()._params(turn, session)
        # One prompt cache key per conversation, from its first turn on: its first turn may go before the
        # conversation exists (first_turn.py), and a key that changed at the second turn missed the cache there.
        # (A Turn built without one — not by ConversationSetup — keeps the older keys.)
        if turn.conversation_id:
            p["prompt_cache_key"] = turn.cache_key or turn.conversation_id
        else:   # a first turn before its conversation exists (first_turn.py): the server keeps it
            p.pop("conversation", None)
            p["store"] = True
            p["prompt_cache_key"] = turn.cache_key or cache_key(turn.metadata)
        if turn.user_id:
            p["safety_identifier"] = self._safety_identifier(turn.user_id)
        if turn.metadata:
            p["metadata"] = clean_metadata(turn.metadata)
        return p

    def _safety_identifier(self, user_id: str) -> str:
        """safety_identifier(user_id), remembered for the people who wrote lately (a hash per message otherwise)."""
        known = self._identifiers.get(user_id)
        if known is None:
            if len(self._identifiers) >= 10_000:
                self._identifiers.clear()
            known = self._identifiers[user_id] = safety_identifier(user_id)
        return known

    # ---- a new thread's first turn without waiting for its conversation (core/backends/openai/first_turn.py) --

    async def ready_conversation(self, metadata: dict[str, str]) -> str | None:
        return await self._sessions_openai.take_ready(metadata)

    async def make_conversation(self, pending: str, metadata: dict[str, str]) -> str:
        return await self._first.make(pending, clean_metadata(metadata))

    def _first_turn(self, turn: "Turn") -> bool:
        return not turn.conversation_id

    def _answered_first(self, response_id: str, items: list[dict[str, Any]]) -> None:
        self._first.keep(response_id, items)

    def _shown_first(self, response_id: str, items: list[dict[str, Any]]) -> None:
        self._first.keep_shown(response_id, items)

    async def _conversation_from(self, turn: "Turn", items: list[dict[str, Any]]) -> str:
        return await self._first.make("", clean_metadata(turn.metadata), items, tool_round=True)

    def _hosted_tools(self, turn: "Turn") -> list[dict[str, Any]]:
        tools: list[dict[str, Any]] = []
        for t in turn.assistant.tools:
            match t.type:
                case "code_interpreter":
                    container: dict[str, Any] = {"type": "auto", "file_ids": list(turn.hosted.container_file_ids)}
                    if t.memory_limit:
                        container["memory_limit"] = t.memory_limit
                    tools.append({"type": "code_interpreter", "container": container})
                case "file_search":
                    if not turn.hosted.vector_store_ids:
                        # The API rejects file_search without a store; the files may still be indexing.
                        log.warning("assistant %s: file_search has no vector store yet, tool left out",
                                    turn.assistant.name)
                        continue
                    fs: dict[str, Any] = {"type": "file_search",
                                          "vector_store_ids": list(turn.hosted.vector_store_ids)}
                    if t.max_num_results is not None:
                        fs["max_num_results"] = t.max_num_results
                    if t.score_threshold is not None:
                        fs["ranking_options"] = {"score_threshold": t.score_threshold}
                    tools.append(fs)
                case "web_search":
                    ws: dict[str, Any] = {"type": "web_search"}
                    if t.search_context_size:
                        ws["search_context_size"] = t.search_context_size
                    tools.append(ws)
                case "image_generation":
                    ig: dict[str, Any] = {"type": "image_generation"}
                    if t.size:
                        ig["size"] = t.size
                    if t.quality:
                        ig["quality"] = t.quality
                    tools.append(ig)
                case _:
                    pass  # function tools come from the registry
        return tools
