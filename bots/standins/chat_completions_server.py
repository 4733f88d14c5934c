"""A stand-in Chat Completions server (any OpenAI-compatible one: vLLM, llama.cpp, Ollama, Gemini's, …) on 127.0.0.1.

    async with FakeChatCompletions() as fake:
        client = AsyncOpenAI(base_url=fake.base_url, api_key="k")
        fake.script(ScriptedResponse(text="Hello there"))

Serves POST /v1/chat/completions, streamed (SSE chunks ending with `data: [DONE]`) and not. Requests are
checked against the openai SDK's own request type (CompletionCreateParams, plus a check for unknown top-level
keys, which TypedDicts ignore) and every chunk is built from the SDK's ChatCompletionChunk model. Like a
compatible server it keeps no state: what the model knows is the `messages` of each request, recorded in
`contexts`. Scripting reuses the Responses stand-in's ScriptedResponse (text, function_calls, delays, cuts,
failures, usage). With `api_key` set, requests without `Authorization: Bearer <api_key>` get 401.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from typing import Any, Callable

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.chat.completion_create_params import CompletionCreateParamsBase, CompletionCreateParamsStreaming
from openai.types.completion_usage import CompletionUsage

from bots.standins import openai_events as E
from bots.standins.http import HttpFailure, RecordedRequest, RecordingServer, SseStream, consume, error
from bots.standins.openai_script import ScriptedResponse

_REQUEST_ADAPTER = TypeAdapter(CompletionCreateParamsStreaming)   # module level: see openai_server.py
_REQUEST_KEYS = frozenset(CompletionCreateParamsBase.__required_keys__ | CompletionCreateParamsBase.__optional_keys__
                          | {"stream"})

Responder = Callable[[dict[str, Any]], ScriptedResponse]


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return " ".join(p.get("text", "") for p in content or [] if isinstance(p, dict) and p.get("type") == "text")


def default_policy(body: dict[str, Any]) -> ScriptedResponse:
    msgs = body.get("messages") or []
    last_assistant = max((i for i, m in enumerate(msgs) if m.get("role") == "assistant"), default=-1)
    outputs = [m for m in msgs[last_assistant + 1:] if m.get("role") == "tool"]
    if outputs:
        return ScriptedResponse(text="The tool returned: " + " | ".join(message_text(o) for o in outputs))
    users = [m for m in msgs if m.get("role") == "user"]
    return ScriptedResponse(text="You said: " + (message_text(users[-1]) if users else ""))


class FakeChatCompletions(RecordingServer):
    def __init__(self, *, api_key: str | None = None, model_name: str | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.contexts: list[list[dict[str, Any]]] = []       # per completion request: its messages
        self.responder: Responder | None = None
        self._queue: deque[ScriptedResponse] = deque()
        self._n = 0

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._completions)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        return app

    def script(self, *responses: ScriptedResponse) -> None:
        self._queue.extend(responses)

    def fail_next(self, status: int, *, times: int = 1, retry_after: str | None = None, message: str = "") -> None:
        self._failures.append([HttpFailure(status, times, retry_after, message, "/v1/chat/completions"), times])

    def completion_requests(self) -> list[dict[str, Any]]:
        return [r.body for r in self.requests if r.path == "/v1/chat/completions"]

    # ---- handlers ----
    async def _not_found(self, request: web.Request) -> web.Response:
        self.requests.append(RecordedRequest(request.method, request.path, None))
        return web.json_response({"error": {"message": "Not Found", "type": "invalid_request_error",
                                            "param": None, "code": None}}, status=404)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            return error(400, "We could not parse the JSON body of your request.")
        self._record(request, body)
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return error(401, "Invalid API key.", code="invalid_api_key")
        if (failure := self._scripted_failure(request.path)) is not None:
            headers = {"retry-after": failure.retry_after} if failure.retry_after is not None else None
            return error(failure.status, failure.message or "Internal server error", type_="server_error",
                         headers=headers)
        problem = self._validate(body)
        if problem is not None:
            return problem
        self.contexts.append(list(body["messages"]))
        if self._queue:
            plan = self._queue.popleft()
        elif self.responder is not None:
            plan = self.responder(body)
        else:
            plan = default_policy(body)
        if body.get("stream"):
            return await self._stream(request, body, plan)
        return web.json_response(self._whole(body, plan))

    def _validate(self, body: Any) -> web.Response | None:
        if not isinstance(body, dict):
            return error(400, "Request body must be a JSON object.")
        unknown = sorted(set(body) - _REQUEST_KEYS)
        if unknown:
            return error(400, f"Unknown parameter: '{unknown[0]}'.", code="unknown_parameter", param=unknown[0])
        for key in ("model", "messages"):
            if key not in body:
                return error(400, f"Missing required parameter: '{key}'.", param=key)
        if not body["messages"]:
            return error(400, "'messages' must not be empty.", param="messages")
        try:
            consume(_REQUEST_ADAPTER.validate_python({**body, "stream": True}))
        except ValidationError as exc:
            first = exc.errors()[0]
            return error(400, f"Invalid request: {'.'.join(map(str, first['loc']))}: {first['msg']}")
        # What servers check beyond the types: each tool message answers a call of the assistant before it.
        open_calls: set[str] = set()
        for msg in body["messages"]:
            if msg.get("role") == "assistant":
                open_calls = {c["id"] for c in msg.get("tool_calls") or []}
            elif msg.get("role") == "tool":
                if msg.get("tool_call_id") not in open_calls:
                    return error(400, f"tool message {msg.get('tool_call_id')!r} answers no tool call", param="messages")
        return None

    def _chunk(self, body: dict[str, Any], cid: str, delta: dict[str, Any], finish: str | None = None,
               usage: CompletionUsage | None = None, choices: bool = True) -> dict[str, Any]:
        chunk = ChatCompletionChunk(
            id=cid, object="chat.completion.chunk", created=int(time.time()), model=body["model"],
            choices=[{"index": 0, "delta": delta, "finish_reason": finish}] if choices else [],
            usage=usage)
        return E.dump(chunk)

    def _usage(self, plan: ScriptedResponse, n_deltas: int) -> CompletionUsage:
        prompt = plan.input_tokens if plan.input_tokens is not None else 50
        completion = plan.output_tokens if plan.output_tokens is not None else max(1, n_deltas)
        return CompletionUsage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion,
                               prompt_tokens_details={"cached_tokens": plan.cached_tokens or 0})

    async def _stream(self, request: web.Request, body: dict[str, Any], plan: ScriptedResponse) -> web.StreamResponse:
        self._n += 1
        cid = f"chatcmpl-{self._n:06d}"
        sse = SseStream(request)
        await sse.open()
        await sse.send(self._chunk(body, cid, {"role": "assistant", "content": ""}))
        if plan.first_delay:
            await asyncio.sleep(plan.first_delay)
        text = plan.refusal if plan.refusal is not None else plan.text
        n = 0
        for i, piece in enumerate(plan.chunks(text)):
            if plan.cut_after is not None and i == plan.cut_after:
                return await sse.cut(plan.cut_mode)
            if i and plan.delay:
                await asyncio.sleep(plan.delay)
            await sse.send(self._chunk(body, cid, {"content": piece}))
            n += 1
        if plan.cut_after is not None:
            return await sse.cut(plan.cut_mode)
        for index, call in enumerate(plan.function_calls):
            call_id = call.call_id or f"call_{self._n}_{index}"
            # the id and name first, then the arguments in pieces, as OpenAI and vLLM stream them
            await sse.send(self._chunk(body, cid, {"tool_calls": [
                {"index": index, "id": call_id, "type": "function",
                 "function": {"name": call.name, "arguments": ""}}]}))
            args = call.arguments
            for start in range(0, len(args), 5):
                await sse.send(self._chunk(body, cid, {"tool_calls": [
                    {"index": index, "function": {"arguments": args[start:start + 5]}}]}))
        if plan.error is not None or plan.fail is not None:
            code, message = plan.error or plan.fail  # type: ignore[misc]
            await sse.send({"error": {"message": message, "type": "server_error", "code": code}})
            return await sse.end()
        finish = ("length" if plan.incomplete == "max_output_tokens" else plan.incomplete) if plan.incomplete else \
            ("tool_calls" if plan.function_calls else "stop")
        await sse.send(self._chunk(body, cid, {}, finish=finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            await sse.send(self._chunk(body, cid, {}, usage=self._usage(plan, n), choices=False))
        await sse.send("[DONE]")
        return await sse.end()

    def _whole(self, body: dict[str, Any], plan: ScriptedResponse) -> dict[str, Any]:
        self._n += 1
        message: dict[str, Any] = {"role": "assistant", "content": plan.text or None}
        if plan.function_calls:
            message["tool_calls"] = [{"id": c.call_id or f"call_{self._n}_{i}", "type": "function",
                                      "function": {"name": c.name, "arguments": c.arguments}}
                                     for i, c in enumerate(plan.function_calls)]
        completion = ChatCompletion(
            id=f"chatcmpl-{self._n:06d}", object="chat.completion", created=int(time.time()), model=body["model"],
            choices=[{"index": 0, "message": message,
                      "finish_reason": "tool_calls" if plan.function_calls else "stop"}],
            usage=self._usage(plan, len(plan.chunks(plan.text))))
        return E.dump(completion)
