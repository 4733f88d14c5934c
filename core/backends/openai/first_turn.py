"""A new thread's first turn without waiting for `POST /v1/conversations`.

A new thread needs an OpenAI Conversation for its history. The spare pool (core/backends/openai/spares.py) keeps a
few made ahead, but the first burst of a fresh process (or any burst bigger than the pool) found none for most of
its threads: each made one inline and waited for OpenAI's answer before its `POST /v1/responses` could leave — a
whole round trip, plus the event loop's queue behind the rest of the burst, in front of every first word.

Instead, when no spare is ready, the first turn goes with `store: true` and no `conversation` (the Responses API
keeps the response and its input items: GET /v1/responses/{id}, GET /v1/responses/{id}/input_items), and the
conversation is made from that turn's items after the answer — still inside the turn, under its turn lock, so the
thread's next message cannot overtake it:

- `POST /v1/conversations` takes `items` (at most 20 per call; the rest go through
  `POST /v1/conversations/{id}/items`) and the thread's metadata (the labels a spare gets).
- The items are the request's user message and the response's output items as the API returned them. The spec's
  `InputItem` is the same union a response's output is made of (messages, function calls, reasoning, code
  interpreter / file search / web search / image generation calls, compaction), so they go in as they came out,
  the way a caller without server-side state sends `response.output` back as input. They are copied by value,
  not as `item_reference`s: the Conversations API documents `items` as initial context, and a copy does not
  depend on how long the stored response is kept.
- A first turn with a tool round makes its conversation before the second request, from what it has so far
  (the function calls included), and goes on as every other turn does: the calls' outputs are sent into it.
- Nothing is lost to a crash: the turn records the stored response's id on the thread's row as soon as
  `response.created` names it (core/chat: ConversationRecord.pending), and the thread's next message makes the
  conversation from what OpenAI kept (`make` without items in memory: the two GETs).
- A first turn that ended before its answer was complete (a reader's Stop, a failure, a shutdown) keeps the
  user's message and the text shown so far: if OpenAI kept nothing of that answer (404), the conversation is made
  from them, so the thread's next message still reads what was asked and what was seen.
"""
from __future__ import annotations

import hashlib
import logging
import typing
from collections import OrderedDict
from typing import Any, Mapping

import openai
from openai import AsyncOpenAI
from openai.types.responses.response_input_item_param import ResponseInputItemParam

from core.backends import errors
from core.backends.direct import DirectJSON

log = logging.getLogger(__name__)

WHO = "OpenAI"
MAX_ITEMS_PER_CALL = 20      # POST /v1/conversations and …/items take at most 20 items each
KEPT = 2000                  # answered first turns whose items are held until their conversation is made
_INCLUDE = ["code_interpreter_call.outputs", "file_search_call.results"]   # what a stored response leaves out
# A call whose answer never came (the turn was stopped, failed or cut off between a tool round and the
# conversation): the model reads this as the call's output. OpenAI refuses a conversation holding a call without
# one ("No tool output found …") on every later request, so a thread would never answer again.
NOT_RUN = "not run: the answer was interrupted before this call ran"
_CALL_OUTPUTS = {"function_call": "function_call_output", "custom_tool_call": "custom_tool_call_output"}


def _required_nullable() -> dict[str, frozenset[str]]:
    """Per input item type, the keys the API requires even when null (e.g. a code interpreter call's `outputs`,
    an image generation's `result`): read from the SDK's input item types, so a new one is not missed."""
    out: dict[str, frozenset[str]] = {}
    for cls in typing.get_args(ResponseInputItemParam):
        hints = typing.get_type_hints(cls, include_extras=True)
        required = {k: typing.get_args(v)[0] for k, v in hints.items() if typing.get_origin(v) is typing.Required}
        keys = frozenset(k for k, v in required.items() if type(None) in typing.get_args(v))
        kinds = [v for v in typing.get_args(required.get("type", hints.get("type"))) if isinstance(v, str)]
        for kind in kinds if keys else ():
            out[kind] = out.get(kind, frozenset()) | keys
    return out


_KEEP_NULL = _required_nullable()


