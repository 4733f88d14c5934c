"""A stand-in for the OpenAI API on 127.0.0.1, driven by the real AsyncOpenAI through base_url.

    async with FakeOpenAI() as fake:
        client = AsyncOpenAI(base_url=fake.base_url, api_key="sk-test")
        fake.script(ScriptedResponse(text="Hello there"))

Serves the Responses API (streamed and not), Conversations and their items, files, vector stores with
their files and batches, and container files. Every object and stream event is built from the openai
SDK's own types (bots/standins/openai_events.py). Every request is recorded in `fake.requests`.

What answers a /v1/responses request, in order: the `fake.script(...)` queue, then `fake.responder(body)`
(a pluggable "brain"), then the default policy: "You said: <last user text>", or "The tool returned:
<output>" when the request carries function_call_output items.
"""
from __future__ import annotations

import asyncio
import base64
import itertools
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from openai.types import FileObject
from openai.types.conversations import Conversation, ConversationDeletedResource
from openai.types.containers.file_list_response import FileListResponse as ContainerFile
from openai.types.responses.response_create_params import ResponseCreateParamsBase, ResponseCreateParamsStreaming
from openai.types.vector_store import VectorStore
from openai.types.vector_stores import VectorStoreFile, VectorStoreFileBatch

from bots.standins import openai_events as E
from bots.standins.http import BACKLOG, HttpFailure, RecordedRequest, RecordingServer  # noqa: F401  (HttpFailure: re-exported)
from bots.standins.http import consume as _consume, error as _err

# Kept at module level: a TypeAdapter that is garbage-collected while its lazy validators are still being
# consumed makes pydantic-core panic.
_REQUEST_ADAPTER = TypeAdapter(ResponseCreateParamsStreaming)
_JSON = web.RequestKey("json", object)
_REQUEST_KEYS = frozenset(ResponseCreateParamsBase.__required_keys__ | ResponseCreateParamsBase.__optional_keys__
                          | {"stream"})


# ---- what a test scripts --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FunctionCall:
    name: str
    arguments: str = "{}"          # JSON text, as the model writes it
    call_id: str = ""              # generated when empty


@dataclass(frozen=True, slots=True)
class GeneratedFile:
    """A file the code interpreter writes; served at /v1/containers/{cid}/files/{fid}/content."""
    name: str
    data: bytes


@dataclass(frozen=True, slots=True)
class CodeRun:
    code: str
    logs: str | None = None
    file: GeneratedFile | None = None


@dataclass(frozen=True, slots=True)
class FileSearchHit:
    file_id: str
    filename: str
    text: str = "a matching passage"
    score: float = 0.9
    query: str = ""


@dataclass(frozen=True, slots=True)
class WebSource:
    """A page the web search found and the answer cites: `cites` is the passage of the text it backs."""
    title: str
    url: str
    cites: str = ""


@dataclass(frozen=True, slots=True)
class WebSearch:
    query: str
    sources: tuple[WebSource, ...] = ()


