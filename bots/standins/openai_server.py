"""A stand-in for the OpenAI API on 127.0.0.1, driven by the real AsyncOpenAI through base_url.

    async with FakeOpenAI() as fake:
        client = AsyncOpenAI(base_url=fake.base_url, api_key="sk-test")
        fake.script(ScriptedResponse(text="Hello there"))

Serves the Responses API (streamed and not) here; Conversations and their items in openai_conversations.py;
files, vector stores with their files and batches, and container files in openai_storage.py. What a test
scripts is openai_script.py (re-exported here); the event sequence of one answer is built in openai_answer.py
from the openai SDK's own types (openai_events.py). Every request is recorded in `fake.requests`.

What answers a /v1/responses request, in order: the `fake.script(...)` queue, then `fake.responder(body)`
(a pluggable "brain"), then the default policy: "You said: <last user text>", or "The tool returned:
<output>" when the request carries function_call_output items.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from typing import Any, Callable

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from openai.types.responses.response_create_params import ResponseCreateParamsBase, ResponseCreateParamsStreaming

from bots.standins.http import HttpFailure, RecordedRequest, RecordingServer, SseStream  # noqa: F401
from bots.standins.http import JSON_BODY as _JSON, consume as _consume, error as _err
from bots.standins.openai_answer import build_answer
from bots.standins.openai_conversations import ConversationRoutes, conversation_id
from bots.standins.openai_script import (CodeRun, DefaultUsage, FileSearchHit, FunctionCall,  # noqa: F401
                                         GeneratedFile, Responder, ScriptedResponse, WebSearch, WebSource,
                                         default_policy, input_items as _input_items, last_user_text)
from bots.standins.openai_storage import Container as _Container, StorageRoutes, StoredFile as _StoredFile, page, paged

# (HttpFailure, the scripted values and last_user_text are imported from here by tests and the bench.)

# Kept at module level: a TypeAdapter that is garbage-collected while its lazy validators are still being
# consumed makes pydantic-core panic.
_REQUEST_ADAPTER = TypeAdapter(ResponseCreateParamsStreaming)
_REQUEST_KEYS = frozenset(ResponseCreateParamsBase.__required_keys__ | ResponseCreateParamsBase.__optional_keys__
                          | {"stream"})


class FakeOpenAI(ConversationRoutes, StorageRoutes, RecordingServer):
    """`stateless=True`: a Responses server that keeps nothing (Ollama, vLLM, llama.cpp, OpenRouter): the
    Conversations, Files, Vector Stores and Containers routes answer 404, and a request asking for state
    (`previous_response_id`, `conversation`, `store: true`) or for a hosted tool answers 400."""

    def __init__(self, *, stateless: bool = False, api_key: str | None = None) -> None:
        super().__init__()
        self.stateless = stateless
        self.api_key = api_key        # stateless: the one key accepted (None: no key needed, like a local server)
        self.unsupported: set[str] = set()         # request parameters refused as unknown (an older server)
        self.responder: Responder | None = None
        self.usage = DefaultUsage()
        self.poll_steps = 1                       # vector store file retrievals that still say in_progress
        self.conversations: dict[str, dict[str, Any]] = {}
        self.conversation_items: dict[str, list[dict[str, Any]]] = {}
        self.files: dict[str, _StoredFile] = {}
        self.vector_stores: dict[str, dict[str, Any]] = {}
        self.vector_store_files: dict[str, dict[str, dict[str, Any]]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.containers: dict[str, _Container] = {}
        self.responses: dict[str, dict[str, Any]] = {}   # stored responses (`store` true, the API's default)
        self.response_inputs: dict[str, list[dict[str, Any]]] = {}   # their input items (GET …/input_items)
        self._response_of: dict[int, str] = {}   # id() of a recorded request body -> the response it got
        self.contexts: list[list[dict[str, Any]]] = []  # per /v1/responses request: what the model read
        # per streamed response, in order: "complete", "closed early" (the client hung up) or "cut" (scripted)
        self.stream_ends: list[str] = []
        self._queue: deque[ScriptedResponse] = deque()
        self._running: dict[str, int] = {}
        self.max_concurrent_per_conversation = 0
        self._failing_files: dict[str, tuple[str, str]] = {}
        self._polls: dict[tuple[str, str], int] = {}
        self._pending_calls: dict[str, set[str]] = {}   # conversation id -> call ids awaiting output

    # ---- lifecycle ----
    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self._middleware])
        app.router.add_post("/v1/responses", self._create_response)
        app.router.add_get("/v1/responses/{rid}", self._get_response)
        app.router.add_delete("/v1/responses/{rid}", self._delete_response)
        app.router.add_get("/v1/responses/{rid}/input_items", self._list_input_items)
        self._add_conversation_routes(app.router)
        self._add_storage_routes(app.router)
        return app

    # ---- test controls ----
    def script(self, *responses: ScriptedResponse) -> None:
        self._queue.extend(responses)

    def fail_next(self, status: int, *, times: int = 1, retry_after: str | None = None, message: str = "",
                  path: str = "/v1/responses") -> None:
        """The next `times` requests to `path` get an HTTP error (429 carries retry-after when given)."""
        self._failures.append([HttpFailure(status, times, retry_after, message, path), times])

    def fail_file(self, file_id: str, *, code: str = "unsupported_file",
                  message: str = "The file type is not supported.") -> None:
        """Vector-store processing of this file ends in status 'failed' with last_error."""
        self._failing_files[file_id] = (code, message)

    def expire_container(self, container_id: str) -> None:
        self.containers[container_id].expired = True

    def response_requests(self) -> list[dict[str, Any]]:
        """Bodies of every POST /v1/responses, in order."""
        return [r.body for r in self.requests if r.method == "POST" and r.path == "/v1/responses"]

    def conversation_of(self, body: dict[str, Any]) -> str | None:
        """The conversation a /v1/responses request belongs to: the one it names, or — a thread's first turn sent
        with `store: true` before its conversation existed — the conversation later made from its response's
        items (found by their ids). None: neither."""
        named = conversation_id(body)
        if named:
            return named
        rid = self._response_of.get(id(body))
        ids = {o.get("id") for o in (self.responses.get(rid) or {}).get("output") or ()} - {None}
        for cid, items in self.conversation_items.items():
            if ids & {i.get("id") for i in items}:
                return cid
        return None

    # ---- plumbing ----
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        body: Any = None
        ctype = request.headers.get("Content-Type", "")
        if request.can_read_body and "multipart/form-data" not in ctype:
            raw = await request.read()
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    self.requests.append(RecordedRequest(request.method, request.path, raw.decode(errors="replace")))
                    return _err(400, "We could not parse the JSON body of your request.")
        request[_JSON] = body
        self._record(request, body)
        if self.stateless and request.path.split("/")[2:3] in (["conversations"], ["files"], ["vector_stores"],
                                                                 ["containers"]):
            return web.json_response({"error": "404 page not found"}, status=404)
        if self.stateless:
            if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
                return _err(401, "Invalid API key.", code="invalid_api_key")
        elif not request.headers.get("Authorization", "").startswith("Bearer sk-"):
            return _err(401, "Incorrect API key provided.", code="invalid_api_key")
        if (failure := self._scripted_failure(request.path)) is not None:
            headers = {"retry-after": failure.retry_after} if failure.retry_after is not None else None
            if failure.status == 429:
                return _err(429, failure.message or "Rate limit reached for requests", type_="requests",
                            code="rate_limit_exceeded", headers=headers)
            return _err(failure.status, failure.message or "The server had an error while processing your request.",
                        type_="server_error", headers=headers)
        return await handler(request)

    def _now(self) -> int:
        return int(time.time())

    # ---- responses ----
    def _validate_response_request(self, body: Any) -> web.Response | None:
        if not isinstance(body, dict):
            return _err(400, "Request body must be a JSON object.")
        unknown = sorted(set(body) - (_REQUEST_KEYS - self.unsupported))
        if unknown:
            return _err(400, f"Unknown parameter: '{unknown[0]}'.", code="unknown_parameter", param=unknown[0])
        if "model" not in body:
            return _err(400, "Missing required parameter: 'model'.", code="missing_required_parameter", param="model")
        try:
            _consume(_REQUEST_ADAPTER.validate_python({**body, "stream": True}))
        except ValidationError as exc:
            first = exc.errors()[0]
            return _err(400, f"Invalid request: {'.'.join(map(str, first['loc']))}: {first['msg']}")
        if self.stateless:
            for key in ("previous_response_id", "conversation"):
                if body.get(key):
                    return _err(400, f"'{key}' is not supported: this server keeps no state.", param=key)
            if body.get("store", True) is not False:
                return _err(400, "'store' must be false: this server keeps no responses.", param="store")
            hosted = [t.get("type") for t in body.get("tools") or [] if t.get("type") != "function"]
            if hosted:
                return _err(400, f"tool type '{hosted[0]}' is not supported.", param="tools")
        if body.get("conversation") and body.get("previous_response_id"):
            return _err(400, "Cannot use both 'conversation' and 'previous_response_id'.", param="conversation")
        return None

    async def _create_response(self, request: web.Request) -> web.StreamResponse:
        body = request[_JSON]
        problem = self._validate_response_request(body)
        if problem is not None:
            return problem
        conv_id = conversation_id(body)
        if conv_id and conv_id not in self.conversations:
            return _err(404, f"Conversation with id '{conv_id}' not found.", param="conversation")
        # Like the service: every function_call_output must answer a call the conversation holds.
        outputs = [i for i in _input_items(body) if i.get("type") == "function_call_output"]
        pending = self._pending_calls.get(conv_id or "", set())
        for o in outputs:
            if conv_id and o.get("call_id") not in pending:
                return _err(400, f"No tool call found for function call output with call_id {o.get('call_id')}.",
                            param="input")
        # … and every call the conversation holds must have its output by now (sent here, or kept before): a
        # conversation left with a call and no output is refused on every request — "No tool output found".
        unanswered = sorted(pending - {o.get("call_id") for o in outputs}) if conv_id else []
        if unanswered:
            return _err(400, f"No tool output found for function call {unanswered[0]}.", param="input")
        if conv_id and outputs:
            self._pending_calls[conv_id] = pending - {o.get("call_id") for o in outputs}
        self.contexts.append(self.model_context(body))

        if self._queue:
            plan = self._queue.popleft()
        elif self.responder is not None:
            plan = self.responder(body)
        else:
            plan = default_policy(body)

        if body.get("stream"):
            # how many responses of one conversation ran at the same time (the service refuses a second one)
            self._running[conv_id or ""] = running = self._running.get(conv_id or "", 0) + 1
            self.max_concurrent_per_conversation = max(self.max_concurrent_per_conversation,
                                                       running if conv_id else 0)
            try:
                return await self._stream(request, body, plan, conv_id)
            finally:
                self._running[conv_id or ""] -= 1
        events, final = self._build(body, plan, conv_id)
        if plan.cut_after is not None:
            return _err(500, "The server had an error while processing your request.", type_="server_error")
        if final is None:
            err = next(e for e in events if e["type"] == "error")
            return _err(500, err["message"], type_="server_error", code=err.get("code"))
        return web.json_response(final)

    async def _get_response(self, request: web.Request) -> web.Response:
        rid = request.match_info["rid"]
        if rid not in self.responses:
            return _err(404, f"Response with id '{rid}' not found.")
        # Like the service: a code interpreter call's outputs and file search results come back only when
        # `include` asks for them (null otherwise); the SDK sends the list as include[]=….
        include = set(request.query.getall("include[]", [])) | set(request.query.getall("include", []))
        response = self.responses[rid]
        left_out = {"code_interpreter_call": ("outputs", "code_interpreter_call.outputs"),
                    "file_search_call": ("results", "file_search_call.results")}
        output = [{**item, left_out[item["type"]][0]: None}
                  if item.get("type") in left_out and left_out[item["type"]][1] not in include else item
                  for item in response.get("output") or []]
        return web.json_response({**response, "output": output})

    async def _delete_response(self, request: web.Request) -> web.Response:
        rid = request.match_info["rid"]
        if self.responses.pop(rid, None) is None:
            return _err(404, f"Response with id '{rid}' not found.")
        self.response_inputs.pop(rid, None)
        return web.json_response({"id": rid, "object": "response.deleted", "deleted": True})

    async def _list_input_items(self, request: web.Request) -> web.Response:
        """GET /v1/responses/{id}/input_items: the stored response's input, as items with ids (newest first
        unless `order=asc`), paged with `after` and `limit` like every list of the API."""
        rid = request.match_info["rid"]
        if rid not in self.responses:
            return _err(404, f"Response with id '{rid}' not found.")
        return web.json_response(paged(self.response_inputs.get(rid, []), request.query))

    def _build(self, body: dict[str, Any], plan: ScriptedResponse, conv_id: str | None
               ) -> tuple[list[Any], dict[str, Any] | None]:
        """The event sequence for one response (dicts, and ("delay", seconds) / ("hold", event) / ("cut", mode)
        markers) and the response object it ends with; what the service keeps of it is kept."""
        answer = build_answer(body, plan, usage=self.usage, now=self._now(), container_for=self._container_for)
        self._response_of[id(body)] = answer.rid
        if conv_id:
            self._pending_calls.setdefault(conv_id, set()).update(answer.call_ids)
        if answer.final is not None and body.get("store", True) is not False:   # like the service: kept unless
            self.responses[answer.rid] = answer.final                           # `store: false`
            self.response_inputs[answer.rid] = [self._as_item(i) for i in _input_items(body)]
            if conv_id and plan.fail is None:
                self._append_turn(conv_id, body, answer.output)
        return answer.events, answer.final

    async def _stream(self, request: web.Request, body: dict[str, Any], plan: ScriptedResponse,
                      conv_id: str | None) -> web.StreamResponse:
        events, _ = self._build(body, plan, conv_id)
        sse = SseStream(request)
        await sse.open()
        try:
            for ev in events:
                if isinstance(ev, tuple):
                    kind, arg = ev
                    if kind == "delay":
                        await asyncio.sleep(arg)
                        continue
                    if kind == "hold":
                        await arg.wait()
                        continue
                    if kind == "garbled":   # a data line no Responses event looks like, then the body ends
                        await sse.send(arg)
                        await sse.end()
                        self.stream_ends.append("garbled")
                        return sse.response
                    await sse.cut(arg)
                    self.stream_ends.append("cut")
                    return sse.response
                await sse.send(ev, event=ev["type"])
                self._sent(body, ev)
            await sse.end()
        except ConnectionResetError:
            # The client hung up before the end (a reader pressed Stop): what the real API sees as a
            # cancelled request.
            self.stream_ends.append("closed early")
            return sse.response
        except asyncio.CancelledError:
            self.stream_ends.append("closed early")
            raise
        self.stream_ends.append("complete")
        return sse.response

    def _sent(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        """Called after each streamed event reached the wire (the bench timestamps deltas here)."""