def cache_key(metadata: Mapping[str, str]) -> str:
    """`prompt_cache_key` of a first turn that has no conversation id yet: stable for the thread (the same
    place, person and assistant give the same key), and no platform id in the clear."""
    place = "|".join(metadata.get(k, "") for k in ("platform", "workspace", "channel", "thread", "user_id",
                                                     "assistant"))
    return "thread-" + hashlib.sha256(place.encode()).hexdigest()[:32]


def as_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A response's item as an input item: its fields without the nulls the API fills in (a null is "not set"
    in a request, and some unions refuse an explicit one)."""
    out: dict[str, Any] = {}
    # An input message read back from a stored response carries the id and status the API gave it; sent again
    # it is what the request said (a message of its own, not a reference to that response's item).
    drop = ("id", "status") if item.get("type", "message") == "message" and item.get("role") != "assistant" else ()
    keep_null = _KEEP_NULL.get(item.get("type", ""), frozenset())
    for k, v in item.items():
        if (v is None and k not in keep_null) or k in drop:
            continue
        if isinstance(v, list):
            v = [{pk: pv for pk, pv in p.items() if pv is not None} if isinstance(p, Mapping) else p for p in v]
        out[k] = v
    return out


def _with_required(item: dict[str, Any]) -> dict[str, Any]:
    """An item read back with its nulls left out gets back the ones its input type requires."""
    for key in _KEEP_NULL.get(item.get("type", ""), ()):
        item.setdefault(key, None)
    return item


def answered_calls(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`items` with an output after each call that has none (NOT_RUN): what a conversation may hold."""
    answered = {i.get("call_id") for i in items if i.get("type") in _CALL_OUTPUTS.values()}
    missing = [{"type": _CALL_OUTPUTS[i["type"]], "call_id": i.get("call_id"), "output": NOT_RUN}
               for i in items if i.get("type") in _CALL_OUTPUTS and i.get("call_id") not in answered]
    return items + missing if missing else items


