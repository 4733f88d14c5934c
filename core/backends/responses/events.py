"""Responses API stream events -> our BackendEvents (text, tool progress, files, citations, usage).

Shared by both Responses backends (`openai` with Conversations, `responses` with local history). Text deltas
are handled by the caller on the raw JSON (the hot path); every other, rarer event is validated into the SDK's
own type here, so tool, annotation and terminal handling stays type-checked.
"""
from __future__ import annotations

import base64
import logging
import mimetypes
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable, get_args

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
from openai.types.responses import ResponseFunctionWebSearch
from openai.types.responses.response_output_item import ImageGenerationCall

from core.model import BackendEvent, Citation, OutboundFile, TextDelta, ToolUpdate, Usage
from core.errors import BackendError

log = logging.getLogger(__name__)

# Event type -> SDK model, from the SDK's own union. Module level on purpose: built once per process.
# Dispatching on `type` first is much cheaper than letting pydantic try the 58-way union, and an event
# type newer than this SDK is simply skipped instead of failing validation.
EVENT_CLASSES: dict[str, Any] = {
    get_args(cls.model_fields["type"].annotation)[0]: cls
    for cls in get_args(get_args(ResponseStreamEvent)[0])
}

DELTA = "response.output_text.delta"
# Events that carry nothing we show (the whole response again, or text we already streamed): skipped
# before validation, since building a full Response model per event costs more than all the deltas.
SKIP = frozenset({
    "response.created", "response.in_progress", "response.queued", "response.content_part.added",
    "response.content_part.done", "response.output_text.done", "response.refusal.done",
    "response.function_call_arguments.delta", "response.function_call_arguments.done",
    "response.code_interpreter_call_code.delta", "response.code_interpreter_call.in_progress",
    "response.code_interpreter_call.interpreting", "response.code_interpreter_call.completed",
    "response.file_search_call.in_progress", "response.file_search_call.searching",
    "response.file_search_call.completed", "response.image_generation_call.in_progress",
    "response.image_generation_call.generating", "response.image_generation_call.completed",
    "response.image_generation_call.partial_image",
    "response.web_search_call.in_progress", "response.web_search_call.searching",
    "response.web_search_call.completed",
})

# The events every text answer has, read from the raw JSON when they carry nothing to show (see read_plain).
PLAIN = frozenset({"response.output_item.added", "response.output_item.done", "response.completed"})
_QUIET_ITEMS = ("message", "reasoning")   # output items whose added/done events show nothing by themselves

# Downloads a code interpreter file: (file id, container id) -> bytes. Raises openai.APIError.
DownloadContainerFile = Callable[[str, str], Awaitable[bytes]]


@dataclass
class Round:
    """What one /v1/responses stream produced."""
    calls: list[ResponseFunctionToolCall] = field(default_factory=list)
    text: list[str] = field(default_factory=list)   # the answer's text, for a history kept locally
    visible: bool = False          # text or files reached the caller: retrying would duplicate them
    terminal: bool = False
    response_id: str = ""
    usage: Usage = Usage()
    code: dict[str, str] = field(default_factory=dict)
    # A first turn sent without a conversation (`store: true`, core/backends/openai/first_turn.py): the stream
    # names the stored response as soon as it is created (ConversationStarted) and keeps its output items as the
    # API returned them, for the conversation made from them.
    stored: bool = False
    output: list[dict[str, Any]] = field(default_factory=list)

    def restart(self) -> None:
        """Before a retry: forget what the failed attempt collected (nothing of it was shown)."""
        self.calls.clear()
        self.text.clear()
        self.code.clear()
        self.output.clear()


@dataclass
class TurnState:
    citations: dict[str, int] = field(default_factory=dict)   # file id or url -> footnote number
    files_seen: set[str] = field(default_factory=set)
    containers: set[str] = field(default_factory=set)