@dataclass(frozen=True, slots=True)
class ScriptedResponse:
    """One model answer. Everything optional; combine tool items with a text answer.

    text is streamed in deltas of `delta_size` characters (or split into `deltas` pieces), `first_delay`
    seconds before the first delta and `delay` between deltas.
    """
    text: str = ""
    delta_size: int = 8
    deltas: int | None = None
    delay: float = 0.0
    first_delay: float = 0.0
    function_calls: tuple[FunctionCall, ...] = ()
    code: CodeRun | None = None
    file_search: FileSearchHit | None = None
    web_search: WebSearch | None = None          # a web_search_call, and url_citation annotations on the text
    image_png: bytes | None = None
    refusal: str | None = None
    # endings
    fail: tuple[str, str] | None = None          # (code, message) -> response.failed
    error: tuple[str, str] | None = None         # (code, message) -> bare `error` event
    incomplete: str | None = None                # reason, e.g. "max_output_tokens" -> response.incomplete
    cut_after: int | None = None                 # close the connection after this many text deltas
    cut_mode: str = "abort"                      # "abort": TCP reset mid-body; "eof": clean end, no terminal event
    # usage numbers reported for this response (None: fake.usage defaults)
    input_tokens: int | None = None
    cached_tokens: int | None = None
    output_tokens: int | None = None

    def chunks(self, text: str) -> list[str]:
        if not text:
            return []
        if self.deltas:
            n = max(1, -(-len(text) // self.deltas))
        else:
            n = max(1, self.delta_size)
        return [text[i:i + n] for i in range(0, len(text), n)]


@dataclass(frozen=True, slots=True)
class DefaultUsage:
    input_tokens: int = 50
    cached_tokens: int = 0
    output_tokens: int | None = None             # None: one token per delta


Responder = Callable[[dict[str, Any]], ScriptedResponse]


# ---- state ----------------------------------------------------------------------------------------------


@dataclass
class _StoredFile:
    obj: dict[str, Any]
    data: bytes


@dataclass
class _Container:
    id: str
    files: dict[str, tuple[dict[str, Any], bytes]] = field(default_factory=dict)
    expired: bool = False


def default_policy(body: dict[str, Any]) -> ScriptedResponse:
    outputs = [i for i in _input_items(body) if i.get("type") == "function_call_output"]
    if outputs:
        return ScriptedResponse(text="The tool returned: " + " | ".join(_output_text(o.get("output")) for o in outputs))
    return ScriptedResponse(text="You said: " + last_user_text(body))


def _output_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return " ".join(p.get("text", "") for p in output if isinstance(p, dict))
    return str(output)


def _input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    inp = body.get("input")
    if isinstance(inp, str):
        return [{"type": "message", "role": "user", "content": inp}]
    return [i for i in (inp or []) if isinstance(i, dict)]


def last_user_text(body: dict[str, Any]) -> str:
    """The text of the last user message in a /v1/responses request body (for responders)."""
    for item in reversed(_input_items(body)):
        if item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                return content
            return " ".join(p.get("text", "") for p in content or [] if p.get("type") == "input_text")
    return ""


class FakeOpenAI(RecordingServer):
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
        self.responses: dict[str, dict[str, Any]] = {}
        self.contexts: list[list[dict[str, Any]]] = []  # per /v1/responses request: what the model read
        # per streamed response, in order: "complete", "closed early" (the client hung up) or "cut" (scripted)
        self.stream_ends: list[str] = []
        self._queue: deque[ScriptedResponse] = deque()
        self._running: dict[str, int] = {}
        self.max_concurrent_per_conversation = 0
        self._failing_files: dict[str, tuple[str, str]] = {}
        self._polls: dict[tuple[str, str], int] = {}
        self._pending_calls: dict[str, set[str]] = {}   # conversation id -> call ids awaiting output
        self._seq = itertools.count(1)

    # ---- lifecycle ----
    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self._middleware])
        r = app.router
        r.add_post("/v1/responses", self._create_response)
        r.add_get("/v1/responses/{rid}", self._get_response)
        r.add_post("/v1/conversations", self._create_conversation)
        r.add_get("/v1/conversations/{cid}", self._get_conversation)
        r.add_post("/v1/conversations/{cid}", self._update_conversation)
        r.add_delete("/v1/conversations/{cid}", self._delete_conversation)
        r.add_post("/v1/conversations/{cid}/items", self._add_items)
        r.add_get("/v1/conversations/{cid}/items", self._list_items)
        r.add_post("/v1/files", self._upload_file)
        r.add_get("/v1/files", self._list_files)
        r.add_get("/v1/files/{fid}", self._get_file)
        r.add_delete("/v1/files/{fid}", self._delete_file)
        r.add_get("/v1/files/{fid}/content", self._file_content)
        r.add_post("/v1/vector_stores", self._create_vs)
        r.add_get("/v1/vector_stores", self._list_vs)
        r.add_get("/v1/vector_stores/{vid}", self._get_vs)
        r.add_delete("/v1/vector_stores/{vid}", self._delete_vs)
        r.add_post("/v1/vector_stores/{vid}/files", self._add_vs_file)
        r.add_get("/v1/vector_stores/{vid}/files", self._list_vs_files)
        r.add_get("/v1/vector_stores/{vid}/files/{fid}", self._get_vs_file)
        r.add_delete("/v1/vector_stores/{vid}/files/{fid}", self._delete_vs_file)
        r.add_post("/v1/vector_stores/{vid}/file_batches", self._create_batch)
        r.add_get("/v1/vector_stores/{vid}/file_batches/{bid}", self._get_batch)
        r.add_get("/v1/vector_stores/{vid}/file_batches/{bid}/files", self._list_batch_files)
        r.add_get("/v1/containers/{cid}/files", self._list_container_files)
        r.add_get("/v1/containers/{cid}/files/{fid}", self._get_container_file)
        r.add_get("/v1/containers/{cid}/files/{fid}/content", self._container_file_content)
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

    def model_context(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """What the model reads for a request arriving now: the conversation's stored items, then its input.
        (Afterwards `contexts` keeps it per request: the conversation has grown by then.)"""
        conv_id = body.get("conversation")
        if isinstance(conv_id, dict):
            conv_id = conv_id.get("id")
        stored = list(self.conversation_items.get(conv_id, [])) if conv_id else []
        return stored + _input_items(body)

    def response_requests(self) -> list[dict[str, Any]]:
        """Bodies of every POST /v1/responses, in order."""
        return [r.body for r in self.requests if r.method == "POST" and r.path == "/v1/responses"]

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
        conv_id = body.get("conversation")
        if isinstance(conv_id, dict):
            conv_id = conv_id.get("id")
        if conv_id and conv_id not in self.conversations:
            return _err(404, f"Conversation with id '{conv_id}' not found.", param="conversation")
        # Like the service: every function_call_output must answer a call the conversation holds.
        outputs = [i for i in _input_items(body) if i.get("type") == "function_call_output"]
        pending = self._pending_calls.get(conv_id or "", set())
        for o in outputs:
            if conv_id and o.get("call_id") not in pending:
                return _err(400, f"No tool call found for function call output with call_id {o.get('call_id')}.",
                            param="input")
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
        return web.json_response(self.responses[rid])

    def _build(self, body: dict[str, Any], plan: ScriptedResponse, conv_id: str | None
               ) -> tuple[list[Any], dict[str, Any] | None]:
        """The event sequence for one response: dicts, and ("delay", seconds) / ("cut", mode) markers."""
        w = E.EventWriter()
        rid = E.new_id("resp")
        created = self._now()
        events: list[Any] = []
        base = E.response_object(rid=rid, request=body, status="in_progress", output=[], created_at=created)
        events.append(E.lifecycle(w, "created", base))
        events.append(E.lifecycle(w, "in_progress", base))
        output: list[dict[str, Any]] = []
        annotations: list[dict[str, Any]] = []
        n_deltas = 0

        for call in plan.function_calls:
            call_id = call.call_id or E.new_id("call")
            ev, item = E.function_call_events(w, output_index=len(output), name=call.name, arguments=call.arguments,
                                              call_id=call_id)
            events += ev
            output.append(item)
            if conv_id:
                self._pending_calls.setdefault(conv_id, set()).add(call_id)
        if plan.file_search is not None:
            hit = plan.file_search
            ev, item = E.file_search_events(
                w, output_index=len(output), queries=[hit.query or last_user_text(body)],
                results=[{"file_id": hit.file_id, "filename": hit.filename, "score": hit.score, "text": hit.text,
                          "attributes": {}}])
            events += ev
            output.append(item)
        if plan.web_search is not None:
            ev, item = E.web_search_events(w, output_index=len(output), query=plan.web_search.query,
                                           urls=[src.url for src in plan.web_search.sources])
            events += ev
            output.append(item)
            for src in plan.web_search.sources:
                # Like the service: the citation spans the passage it backs (start/end index in the text).
                start = plan.text.find(src.cites) if src.cites else -1
                start, end = (start, start + len(src.cites)) if start >= 0 else (len(plan.text), len(plan.text))
                annotations.append({"type": "url_citation", "url": src.url, "title": src.title,
                                    "start_index": start, "end_index": end})
        if plan.code is not None:
            container = self._container_for(body)
            ev, item = E.code_interpreter_events(w, output_index=len(output), container_id=container.id,
                                                 code=plan.code.code, logs=plan.code.logs)
            events += ev
            output.append(item)
            if plan.code.file is not None:
                cfid = E.new_id("cfile")
                path = f"/mnt/data/{plan.code.file.name}"
                obj = E.dump(ContainerFile(id=cfid, object="container.file", bytes=len(plan.code.file.data),
                                           container_id=container.id, created_at=self._now(), path=path,
                                           source="assistant"))
                container.files[cfid] = (obj, plan.code.file.data)
                # Like the service: the citation spans the Markdown link to the file's sandbox path, when the
                # text has one ([Download the chart](sandbox:/mnt/data/chart.png)).
                at = plan.text.find(f"(sandbox:{path})")
                start = plan.text.rfind("[", 0, at) if at >= 0 else -1
                span = (start, at + len(f"(sandbox:{path})")) if start >= 0 else (len(plan.text), len(plan.text))
                annotations.append({"type": "container_file_citation", "container_id": container.id,
                                    "file_id": cfid, "filename": plan.code.file.name,
                                    "start_index": span[0], "end_index": span[1]})
        if plan.image_png is not None:
            ev, item = E.image_generation_events(w, output_index=len(output),
                                                 b64=base64.b64encode(plan.image_png).decode())
            events += ev
            output.append(item)
        if plan.file_search is not None and plan.text:
            annotations.append({"type": "file_citation", "file_id": plan.file_search.file_id,
                                "filename": plan.file_search.filename, "index": len(plan.text)})

        has_message = bool(plan.text) or plan.refusal is not None
        if has_message:
            text = plan.refusal if plan.refusal is not None else plan.text
            chunks = plan.chunks(text)
            head, deltas, tail = E.message_events(w, output_index=len(output), text=plan.text, chunks=chunks,
                                                  annotations=annotations, refusal=plan.refusal)
            events += head
            if plan.first_delay:
                events.append(("delay", plan.first_delay))
            for i, d in enumerate(deltas):
                if plan.cut_after is not None and i == plan.cut_after:
                    events.append(("cut", plan.cut_mode))
                    return events, None
                if i and plan.delay:
                    events.append(("delay", plan.delay))
                events.append(d)
                n_deltas += 1
            if plan.incomplete is None:
                events += tail["events"]
                output.append(tail["item"])
            else:
                # The answer stops where the limit hit: the parts close, the message item is "incomplete".
                item = dict(tail["item"], status="incomplete")
                events += tail["events"][:-1] + [dict(tail["events"][-1], item=item)]
                output.append(item)
        if plan.cut_after is not None:
            events.append(("cut", plan.cut_mode))
            return events, None

        u = E.usage(plan.input_tokens if plan.input_tokens is not None else self.usage.input_tokens,
                    plan.cached_tokens if plan.cached_tokens is not None else self.usage.cached_tokens,
                    plan.output_tokens if plan.output_tokens is not None else
                    (self.usage.output_tokens if self.usage.output_tokens is not None else max(1, n_deltas)))
        if plan.error is not None:
            events.append(E.error_event(w, code=plan.error[0], message=plan.error[1]))
            return events, None
        if plan.fail is not None:
            final = E.response_object(rid=rid, request=body, status="failed", output=output, usage_=u,
                                      error={"code": plan.fail[0], "message": plan.fail[1]}, created_at=created)
            events.append(E.lifecycle(w, "failed", final))
        elif plan.incomplete is not None:
            final = E.response_object(rid=rid, request=body, status="incomplete", output=output, usage_=u,
                                      incomplete_reason=plan.incomplete, created_at=created)
            events.append(E.lifecycle(w, "incomplete", final))
        else:
            final = E.response_object(rid=rid, request=body, status="completed", output=output, usage_=u,
                                      created_at=created)
            events.append(E.lifecycle(w, "completed", final))
        final_json = E.dump(final)
        self.responses[rid] = final_json
        if conv_id and plan.fail is None:
            self._append_turn(conv_id, body, output)
        return events, final_json

    async def _stream(self, request: web.Request, body: dict[str, Any], plan: ScriptedResponse,
                      conv_id: str | None) -> web.StreamResponse:
        events, _ = self._build(body, plan, conv_id)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        try:
            for ev in events:
                if isinstance(ev, tuple):
                    kind, arg = ev
                    if kind == "delay":
                        await asyncio.sleep(arg)
                        continue
                    # cut: "abort" drops the TCP connection mid-body (the client sees an incomplete chunked
                    # read); "eof" ends the body cleanly but without any terminal event.
                    if arg == "eof":
                        await resp.write_eof()
                    else:
                        assert request.transport is not None
                        request.transport.abort()
                    self.stream_ends.append("cut")
                    return resp
                await resp.write(E.sse(ev))
                self._sent(body, ev)
            await resp.write_eof()
        except ConnectionResetError:
            # The client hung up before the end (a reader pressed Stop): what the real API sees as a
            # cancelled request.
            self.stream_ends.append("closed early")
            return resp
        except asyncio.CancelledError:
            self.stream_ends.append("closed early")
            raise
        self.stream_ends.append("complete")
        return resp

    def _sent(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        """Called after each streamed event reached the wire (the bench timestamps deltas here)."""

    def _container_for(self, body: dict[str, Any]) -> _Container:
        tool = next((t for t in body.get("tools") or [] if t.get("type") == "code_interpreter"), None)
        spec = (tool or {}).get("container")
        if isinstance(spec, str) and spec in self.containers:
            return self.containers[spec]
        container = _Container(id=E.new_id("cntr"))
        self.containers[container.id] = container
        for fid in (spec or {}).get("file_ids", []) if isinstance(spec, dict) else []:
            stored = self.files.get(fid)
            if stored is None:
                continue
            cfid = E.new_id("cfile")
            obj = E.dump(ContainerFile(id=cfid, object="container.file", bytes=len(stored.data),
                                       container_id=container.id, created_at=self._now(),
                                       path=f"/mnt/data/{stored.obj['filename']}", source="user"))
            container.files[cfid] = (obj, stored.data)
        return container

    def _append_turn(self, conv_id: str, body: dict[str, Any], output: list[dict[str, Any]]) -> None:
        """With `conversation=`, the service appends the input items and the output items on completion."""
        items = self.conversation_items[conv_id]
        for item in _input_items(body):
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

    # ---- conversations ----
    async def _create_conversation(self, request: web.Request) -> web.Response:
        body = request[_JSON] or {}
        metadata = body.get("metadata") or {}
        if len(metadata) > 16 or any(len(k) > 64 or len(str(v)) > 512 for k, v in metadata.items()):
            return _err(400, "Invalid metadata: at most 16 pairs, keys up to 64 and values up to 512 characters.",
                        param="metadata")
        if len(body.get("items") or []) > 20:
            return _err(400, "At most 20 items can be added at once.", param="items")
        cid = E.new_id("conv")
        conv = E.dump(Conversation(id=cid, object="conversation", created_at=self._now(), metadata=metadata))
        self.conversations[cid] = conv
        self.conversation_items[cid] = [self._as_item(i) for i in body.get("items") or []]
        return web.json_response(conv)

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
        items = [self._as_item(i) for i in (request[_JSON] or {}).get("items") or []]
        if len(items) > 20:
            return _err(400, "At most 20 items can be added at once.", param="items")
        self.conversation_items[cid] += items
        return web.json_response(self._page(items))

    async def _list_items(self, request: web.Request) -> web.Response:
        cid, missing = self._conv_or_404(request)
        if missing:
            return missing
        items = list(self.conversation_items[cid])
        if request.query.get("order", "desc") == "desc":
            items.reverse()
        after = request.query.get("after")
        if after:
            ids = [i["id"] for i in items]
            items = items[ids.index(after) + 1:] if after in ids else []
        limit = int(request.query.get("limit", "20"))
        return web.json_response(self._page(items[:limit], has_more=len(items) > limit))

    @staticmethod
    def _page(data: list[dict[str, Any]], has_more: bool = False) -> dict[str, Any]:
        return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None, "has_more": has_more}

    # ---- files ----
    async def _upload_file(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form.get("file")
        purpose = str(form.get("purpose", ""))
        self.requests[-1] = RecordedRequest(request.method, request.path,
                                            {"purpose": purpose, "filename": getattr(upload, "filename", None)})
        if upload is None or not hasattr(upload, "file"):
            return _err(400, "Missing required parameter: 'file'.", param="file")
        if purpose not in {"assistants", "batch", "fine-tune", "vision", "user_data", "evals"}:
            return _err(400, f"Invalid value for 'purpose': '{purpose}'.", param="purpose")
        data = upload.file.read()
        fid = E.new_id("file")
        obj = E.dump(FileObject(id=fid, object="file", bytes=len(data), created_at=self._now(),
                                filename=upload.filename, purpose=purpose, status="processed"))
        self.files[fid] = _StoredFile(obj, data)
        return web.json_response(obj)

    async def _list_files(self, request: web.Request) -> web.Response:
        data = [f.obj for f in self.files.values()]
        return web.json_response(self._page(data))

    def _file_or_404(self, request: web.Request) -> tuple[str, web.Response | None]:
        fid = request.match_info["fid"]
        if fid not in self.files:
            return fid, _err(404, f"No such File object: {fid}", param="id")
        return fid, None

    async def _get_file(self, request: web.Request) -> web.Response:
        fid, missing = self._file_or_404(request)
        return missing or web.json_response(self.files[fid].obj)

    async def _delete_file(self, request: web.Request) -> web.Response:
        fid, missing = self._file_or_404(request)
        if missing:
            return missing
        del self.files[fid]
        return web.json_response({"id": fid, "object": "file", "deleted": True})

    async def _file_content(self, request: web.Request) -> web.Response:
        fid, missing = self._file_or_404(request)
        return missing or web.Response(body=self.files[fid].data, content_type="application/octet-stream")

    # ---- vector stores ----
    async def _create_vs(self, request: web.Request) -> web.Response:
        body = request[_JSON] or {}
        vid = E.new_id("vs")
        obj = E.dump(VectorStore(id=vid, object="vector_store", created_at=self._now(), name=body.get("name") or "",
                                 metadata=body.get("metadata") or {}, status="completed", usage_bytes=0,
                                 last_active_at=self._now(), expires_at=None,
                                 **({"expires_after": body["expires_after"]} if body.get("expires_after") else {}),
                                 file_counts={"cancelled": 0, "completed": 0, "failed": 0, "in_progress": 0,
                                              "total": 0}))
        self.vector_stores[vid] = obj
        self.vector_store_files[vid] = {}
        for fid in body.get("file_ids") or []:
            self._attach(vid, fid, {})
        return web.json_response(self._vs(vid))

    def _vs(self, vid: str) -> dict[str, Any]:
        files = self.vector_store_files[vid].values()
        counts = {s: sum(1 for f in files if f["status"] == s) for s in ("cancelled", "completed", "failed",
                                                                          "in_progress")}
        counts["total"] = len(files)
        # Like the real service: a store's size is what its processed files take up.
        used = sum(f.get("usage_bytes") or 0 for f in files if f["status"] == "completed")
        return dict(self.vector_stores[vid], file_counts=counts, usage_bytes=used)

    def _vs_or_404(self, request: web.Request) -> tuple[str, web.Response | None]:
        vid = request.match_info["vid"]
        if vid not in self.vector_stores:
            return vid, _err(404, f"No vector store found with id '{vid}'.")
        return vid, None

    async def _list_vs(self, request: web.Request) -> web.Response:
        return web.json_response(self._page([self._vs(v) for v in self.vector_stores]))

    async def _get_vs(self, request: web.Request) -> web.Response:
        vid, missing = self._vs_or_404(request)
        return missing or web.json_response(self._vs(vid))

    async def _delete_vs(self, request: web.Request) -> web.Response:
        vid, missing = self._vs_or_404(request)
        if missing:
            return missing
        del self.vector_stores[vid]
        del self.vector_store_files[vid]
        return web.json_response({"id": vid, "object": "vector_store.deleted", "deleted": True})

    def _attach(self, vid: str, fid: str, attributes: dict[str, Any]) -> dict[str, Any]:
        obj = E.dump(VectorStoreFile(id=fid, object="vector_store.file", created_at=self._now(),
                                     vector_store_id=vid, status="in_progress", last_error=None,
                                     usage_bytes=0, attributes=attributes or None))
        self.vector_store_files[vid][fid] = obj
        self._polls[(vid, fid)] = 0
        return obj

    def _advance(self, vid: str, fid: str) -> dict[str, Any]:
        """Files report in_progress for `poll_steps` retrievals, then completed (or failed, see fail_file)."""
        obj = self.vector_store_files[vid][fid]
        if obj["status"] == "in_progress":
            self._polls[(vid, fid)] += 1
            if self._polls[(vid, fid)] > self.poll_steps:
                if fid in self._failing_files:
                    code, message = self._failing_files[fid]
                    obj = dict(obj, status="failed", last_error={"code": code, "message": message})
                else:
                    size = len(self.files[fid].data) if fid in self.files else 0
                    obj = dict(obj, status="completed", usage_bytes=size)
                self.vector_store_files[vid][fid] = obj
        return obj

    async def _add_vs_file(self, request: web.Request) -> web.Response:
        vid, missing = self._vs_or_404(request)
        if missing:
            return missing
        body = request[_JSON] or {}
        fid = body.get("file_id")
        if fid not in self.files:
            return _err(404, f"No such File object: {fid}", param="file_id")
        return web.json_response(self._attach(vid, fid, body.get("attributes") or {}), headers=self._poll_headers())

    @staticmethod
    def _poll_headers() -> dict[str, str]:
        # The SDK's pollers sleep for openai-poll-after-ms between retrievals (default 1 s): keep tests fast.
        return {"openai-poll-after-ms": "5"}

    async def _get_vs_file(self, request: web.Request) -> web.Response:
        vid, missing = self._vs_or_404(request)
        if missing:
            return missing
        fid = request.match_info["fid"]
        if fid not in self.vector_store_files[vid]:
            return _err(404, f"No file found with id '{fid}' in vector store '{vid}'.")
        return web.json_response(self._advance(vid, fid), headers=self._poll_headers())

    async def _list_vs_files(self, request: web.Request) -> web.Response:
        vid, missing = self._vs_or_404(request)
        if missing:
            return missing
        data = [self._advance(vid, f) for f in list(self.vector_store_files[vid])]
        status = request.query.get("filter")
        if status:
            data = [d for d in data if d["status"] == status]
        return web.json_response(self._page(data))

    async def _delete_vs_file(self, request: web.Request) -> web.Response:
        vid, missing = self._vs_or_404(request)
        if missing:
            return missing
        fid = request.match_info["fid"]
        self.vector_store_files[vid].pop(fid, None)
        return web.json_response({"id": fid, "object": "vector_store.file.deleted", "deleted": True})

    async def _create_batch(self, request: web.Request) -> web.Response:
        vid, missing = self._vs_or_404(request)
        if missing:
            return missing
        body = request[_JSON] or {}
        entries = [{"file_id": f} for f in body.get("file_ids") or []] + list(body.get("files") or [])
        for e in entries:
            if e.get("file_id") not in self.files:
                return _err(404, f"No such File object: {e.get('file_id')}", param="file_ids")
        for e in entries:
            self._attach(vid, e["file_id"], e.get("attributes") or body.get("attributes") or {})
        bid = E.new_id("vsfb")
        self.batches[bid] = {"id": bid, "vector_store_id": vid, "file_ids": [e["file_id"] for e in entries],
                             "created_at": self._now()}
        return web.json_response(self._batch(bid), headers=self._poll_headers())

    def _batch(self, bid: str) -> dict[str, Any]:
        b = self.batches[bid]
        files = [self._advance(b["vector_store_id"], f) for f in b["file_ids"]]
        counts = {s: sum(1 for f in files if f["status"] == s) for s in ("cancelled", "completed", "failed",
                                                                          "in_progress")}
        counts["total"] = len(files)
        status = "in_progress" if counts["in_progress"] else ("failed" if counts["failed"] == len(files) and files
                                                              else "completed")
        return E.dump(VectorStoreFileBatch(id=bid, object="vector_store.files_batch", created_at=b["created_at"],
                                           vector_store_id=b["vector_store_id"], status=status, file_counts=counts))

    def _batch_or_404(self, request: web.Request) -> tuple[str, web.Response | None]:
        bid = request.match_info["bid"]
        if bid not in self.batches:
            return bid, _err(404, f"No file batch found with id '{bid}'.")
        return bid, None

    async def _get_batch(self, request: web.Request) -> web.Response:
        bid, missing = self._batch_or_404(request)
        return missing or web.json_response(self._batch(bid), headers=self._poll_headers())

    async def _list_batch_files(self, request: web.Request) -> web.Response:
        bid, missing = self._batch_or_404(request)
        if missing:
            return missing
        b = self.batches[bid]
        data = [self.vector_store_files[b["vector_store_id"]][f] for f in b["file_ids"]
                if f in self.vector_store_files.get(b["vector_store_id"], {})]
        status = request.query.get("filter")
        if status:
            data = [d for d in data if d["status"] == status]
        return web.json_response(self._page(data))

    # ---- containers ----
    def _container_or_404(self, request: web.Request) -> tuple[_Container | None, web.Response | None]:
        cid = request.match_info["cid"]
        c = self.containers.get(cid)
        if c is None or c.expired:
            # Containers expire after ~20 minutes idle; their files are gone with them.
            return None, _err(404, f"Container with id '{cid}' not found.", code="container_expired" if c else None)
        return c, None

    async def _list_container_files(self, request: web.Request) -> web.Response:
        c, missing = self._container_or_404(request)
        if missing:
            return missing
        return web.json_response(self._page([obj for obj, _ in c.files.values()]))

    async def _get_container_file(self, request: web.Request) -> web.Response:
        c, missing = self._container_or_404(request)
        if missing:
            return missing
        fid = request.match_info["fid"]
        if fid not in c.files:
            return _err(404, f"File '{fid}' not found in container.")
        return web.json_response(c.files[fid][0])

    async def _container_file_content(self, request: web.Request) -> web.Response:
        c, missing = self._container_or_404(request)
        if missing:
            return missing
        fid = request.match_info["fid"]
        if fid not in c.files:
            return _err(404, f"File '{fid}' not found in container.")
        return web.Response(body=c.files[fid][1], content_type="application/octet-stream")
