"""OpenAI backend: Responses API streamed with `conversation=`, hosted tools, our function-call loop.

Text deltas are the hot path: the SDK's typed stream builds a pydantic model per event, which costs
more CPU than everything else in a reply. We read the raw SSE body instead and handle
`response.output_text.delta` with json.loads + dict access; every other (rare) event is validated
into the SDK's own types so the tool/annotation/terminal handling stays type-checked.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import mimetypes
import os
import random
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from time import time as _now
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, Protocol, get_args

import httpx2
import openai
from openai import AsyncOpenAI, DefaultAioHttpClient
from pydantic import ValidationError
from openai.types.responses import (
    ResponseCodeInterpreterCallCodeDoneEvent,
    ResponseCodeInterpreterToolCall,
    ResponseCompletedEvent,
    ResponseErrorEvent,
    ResponseFailedEvent,
    ResponseFileSearchToolCall,
    ResponseFunctionToolCall,
    ResponseIncompleteEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputTextAnnotationAddedEvent,
    ResponseRefusalDeltaEvent,
    ResponseStreamEvent,
)
from openai.types.responses.response_output_item import ImageGenerationCall

from core.backends.openai.spares import SpareConversations
from core.model import BackendError, BackendEvent, Citation, Completed, OutboundFile, TextDelta, ToolUpdate, Usage

if TYPE_CHECKING:  # pragma: no cover
    from core.config.schema import AssistantConfig, OpenAIBackendConfig
    from core.ports import Turn

log = logging.getLogger(__name__)

# Event type -> SDK model, from the SDK's own union. Module level on purpose: built once per process.
# Dispatching on `type` first is much cheaper than letting pydantic try the 58-way union, and an event
# type newer than this SDK is simply skipped instead of failing validation.
_EVENT_CLASSES: dict[str, Any] = {
    get_args(cls.model_fields["type"].annotation)[0]: cls
    for cls in get_args(get_args(ResponseStreamEvent)[0])
}

_DELTA = "response.output_text.delta"
# Events that carry nothing we show (the whole response again, or text we already streamed): skipped
# before validation, since building a full Response model per event costs more than all the deltas.
_SKIP = frozenset({
    "response.created", "response.in_progress", "response.queued", "response.content_part.added",
    "response.content_part.done", "response.output_text.done", "response.refusal.done",
    "response.function_call_arguments.delta", "response.function_call_arguments.done",
    "response.code_interpreter_call_code.delta", "response.code_interpreter_call.in_progress",
    "response.code_interpreter_call.interpreting", "response.code_interpreter_call.completed",
    "response.file_search_call.in_progress", "response.file_search_call.searching",
    "response.file_search_call.completed", "response.image_generation_call.in_progress",
    "response.image_generation_call.generating", "response.image_generation_call.completed",
    "response.image_generation_call.partial_image",
})
_INCLUDE = ["code_interpreter_call.outputs", "file_search_call.results"]
_PREVIEW = 300            # characters of a tool result shown in the status line
_MAX_RETRY_AFTER = 60.0   # never wait longer than this for one retry


class _ToolSpec(Protocol):
    def to_openai(self) -> dict[str, Any]: ...


class ToolRegistryLike(Protocol):
    """What the backend needs of core.tools.registry.ToolRegistry."""

    def specs_for(self, assistant: "AssistantConfig") -> list[_ToolSpec]: ...
    async def call(self, name: str, arguments_json: str) -> str: ...


def make_openai_client(cfg: "OpenAIBackendConfig") -> AsyncOpenAI:
    """The one AsyncOpenAI of the process (the composition root calls this once and injects it).

    The key comes from the environment only; OPENAI_BASE_URL wins over the config's base_url so that the
    whole process (responses, conversations, files, vector stores, containers) can be pointed elsewhere.
    """
    key = os.environ.get("OPENAI_API_KEY", "").strip()
    if not key:
        raise BackendError("OPENAI_API_KEY is not set: put it in the environment or .env")
    base_url = os.environ.get("OPENAI_BASE_URL", "").strip() or cfg.base_url or None
    # The SDK's aiohttp transport: with hundreds of answers streaming at once, httpx's connection pool and
    # per-read timeouts cost about a third more CPU per answer (measured with the bench's stand-ins).
    return AsyncOpenAI(api_key=key, base_url=base_url, timeout=cfg.timeout, max_retries=cfg.max_retries,
                       http_client=DefaultAioHttpClient(timeout=cfg.timeout))


def safety_identifier(user_id: str) -> str:
    """A stable, non-reversible id for OpenAI's abuse detection (the raw platform user id never leaves)."""
    return hashlib.sha256(user_id.encode()).hexdigest()[:32]