def _messages_only(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The user's and the assistant's messages of `items`: the exchange as people read it, without the calls."""
    return [i for i in items if i.get("type", "message") == "message"]


def _hold(held: OrderedDict[str, list[dict[str, Any]]], response_id: str, items: list[dict[str, Any]]) -> None:
    held[response_id] = items
    while len(held) > KEPT:   # turns that never came back for theirs: read from OpenAI if they do
        held.popitem(last=False)


class FirstTurns:
    """Conversations made from first turns: from the items a turn just had (held here by response id), or from
    what OpenAI kept of a stored response (after a restart, or in another process)."""

    def __init__(self, client: AsyncOpenAI, direct: DirectJSON | None) -> None:
        self._client = client
        self._direct = direct
        self._answered: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self._shown: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()   # answers that ended midway

    def keep(self, response_id: str, items: list[dict[str, Any]]) -> None:
        """A first turn's answer is complete: its items, until the turn makes the conversation from them."""
        if not response_id:
            return
        _hold(self._answered, response_id, items)

    def keep_shown(self, response_id: str, items: list[dict[str, Any]]) -> None:
        """A first turn ended before its answer was complete: the user's message and the text shown of the answer,
        to make the conversation from if OpenAI kept nothing of it."""
        if response_id:
            _hold(self._shown, response_id, items)

    async def make(self, pending: str, metadata: dict[str, str], items: list[dict[str, Any]] | None = None, *,
                   tool_round: bool = False) -> str:
        """The conversation made from a first turn's items (`items`, or those held for the stored response
        `pending`, or what OpenAI kept of it). Raises BackendError; the stored response stays either way.

        `tool_round`: the turn goes on in it, sending its calls' outputs next. Otherwise the turn is over, and a
        call it never answered gets NOT_RUN as its output; and items OpenAI refuses (400: a kind this code does
        not know yet) fall back to the exchange's messages, then to an empty conversation, with one log line —
        a refusal now is a refusal on every later try, and the thread must go on."""
        if items is None:
            items = self._answered.get(pending)
        if items is None:
            items = await self._stored_items(pending, instead=self._shown.get(pending))
        if tool_round:
            conversation_id = await self._with_items(metadata, items)
        else:
            conversation_id = await self._made_anyway(pending, metadata, answered_calls(items))
        self._answered.pop(pending, None)
        self._shown.pop(pending, None)
        return conversation_id

    async def _made_anyway(self, pending: str, metadata: dict[str, str], items: list[dict[str, Any]]) -> str:
        for fallback in (_messages_only(items), []):
            if fallback == items:
                continue
            try:
                return await self._with_items(metadata, items, refusal=openai.BadRequestError)
            except openai.BadRequestError as exc:
                log.warning("OpenAI refused the items of the stored first answer %s as a conversation (%s); "
                            "making it with %s", pending, getattr(exc, "message", exc),
                            "the messages only" if fallback else "none of them")
                items = fallback
        return await self._with_items(metadata, items)

    async def _with_items(self, metadata: dict[str, str], items: list[dict[str, Any]], *,
                          refusal: type[Exception] | None = None) -> str:
        """One conversation with `items`, or none: one that got only part of them is deleted again (it holds a
        person's words, and nothing would ever name it). `refusal`: re-raised as is (the caller falls back)."""
        conversation_id = ""
        try:
            conversation_id = await self._create(metadata, [as_item(i) for i in items[:MAX_ITEMS_PER_CALL]])
            for start in range(MAX_ITEMS_PER_CALL, len(items), MAX_ITEMS_PER_CALL):
                await self._client.conversations.items.create(
                    conversation_id, items=[as_item(i) for i in items[start:start + MAX_ITEMS_PER_CALL]])  # type: ignore[misc]
        except BaseException as exc:
            if conversation_id:
                await self._discard(conversation_id)
            if refusal is not None and isinstance(exc, refusal):
                raise
            if isinstance(exc, openai.APIError):
                raise errors.as_backend_error(exc, WHO) from exc
            raise
        return conversation_id

    async def _discard(self, conversation_id: str) -> None:
        try:
            await self._client.conversations.delete(conversation_id)
        except Exception as exc:   # best effort: the error that brought us here is the one to report
            log.warning("could not delete the half-made conversation %s (%s)", conversation_id, exc)

    async def _create(self, metadata: dict[str, str], items: list[dict[str, Any]]) -> str:
        if self._direct is None:
            return (await self._client.conversations.create(metadata=metadata, items=items)).id  # type: ignore[arg-type]
        data = await self._direct.post_json("conversations", {"metadata": metadata, "items": items})
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise openai.APIError("The server's answer to creating a conversation has no id", request=None,
                                  body=data)  # type: ignore[arg-type]
        return data["id"]

    async def _stored_items(self, response_id: str, *,
                            instead: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """What OpenAI kept of a stored response: its input items, then its output items, oldest first.
        `instead`: what this process saw of it (the question, the text shown), should OpenAI have nothing."""
        try:
            # `include`: a code interpreter call's outputs and file search results come back only when asked for
            response = await self._client.responses.retrieve(response_id, include=_INCLUDE)  # type: ignore[arg-type]
            inputs = [i async for i in self._client.responses.input_items.list(
                response_id, order="asc", limit=100, include=_INCLUDE)]  # type: ignore[arg-type]
        except openai.NotFoundError:
            # Never kept (the answer was cut off before OpenAI finished it) or expired (stored responses are kept
            # for a limited time): asking again will not change that. The thread goes on in a new conversation —
            # with what this process saw of that turn, or else an empty one — rather than failing every message.
            if instead:
                log.warning("the stored first answer %s is gone at OpenAI: its thread goes on in a new conversation "
                            "made from the question and the part of the answer shown", response_id)
                return list(instead)
            log.warning("the stored first answer %s is gone at OpenAI: its thread goes on in a new conversation "
                        "without it", response_id)
            return []
        except openai.APIError as exc:
            raise errors.as_backend_error(exc, WHO) from exc
        return [_with_required(i.model_dump(mode="json", exclude_none=True)) for i in inputs] + \
            [_with_required(o.model_dump(mode="json", exclude_none=True)) for o in response.output]

    async def items(self, response_id: str) -> list[dict[str, Any]]:
        """A stored first answer's items (an admin reads a thread whose conversation is not made yet)."""
        return await self._stored_items(response_id)

    async def delete(self, response_id: str) -> bool:
        """Deletes the stored response (a thread erased before its conversation was made). False: gone already."""
        self._answered.pop(response_id, None)
        self._shown.pop(response_id, None)
        try:
            await self._client.responses.delete(response_id)
        except openai.NotFoundError:
            return False
        return True
