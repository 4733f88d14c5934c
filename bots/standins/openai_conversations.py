"""The OpenAI stand-in's Conversations: a conversation's items (what the model reads besides a request's input),
their routes, and what a response with `conversation=` adds to them. Routes of FakeOpenAI
(bots/standins/openai_server.py), which holds the state."""
from __future__ import annotations

from typing import Any, Callable

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from openai.types.conversations import Conversation, ConversationDeletedResource
from openai.types.responses.response_input_item_param import ResponseInputItemParam

from bots.standins import openai_events as E
from bots.standins.http import JSON_BODY as _JSON, error as _err
from bots.standins.openai_script import input_items
from bots.standins.openai_storage import page, paged


# What POST /v1/conversations and …/items accept as items: the Responses API's input items (the spec's InputItem),
# so a response's own output items (messages, tool calls, reasoning) go in as they came out. Module level: see
# openai_server._REQUEST_ADAPTER.
_ITEMS_ADAPTER = TypeAdapter(list[ResponseInputItemParam])


def conversation_id(body: dict[str, Any]) -> str | None:
    """A request's `conversation`: an id, or an object with one."""
    conv_id = body.get("conversation")
    if isinstance(conv_id, dict):
        conv_id = conv_id.get("id")
    return conv_id


class ConversationRoutes:
    """The handlers; the state is FakeOpenAI's (conversations, conversation_items)."""

    conversations: dict[str, dict[str, Any]]
    conversation_items: dict[str, list[dict[str, Any]]]
    _pending_calls: dict[str, set[str]]
    _now: Callable[[], int]

    def _add_conversation_routes(self, r: web.UrlDispatcher) -> None:
        r.add_post("/v1/conversations", self._create_conversation)
        r.add_get("/v1/conversations/{cid}", self._get_conversation)
        r.add_post("/v1/conversations/{cid}", self._update_conversation)
        r.add_delete("/v1/conversations/{cid}", self._delete_conversation)
        r.add_post("/v1/conversations/{cid}/items", self._add_items)
        r.add_get("/v1/conversations/{cid}/items", self._list_items)

    def model_context(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """What the model reads for a request arriving now: the conversation's stored items, then its input.
        (Afterwards `contexts` keeps it per request: the conversation has grown by then.)"""
        conv_id = conversation_id(body)
        stored = list(self.conversation_items.get(conv_id, [])) if conv_id else []
        return stored + input_items(body)

    def _append_turn(self, conv_id: str, body: dict[str, Any], output: list[dict[str, Any]]) -> None:
        """With `conversation=`, the service appends the input items and the output items on completion."""
        items = self.conversation_items[conv_id]
        for item in input_items(body):
            items.append(self._as_item(item))
        for item in output:
            items.append(item)

    def _as_item(self, item: dict[str, Any]) -> dict[str, Any]:
        if item.get("type") == "function_call_output":
            return {"id": E.new_id("fco"), "type": "function_call_output", "call_id": item.get("call_id"),
                    "output": item.get("output"), "status": "completed"}
        if item.get("type", "message") == "message":
            content = item.get("content")
            if isinstance(content, str):
                content = [{"type": "input_text" if item.get("role") != "assistant" else "output_text",
                            "text": content}]
            return {"id": item.get("id") or E.new_id("msg"), "type": "message", "role": item.get("role", "user"),
                    "status": "completed", "content": content}
        return {"id": item.get("id") or E.new_id("item"), **item}

    async def _create_conversation(self, request: web.Request) -> web.Response:
        body = request[_JSON] or {}
        metadata = body.get("metadata") or {}
        if len(metadata) > 16 or any(len(k) > 64 or len(str(v)) > 512 for k, v in metadata.items()):
            return _err(400, "Invalid metadata: at most 16 pairs, keys up to 64 and values up to 512 characters.",
                        param="metadata")
        if (problem := self._check_items(body.get("items") or [])) is not None:
            return problem
        cid = E.new_id("conv")
        conv = E.dump(Conversation(id=cid, object="conversation", created_at=self._now(), metadata=metadata))
        self.conversations[cid] = conv
        self.conversation_items[cid] = []
        self._keep_items(cid, body.get("items") or [])
        return web.json_response(conv)

    def _check_items(self, items: Any) -> web.Response | None:
        if not isinstance(items, list):
            return _err(400, "Invalid type for 'items': expected an array.", param="items")
        if len(items) > 20:
            return _err(400, "At most 20 items can be added at once.", param="items")
        try:
            _ITEMS_ADAPTER.validate_python(items)
        except ValidationError as exc:
            first = exc.errors()[0]
            return _err(400, f"Invalid items: {'.'.join(map(str, first['loc']))}: {first['msg']}", param="items")
        return None

    def _keep_items(self, cid: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Appends items to a conversation; a function call among them waits for its output there (a response
        with `conversation=` may then send only the output), as one the model made in it would."""
        kept = [self._as_item(i) for i in items]
        self.conversation_items[cid] += kept
        calls = self._pending_calls.setdefault(cid, set())
        for item in kept:
            if item.get("type") == "function_call":
                calls.add(item.get("call_id"))
            elif item.get("type") == "function_call_output":
                calls.discard(item.get("call_id"))
        return kept

    def _conv_or_404(self, request: web.Request) -> tuple[str, web.Response | None]:
        cid = request.match_info["cid"]
        if cid not in self.conversations:
            return cid, _err(404, f"Conversation with id '{cid}' not found.")
        return cid, None

    async def _get_conversation(self, request: web.Request) -> web.Response:
        cid, missing = self._conv_or_404(request)
        return missing or web.json_response(self.conversations[cid])

    async def _update_conversation(self, request: web.Request) -> web.Response:
        cid, missing = self._conv_or_404(request)
        if missing:
            return missing
        self.conversations[cid] = dict(self.conversations[cid], metadata=(request[_JSON] or {}).get("metadata") or {})
        return web.json_response(self.conversations[cid])

    async def _delete_conversation(self, request: web.Request) -> web.Response:
        cid, missing = self._conv_or_404(request)
        if missing:
            return missing
        del self.conversations[cid]
        self.conversation_items.pop(cid, None)
        return web.json_response(E.dump(ConversationDeletedResource(id=cid, object="conversation.deleted",
                                                                    deleted=True)))

    async def _add_items(self, request: web.Request) -> web.Response:
        cid, missing = self._conv_or_404(request)
        if missing:
            return missing
        items = (request[_JSON] or {}).get("items") or []
        if (problem := self._check_items(items)) is not None:
            return problem
        return web.json_response(page(self._keep_items(cid, items)))

    async def _list_items(self, request: web.Request) -> web.Response:
        cid, missing = self._conv_or_404(request)
        if missing:
            return missing
        return web.json_response(paged(self.conversation_items[cid], request.query))