def clean_metadata(metadata: dict[str, Any]) -> dict[str, str]:
    """OpenAI metadata: at most 16 pairs, keys up to 64 and values up to 512 characters."""
    out: dict[str, str] = {}
    for k, v in metadata.items():
        if len(out) == 16:
            break
        out[str(k)[:64]] = str(v)[:512]
    return out


class _Retryable(Exception):
    """A failure that may be retried when nothing the user can see was produced yet."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


@dataclass
class _Round:
    """What one /v1/responses stream produced."""
    calls: list[ResponseFunctionToolCall] = field(default_factory=list)
    visible: bool = False          # text or files reached the caller: retrying would duplicate them
    terminal: bool = False
    response_id: str = ""
    usage: Usage = Usage()
    code: dict[str, str] = field(default_factory=dict)


@dataclass
class _TurnState:
    citations: dict[str, int] = field(default_factory=dict)   # file id -> footnote number
    files_seen: set[str] = field(default_factory=set)
    containers: set[str] = field(default_factory=set)


class OpenAIBackend:
    """core.ports.AssistantBackend on OpenAI's Responses + Conversations APIs."""

    def __init__(self, client: AsyncOpenAI, tools: ToolRegistryLike, *, max_retries: int = 3,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, spare_conversations: int = 0) -> None:
        self._client = client
        self._spares = SpareConversations(client, spare_conversations)
        # Streams are retried here, not in the SDK: only we know whether text already reached the user
        # (a retry then would show it twice), and only here can the wait be injected for tests.
        self._stream_client = client.with_options(max_retries=0)
        self._tools = tools
        self._max_retries = max_retries
        self._sleep = sleep

    async def aclose(self) -> None:
        await self._spares.aclose()
        await self._client.close()

    async def create_conversation(self, metadata: dict[str, str]) -> str:
        try:
            return await self._spares.take(clean_metadata(metadata))
        except openai.APIError as exc:
            raise _as_backend_error(exc) from exc

    # ---- one turn ----------------------------------------------------------------------------------------

    async def run(self, turn: "Turn") -> AsyncIterator[BackendEvent]:
        a = turn.assistant
        base = self._base_params(turn)
        function_specs = [s.to_openai() for s in self._tools.specs_for(a)] if a.tool("function") else []
        known = {s.get("name") for s in function_specs}
        base["tools"] = self._hosted_tools(turn) + function_specs
        if not base["tools"]:
            del base["tools"]
        state = _TurnState()
        usage = Usage()
        pending_input: list[dict[str, Any]] = [self._user_message(turn)]
        for round_no in range(a.max_tool_rounds + 1):
            rnd = _Round()
            try:
                async for ev in self._round({**base, "input": pending_input}, rnd, state):
                    yield ev
            except BackendError:
                # An answer cut short or failed still cost tokens: report them before the error.
                spent = usage + rnd.usage
                if spent != Usage():
                    yield Completed(usage=Usage(spent.input_tokens, spent.cached_tokens, spent.output_tokens,
                                                spent.tool_calls, len(state.containers)), response_id="",
                                    containers=tuple(sorted(state.containers)))
                raise
            usage = usage + rnd.usage
            if not rnd.calls:
                await self._spares.labelled(turn.conversation_id)  # labelled while the answer streamed
                yield Completed(usage=Usage(usage.input_tokens, usage.cached_tokens, usage.output_tokens,
                                            usage.tool_calls, len(state.containers)),
                                response_id=rnd.response_id, containers=tuple(sorted(state.containers)))
                return
            if round_no == a.max_tool_rounds:
                break
            # With conversation= the function_call items are already stored: send only the outputs.
            pending_input = []
            for call in rnd.calls:
                item_id = call.id or call.call_id
                if call.name in known:
                    result = await self._tools.call(call.name, call.arguments)
                else:
                    result = json.dumps({"error": f"There is no function named {call.name!r}. "
                                                  f"Available: {', '.join(sorted(n for n in known if n)) or 'none'}."})
                    log.warning("model asked for unknown function %r (conversation %s)", call.name,
                                turn.conversation_id)
                yield ToolUpdate(item_id, "function", "done", f"Calling {call.name}", _preview(result))
                pending_input.append({"type": "function_call_output", "call_id": call.call_id, "output": result})
        raise BackendError(f"The assistant kept calling tools for {a.max_tool_rounds} rounds without answering; "
                           "stopped. Please rephrase or ask again.")

    def _base_params(self, turn: "Turn") -> dict[str, Any]:
        a = turn.assistant
        p: dict[str, Any] = {
            "model": a.model,
            "conversation": turn.conversation_id,
            "truncation": "auto",           # drop the oldest items instead of a 400 when the window fills
            "include": list(_INCLUDE),
            "prompt_cache_key": turn.conversation_id,
        }
        if a.instructions:
            p["instructions"] = a.instructions  # not persisted by the Conversations API: every turn
        if turn.user_id:
            p["safety_identifier"] = safety_identifier(turn.user_id)
        if turn.metadata:
            p["metadata"] = clean_metadata(turn.metadata)
        if a.temperature is not None:
            p["temperature"] = a.temperature
        if a.top_p is not None:
            p["top_p"] = a.top_p
        if a.max_output_tokens is not None:
            p["max_output_tokens"] = a.max_output_tokens
        if a.reasoning_effort is not None:
            p["reasoning"] = {"effort": a.reasoning_effort}
        return p

    @staticmethod
    def _user_message(turn: "Turn") -> dict[str, Any]:
        content: list[dict[str, Any]] = [{"type": "input_text", "text": turn.text}]
        if turn.assistant.vision:
            for img in turn.images:
                part: dict[str, Any] = {"type": "input_image", "detail": "auto"}
                if img.file_id:
                    part["file_id"] = img.file_id
                else:
                    part["image_url"] = img.data_url
                content.append(part)
        return {"type": "message", "role": "user", "content": content}

    @staticmethod
    def _hosted_tools(turn: "Turn") -> list[dict[str, Any]]:
        tools: list[dict[str, Any]] = []
        for t in turn.assistant.tools:
            match t.type:
                case "code_interpreter":
                    container: dict[str, Any] = {"type": "auto", "file_ids": list(turn.container_file_ids)}
                    if t.memory_limit:
                        container["memory_limit"] = t.memory_limit
                    tools.append({"type": "code_interpreter", "container": container})
                case "file_search":
                    if not turn.vector_store_ids:
                        # The API rejects file_search without a store; the files may still be indexing.
                        log.warning("assistant %s: file_search has no vector store yet, tool left out",
                                    turn.assistant.name)
                        continue
                    fs: dict[str, Any] = {"type": "file_search", "vector_store_ids": list(turn.vector_store_ids)}
                    if t.max_num_results is not None:
                        fs["max_num_results"] = t.max_num_results
                    if t.score_threshold is not None:
                        fs["ranking_options"] = {"score_threshold": t.score_threshold}
                    tools.append(fs)
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

    # ---- one /v1/responses stream, with retries ----------------------------------------------------------

    async def _round(self, params: dict[str, Any], rnd: _Round, state: _TurnState) -> AsyncIterator[BackendEvent]:
        attempt = 0
        while True:
            try:
                async for ev in self._stream(params, rnd, state):
                    yield ev
                return
            except _Retryable as exc:
                if rnd.visible:
                    # Text is already on the user's screen: a second request would repeat it.
                    raise BackendError(exc.message) from exc
                if attempt >= self._max_retries:
                    raise BackendError(exc.message + (f" (gave up after {attempt + 1} attempts)" if attempt else ""))
                attempt += 1
                delay = exc.retry_after if exc.retry_after is not None else \
                    min(8.0, 0.5 * 2 ** (attempt - 1)) * (1 + random.random() / 4)
                log.warning("OpenAI request failed (%s); retry %d/%d in %.2fs", exc.message, attempt,
                            self._max_retries, delay)
                rnd.calls.clear()
                rnd.code.clear()
                await self._sleep(min(delay, _MAX_RETRY_AFTER))

    async def _stream(self, params: dict[str, Any], rnd: _Round, state: _TurnState) -> AsyncIterator[BackendEvent]:
        try:
            # The body goes in extra_body: it is plain JSON already, and the SDK's TypedDict transform walks
            # every nested input/tool part with typing introspection (about a third of a request's CPU).
            # The request on the wire is the same; model and stream stay typed arguments.
            body = {k: v for k, v in params.items() if k != "model"}
            async with self._stream_client.responses.with_streaming_response.create(
                    model=params["model"], stream=True, extra_body=body) as raw:
                buf = b""
                data: list[bytes] = []
                done = False
                async for chunk in raw.iter_bytes():
                    if done:
                        break
                    lines = (buf + chunk).split(b"\n")
                    buf = lines.pop()
                    for line in lines:
                        if line.endswith(b"\r"):
                            line = line[:-1]
                        if line:
                            if line.startswith(b"data:"):
                                data.append(line[6:] if line[5:6] == b" " else line[5:])
                            continue  # event:, id:, retry: and comments: the JSON carries the type
                        if not data:
                            continue
                        payload = data[0] if len(data) == 1 else b"\n".join(data)
                        data = []
                        if payload == b"[DONE]":
                            done = True
                            break
                        try:
                            ev = json.loads(payload)
                        except ValueError as exc:
                            log.error("OpenAI sent an event that is not JSON: %r", payload[:200])
                            raise BackendError("OpenAI sent an unreadable event") from exc
                        kind = ev.get("type")
                        if kind == _DELTA:     # the hot path: no pydantic
                            rnd.visible = True
                            yield TextDelta(ev["delta"])
                            continue
                        if kind in _SKIP:
                            continue
                        cls = _EVENT_CLASSES.get(kind)
                        if cls is None:
                            continue           # an event type newer than this SDK: nothing we render
                        try:
                            typed = cls.model_validate(ev)
                        except ValidationError as exc:
                            log.error("OpenAI sent a %s event this SDK cannot read: %s", kind, exc)
                            raise BackendError(f"OpenAI sent an unreadable {kind} event") from exc
                        async for out in self._handle(typed, rnd, state):
                            yield out
                        # After the terminal event keep reading to the end of the body (only the final
                        # chunk is left): a body left unread makes httpx drop the keep-alive connection.
        except openai.APIStatusError as exc:
            raise _classify(exc) from exc
        except openai.APITimeoutError as exc:
            raise _Retryable("OpenAI did not answer in time") from exc
        except openai.APIConnectionError as exc:
            raise _Retryable("Could not reach OpenAI (connection failed)") from exc
        except (httpx2.TimeoutException,) as exc:
            raise _Retryable("OpenAI stopped sending mid-answer (timed out)") from exc
        except httpx2.TransportError as exc:
            raise _Retryable("The connection to the model was lost mid-answer") from exc
        if not rnd.terminal:
            raise _Retryable("The connection to the model was lost mid-answer")

    async def _handle(self, ev: Any, rnd: _Round, state: _TurnState) -> AsyncIterator[BackendEvent]:
        match ev:
            case ResponseOutputItemAddedEvent(item=item):
                match item:
                    case ResponseFunctionToolCall():
                        yield ToolUpdate(item.id or item.call_id, "function", "started", f"Calling {item.name}")
                    case ResponseCodeInterpreterToolCall():
                        state.containers.add(item.container_id)
                        yield ToolUpdate(item.id, "code_interpreter", "started", "Running code")
                    case ResponseFileSearchToolCall():
                        yield ToolUpdate(item.id, "file_search", "started", "Searching files")
                    case ImageGenerationCall():
                        yield ToolUpdate(item.id, "image_generation", "started", "Generating an image")
            case ResponseCodeInterpreterCallCodeDoneEvent(item_id=item_id, code=code):
                rnd.code[item_id] = code
                yield ToolUpdate(item_id, "code_interpreter", "running", "Running code", code)
            case ResponseOutputItemDoneEvent(item=item):
                async for out in self._item_done(item, rnd, state):
                    yield out
            case ResponseOutputTextAnnotationAddedEvent(annotation=annotation):
                async for out in self._annotation(annotation, rnd, state):
                    yield out
            case ResponseRefusalDeltaEvent(delta=delta):
                rnd.visible = True
                yield TextDelta(delta)
            case ResponseCompletedEvent(response=response):
                rnd.terminal = True
                rnd.response_id = response.id
                rnd.usage = _usage(response)
            case ResponseIncompleteEvent(response=response):
                rnd.usage = _usage(response)  # tokens were spent and are billed: record them (see run())
                reason = response.incomplete_details.reason if response.incomplete_details else None
                match reason:
                    case "max_output_tokens":
                        raise BackendError("The answer was cut short: max_output_tokens reached")
                    case "content_filter":
                        raise BackendError("The answer was cut short by OpenAI's content filter")
                    case _:
                        raise BackendError(f"The answer was cut short ({reason or 'no reason given'})")
            case ResponseFailedEvent(response=response):
                rnd.usage = _usage(response)
                err = response.error
                msg = err.message if err else "no reason given"
                code = f" ({err.code})" if err and err.code else ""
                raise BackendError(f"The model could not answer: {msg}{code}")
            case ResponseErrorEvent(message=message, code=code):
                raise BackendError(f"The model could not answer: {message}" + (f" ({code})" if code else ""))
            case _:
                pass  # progress events we do not surface (created, deltas of tool code, reasoning, ...)

    async def _item_done(self, item: Any, rnd: _Round, state: _TurnState) -> AsyncIterator[BackendEvent]:
        match item:
            case ResponseFunctionToolCall():
                rnd.calls.append(item)
                yield ToolUpdate(item.id or item.call_id, "function", "running", f"Calling {item.name}",
                                 item.arguments)
            case ResponseCodeInterpreterToolCall():
                state.containers.add(item.container_id)
                logs = "\n".join(o.logs for o in item.outputs or [] if o.type == "logs")
                status = "failed" if item.status == "failed" else "done"
                yield ToolUpdate(item.id, "code_interpreter", status, "Running code", logs or item.code or "")
            case ResponseFileSearchToolCall():
                yield ToolUpdate(item.id, "file_search", "failed" if item.status == "failed" else "done",
                                 "Searching files", ", ".join(item.queries))
            case ImageGenerationCall():
                if item.result:
                    ext = item.output_format or "png"
                    rnd.visible = True
                    yield OutboundFile(f"image-{item.id[-8:]}.{ext}", base64.b64decode(item.result),
                                       mimetypes.guess_type(f"x.{ext}")[0] or "image/png")
                yield ToolUpdate(item.id, "image_generation", "done" if item.result else "failed",
                                 "Generating an image")
            case ResponseOutputMessage():
                # Annotations normally arrive as annotation.added events; pick up any that did not.
                for part in item.content:
                    for annotation in getattr(part, "annotations", None) or []:
                        async for out in self._annotation(annotation, rnd, state):
                            yield out

    async def _annotation(self, annotation: Any, rnd: _Round, state: _TurnState) -> AsyncIterator[BackendEvent]:
        if isinstance(annotation, dict):
            kind = annotation.get("type")
            get = annotation.get
        else:
            kind = getattr(annotation, "type", None)
            get = lambda k, d=None: getattr(annotation, k, d)  # noqa: E731
        match kind:
            case "file_citation":
                fid = get("file_id") or ""
                if fid not in state.citations:
                    state.citations[fid] = len(state.citations) + 1
                    yield Citation(index=state.citations[fid], title=get("filename") or fid, file_id=fid)
            case "url_citation":
                url = get("url") or ""
                if url not in state.citations:
                    state.citations[url] = len(state.citations) + 1
                    yield Citation(index=state.citations[url], title=get("title") or url, url=url)
            case "container_file_citation":
                fid, cid, name = get("file_id") or "", get("container_id") or "", get("filename") or "file"
                if fid in state.files_seen:
                    return
                state.files_seen.add(fid)
                state.containers.add(cid)
                # Containers expire after ~20 minutes idle: download now, never keep a link.
                try:
                    content = await self._client.containers.files.content.retrieve(fid, container_id=cid)
                    data = content.content   # the SDK has read the whole body already
                except openai.APIError as exc:
                    log.error("could not download %s from container %s: %s", name, cid, exc)
                    rnd.visible = True
                    yield TextDelta(f"\n\n(Could not download the file {name}: "
                                    f"{_as_backend_error(exc).message})")
                    return
                rnd.visible = True
                yield OutboundFile(name, data, mimetypes.guess_type(name)[0] or "application/octet-stream")