class EventMapper:
    """Typed Responses events -> BackendEvents. `download`: None where no server hosts a code interpreter."""

    def __init__(self, who: str, download: DownloadContainerFile | None = None) -> None:
        self._who = who
        self._download = download

    async def handle(self, ev: Any, rnd: Round, state: TurnState) -> AsyncIterator[BackendEvent]:
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
                    case ResponseFunctionWebSearch():
                        yield ToolUpdate(item.id, "web_search", "started", "Searching the web")
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
                rnd.text.append(delta)
                yield TextDelta(delta)
            case ResponseCompletedEvent(response=response):
                rnd.terminal = True
                rnd.response_id = response.id
                rnd.usage = usage_of(response)
            case ResponseIncompleteEvent(response=response):
                rnd.usage = usage_of(response)  # tokens were spent and are billed: the backend reports them
                reason = response.incomplete_details.reason if response.incomplete_details else None
                match reason:
                    case "max_output_tokens":
                        raise BackendError("The answer was cut short: max_output_tokens reached")
                    case "content_filter":
                        raise BackendError(f"The answer was cut short by {self._who}'s content filter")
                    case _:
                        raise BackendError(f"The answer was cut short ({reason or 'no reason given'})")
            case ResponseFailedEvent(response=response):
                rnd.usage = usage_of(response)
                err = response.error
                msg = err.message if err else "no reason given"
                code = f" ({err.code})" if err and err.code else ""
                raise BackendError(f"The model could not answer: {msg}{code}")
            case ResponseErrorEvent(message=message, code=code):
                raise BackendError(f"The model could not answer: {message}" + (f" ({code})" if code else ""))
            case _:
                pass  # progress events we do not surface (created, deltas of tool code, reasoning, ...)

    async def _item_done(self, item: Any, rnd: Round, state: TurnState) -> AsyncIterator[BackendEvent]:
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
            case ResponseFunctionWebSearch():
                query = getattr(item.action, "query", None) or ", ".join(getattr(item.action, "queries", None) or ())
                yield ToolUpdate(item.id, "web_search", "failed" if item.status == "failed" else "done",
                                 "Searching the web", query or "")
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

    async def _annotation(self, annotation: Any, rnd: Round, state: TurnState) -> AsyncIterator[BackendEvent]:
        # annotation.added carries a plain dict (the SDK types it `object`); a message item carries models.
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
            case "container_file_citation" if self._download is not None:
                fid, cid, name = get("file_id") or "", get("container_id") or "", get("filename") or "file"
                if fid in state.files_seen:
                    return
                state.files_seen.add(fid)
                state.containers.add(cid)
                # Fetching and posting the file is a step of its own (seconds, under a busy platform budget): shown
                # like a tool's, so the reply says what it waits for, and a platform keeping a slot for the
                # answer's end (bots/discord/delivery.py) shows what it has instead of holding the slot idle.
                step = f"file-{fid}"
                yield ToolUpdate(step, "file", "running", f"Posting {name}")
                # Containers expire after ~20 minutes idle: download now, never keep a link.
                try:
                    data = await self._download(fid, cid)
                except BackendError as exc:
                    log.error("could not download %s from container %s: %s", name, cid, exc.message)
                    rnd.visible = True
                    yield ToolUpdate(step, "file", "failed", f"Posting {name}")
                    yield TextDelta(f"\n\n(Could not download the file {name}: {exc.message})")
                    return
                rnd.visible = True
                yield OutboundFile(name, data, mimetypes.guess_type(name)[0] or "application/octet-stream")
                yield ToolUpdate(step, "file", "done", f"Posting {name}")   # (after the upload: the caller posts it)


def read_plain(kind: str, ev: dict[str, Any], rnd: Round) -> bool:
    """A text answer's own output_item.added/done (a message or reasoning item, no annotations to pick up) and its
    response.completed, read from the raw JSON: True when handled. Validating them through the SDK's models
    costs ~0.2 ms an answer (the completed event carries the whole response again); anything else, or anything
    not shaped as expected, returns False and goes through EventMapper on the SDK's types."""
    if kind == "response.completed":
        response = ev.get("response")
        if not isinstance(response, dict) or not isinstance(rid := response.get("id"), str):
            return False
        usage = _plain_usage(response)
        if usage is None:
            return False
        rnd.terminal = True
        rnd.response_id = rid
        rnd.usage = usage
        return True
    item = ev.get("item")
    if not isinstance(item, dict) or item.get("type") not in _QUIET_ITEMS:
        return False
    if kind == "response.output_item.done" and item.get("type") == "message":
        content = item.get("content")
        if not isinstance(content, list):
            return False
        return all(isinstance(part, dict) and not part.get("annotations") for part in content)
    return True


def _plain_usage(response: dict[str, Any]) -> Usage | None:
    """usage_of() on the raw response object; None when it is not shaped as expected."""
    output = response.get("output") or ()
    if not isinstance(output, list):
        return None
    tool_calls = 0
    for item in output:
        kind = item.get("type") if isinstance(item, dict) else None
        if not isinstance(kind, str):
            return None
        tool_calls += kind.endswith("_call")
    u = response.get("usage")
    if u is None:
        return Usage(tool_calls=tool_calls)
    if not isinstance(u, dict):
        return None
    inp, out, details = u.get("input_tokens"), u.get("output_tokens"), u.get("input_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else 0
    if not (type(inp) is int and type(out) is int and (cached is None or type(cached) is int)):
        return None
    return Usage(input_tokens=inp, cached_tokens=cached or 0, output_tokens=out, tool_calls=tool_calls)


def usage_of(response: Any) -> Usage:
    u = response.usage
    tool_calls = sum(1 for o in response.output or [] if o.type.endswith("_call"))
    if u is None:
        return Usage(tool_calls=tool_calls)
    cached = u.input_tokens_details.cached_tokens if u.input_tokens_details else 0
    return Usage(input_tokens=u.input_tokens, cached_tokens=cached or 0, output_tokens=u.output_tokens,
                 tool_calls=tool_calls)