def _usage(response: Any) -> Usage:
    u = response.usage
    tool_calls = sum(1 for o in response.output or [] if o.type.endswith("_call"))
    if u is None:
        return Usage(tool_calls=tool_calls)
    cached = u.input_tokens_details.cached_tokens if u.input_tokens_details else 0
    return Usage(input_tokens=u.input_tokens, cached_tokens=cached or 0, output_tokens=u.output_tokens,
                 tool_calls=tool_calls)


def _preview(text: str) -> str:
    return text if len(text) <= _PREVIEW else text[:_PREVIEW - 1] + "…"


def _retry_after(exc: openai.APIStatusError) -> float | None:
    headers = exc.response.headers
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            return max(0.0, float(ms) / 1000)
        if (s := headers.get("retry-after")) is not None:
            try:
                return max(0.0, float(s))
            except ValueError:
                return max(0.0, parsedate_to_datetime(s).timestamp() - _now())
    except (TypeError, ValueError):
        pass
    return None


def _api_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return exc.message


def _classify(exc: openai.APIStatusError) -> Exception:
    status = exc.status_code
    if status == 429:
        return _Retryable("OpenAI is rate-limiting requests (429); please try again shortly", _retry_after(exc))
    if status >= 500 or status == 408:
        return _Retryable(f"OpenAI had a server error ({status}); please try again", _retry_after(exc))
    return _as_backend_error(exc)


def _as_backend_error(exc: openai.APIError) -> BackendError:
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status == 401:
            return BackendError("OpenAI rejected the API key (401)")
        if status == 403:
            return BackendError(f"OpenAI refused access (403): {_api_message(exc)}")
        if status == 429:
            return BackendError("OpenAI is rate-limiting requests (429); please try again shortly", retryable=True)
        if status >= 500:
            return BackendError(f"OpenAI had a server error ({status}); please try again", retryable=True)
        return BackendError(f"OpenAI rejected the request ({status}): {_api_message(exc)}")
    if isinstance(exc, openai.APITimeoutError):
        return BackendError("OpenAI did not answer in time", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return BackendError("Could not reach OpenAI (connection failed)", retryable=True)
    return BackendError(f"OpenAI error: {exc}")
