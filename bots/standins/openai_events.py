"""Stream events and objects for the stand-in OpenAI server, built from the openai SDK's own pydantic types.

Building from the SDK's types means a shape change in the SDK breaks our tests instead of letting the fake
drift. `dump()` keeps what we set (exclude_unset) so the spec's required-but-nullable fields, which we set
explicitly to None, stay present as JSON nulls (the spec demands them; plain exclude_none would drop them).
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

from openai import BaseModel as _SDKModel
from openai.types.responses import (
    Response,
    ResponseCodeInterpreterCallCodeDeltaEvent,
    ResponseCodeInterpreterCallCodeDoneEvent,
    ResponseCodeInterpreterCallCompletedEvent,
    ResponseCodeInterpreterCallInProgressEvent,
    ResponseCodeInterpreterCallInterpretingEvent,
    ResponseCodeInterpreterToolCall,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseErrorEvent,
    ResponseFailedEvent,
    ResponseFileSearchCallCompletedEvent,
    ResponseFileSearchCallInProgressEvent,
    ResponseFileSearchCallSearchingEvent,
    ResponseFileSearchToolCall,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseFunctionToolCall,
    ResponseImageGenCallCompletedEvent,
    ResponseImageGenCallGeneratingEvent,
    ResponseImageGenCallInProgressEvent,
    ResponseIncompleteEvent,
    ResponseInProgressEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputRefusal,
    ResponseOutputText,
    ResponseOutputTextAnnotationAddedEvent,
    ResponseRefusalDeltaEvent,
    ResponseRefusalDoneEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
    ResponseUsage,
    ResponseFunctionWebSearch,
    ResponseWebSearchCallCompletedEvent,
    ResponseWebSearchCallInProgressEvent,
    ResponseWebSearchCallSearchingEvent,
)
from openai.types.responses.response_output_item import ImageGenerationCall

_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}_{next(_ids):06d}fake"


def dump(model: _SDKModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_unset=True, by_alias=True)


def usage(input_tokens: int, cached_tokens: int, output_tokens: int) -> ResponseUsage:
    return ResponseUsage(
        input_tokens=input_tokens,
        input_tokens_details={"cached_tokens": cached_tokens, "cache_write_tokens": 0},
        output_tokens=output_tokens,
        output_tokens_details={"reasoning_tokens": 0},
        total_tokens=input_tokens + output_tokens,
    )


def response_object(*, rid: str, request: dict[str, Any], status: str, output: list[Any],
                    usage_: ResponseUsage | None = None, error: dict | None = None,
                    incomplete_reason: str | None = None, created_at: int | None = None) -> Response:
    """A Response as the API returns it. The spec requires error, incomplete_details, instructions, metadata,
    temperature and top_p to be present even when null, so they are always set explicitly."""
    conv = request.get("conversation")
    if isinstance(conv, dict):
        conv = conv.get("id")
    kwargs: dict[str, Any] = dict(
        id=rid,
        object="response",
        created_at=created_at or int(time.time()),
        status=status,
        model=request.get("model", "gpt-test"),
        output=output,
        parallel_tool_calls=bool(request.get("parallel_tool_calls", True)),
        tool_choice=request.get("tool_choice", "auto"),
        tools=request.get("tools", []),
        error=error,
        incomplete_details={"reason": incomplete_reason} if incomplete_reason else None,
        instructions=request.get("instructions"),
        metadata=request.get("metadata") or {},
        temperature=request.get("temperature"),
        top_p=request.get("top_p"),
        truncation=request.get("truncation", "disabled"),
    )
    if conv:
        kwargs["conversation"] = {"id": conv}
    if usage_ is not None:
        kwargs["usage"] = usage_
    return Response(**kwargs)


@dataclass
class EventWriter:
    """Numbers events (sequence_number) and turns SDK models into dicts, in emission order."""
    seq: Iterator[int] = field(default_factory=lambda: itertools.count(0))

    def __call__(self, cls: type[_SDKModel], **kwargs: Any) -> dict[str, Any]:
        return dump(cls(sequence_number=next(self.seq), **kwargs))

    def deltas(self, cls: type[_SDKModel], chunks: list[str], **kwargs: Any) -> list[dict[str, Any]]:
        """One delta event per chunk. The first goes through the SDK type; the others are copies of it with their
        own `delta` (a str) and `sequence_number` (an int) — the only fields that differ — because building and
        dumping ~60 pydantic models per answer took ~1 ms, and the bench (many answers at once, on the loop
        that timestamps the bot's requests) paid it in front of the next request."""
        if not chunks:
            return []
        first = self(cls, delta=chunks[0], **kwargs)
        return [first] + [{**first, "delta": c, "sequence_number": next(self.seq)} for c in chunks[1:]]


# ---- item builders: (added-state item, done-state item, events in between) -------------------------------


def message_events(w: EventWriter, *, output_index: int, text: str, chunks: list[str],
                   annotations: list[dict], refusal: str | None = None) -> tuple[list[dict], list[dict], dict]:
    """Events for one assistant message. Returns (events before deltas, delta events, and a tail
    builder): callers interleave delays between the delta events. The tail is {"events": [...], "item": ...}."""
    mid = new_id("msg")
    head: list[dict] = []
    head.append(w(ResponseOutputItemAddedEvent, type="response.output_item.added", output_index=output_index,
                  item=ResponseOutputMessage(id=mid, type="message", role="assistant", status="in_progress",
                                             content=[])))
    if refusal is not None:
        part0 = ResponseOutputRefusal(type="refusal", refusal="")
        head.append(w(ResponseContentPartAddedEvent, type="response.content_part.added", item_id=mid,
                      output_index=output_index, content_index=0, part=part0))
        deltas = w.deltas(ResponseRefusalDeltaEvent, chunks, type="response.refusal.delta", item_id=mid,
                          output_index=output_index, content_index=0)
        part = ResponseOutputRefusal(type="refusal", refusal=refusal)
        tail = [w(ResponseRefusalDoneEvent, type="response.refusal.done", item_id=mid, output_index=output_index,
                  content_index=0, refusal=refusal)]
    else:
        part0 = ResponseOutputText(type="output_text", text="", annotations=[], logprobs=[])
        head.append(w(ResponseContentPartAddedEvent, type="response.content_part.added", item_id=mid,
                      output_index=output_index, content_index=0, part=part0))
        deltas = w.deltas(ResponseTextDeltaEvent, chunks, type="response.output_text.delta", item_id=mid,
                          output_index=output_index, content_index=0, logprobs=[])
        tail = [w(ResponseOutputTextAnnotationAddedEvent, type="response.output_text.annotation.added", item_id=mid,
                  output_index=output_index, content_index=0, annotation_index=i, annotation=a)
                for i, a in enumerate(annotations)]
        tail.append(w(ResponseTextDoneEvent, type="response.output_text.done", item_id=mid,
                      output_index=output_index, content_index=0, text=text, logprobs=[]))
        part = ResponseOutputText(type="output_text", text=text, annotations=annotations, logprobs=[])
    tail.append(w(ResponseContentPartDoneEvent, type="response.content_part.done", item_id=mid,
                  output_index=output_index, content_index=0, part=part))
    item = ResponseOutputMessage(id=mid, type="message", role="assistant", status="completed", content=[part])
    tail.append(w(ResponseOutputItemDoneEvent, type="response.output_item.done", output_index=output_index, item=item))
    return head, deltas, {"events": tail, "item": dump(item)}


def function_call_events(w: EventWriter, *, output_index: int, name: str, arguments: str,
                         call_id: str) -> tuple[list[dict], dict]:
    fid = new_id("fc")
    ev = [w(ResponseOutputItemAddedEvent, type="response.output_item.added", output_index=output_index,
            item=ResponseFunctionToolCall(id=fid, type="function_call", call_id=call_id, name=name, arguments="",
                                          status="in_progress"))]
    ev.append(w(ResponseFunctionCallArgumentsDeltaEvent, type="response.function_call_arguments.delta", item_id=fid,
                output_index=output_index, delta=arguments))
    # The spec (and SDK 2.x) carry `name` on .done; SDK 3.x dropped the field. The SDK models allow extra
    # keys, so we send it as the real service does.
    ev.append(w(ResponseFunctionCallArgumentsDoneEvent, type="response.function_call_arguments.done", item_id=fid,
                output_index=output_index, arguments=arguments, name=name))
    item = ResponseFunctionToolCall(id=fid, type="function_call", call_id=call_id, name=name, arguments=arguments,
                                    status="completed")
    ev.append(w(ResponseOutputItemDoneEvent, type="response.output_item.done", output_index=output_index, item=item))
    return ev, dump(item)


def code_interpreter_events(w: EventWriter, *, output_index: int, container_id: str, code: str,
                            logs: str | None) -> tuple[list[dict], dict]:
    cid = new_id("ci")
    ev = [w(ResponseOutputItemAddedEvent, type="response.output_item.added", output_index=output_index,
            item=ResponseCodeInterpreterToolCall(id=cid, type="code_interpreter_call", container_id=container_id,
                                                 code="", status="in_progress", outputs=None))]
    ev.append(w(ResponseCodeInterpreterCallInProgressEvent, type="response.code_interpreter_call.in_progress",
                item_id=cid, output_index=output_index))
    for line in code.splitlines(keepends=True) or [""]:
        ev.append(w(ResponseCodeInterpreterCallCodeDeltaEvent, type="response.code_interpreter_call_code.delta",
                    item_id=cid, output_index=output_index, delta=line))
    ev.append(w(ResponseCodeInterpreterCallCodeDoneEvent, type="response.code_interpreter_call_code.done",
                item_id=cid, output_index=output_index, code=code))
    ev.append(w(ResponseCodeInterpreterCallInterpretingEvent, type="response.code_interpreter_call.interpreting",
                item_id=cid, output_index=output_index))
    ev.append(w(ResponseCodeInterpreterCallCompletedEvent, type="response.code_interpreter_call.completed",
                item_id=cid, output_index=output_index))
    outputs = [{"type": "logs", "logs": logs}] if logs is not None else []
    item = ResponseCodeInterpreterToolCall(id=cid, type="code_interpreter_call", container_id=container_id,
                                           code=code, status="completed", outputs=outputs)
    ev.append(w(ResponseOutputItemDoneEvent, type="response.output_item.done", output_index=output_index, item=item))
    return ev, dump(item)


def file_search_events(w: EventWriter, *, output_index: int, queries: list[str],
                       results: list[dict]) -> tuple[list[dict], dict]:
    fid = new_id("fs")
    ev = [w(ResponseOutputItemAddedEvent, type="response.output_item.added", output_index=output_index,
            item=ResponseFileSearchToolCall(id=fid, type="file_search_call", queries=queries, status="in_progress",
                                            results=None))]
    for cls, t in ((ResponseFileSearchCallInProgressEvent, "in_progress"),
                   (ResponseFileSearchCallSearchingEvent, "searching"),
                   (ResponseFileSearchCallCompletedEvent, "completed")):
        ev.append(w(cls, type=f"response.file_search_call.{t}", item_id=fid, output_index=output_index))
    item = ResponseFileSearchToolCall(id=fid, type="file_search_call", queries=queries, status="completed",
                                      results=results)
    ev.append(w(ResponseOutputItemDoneEvent, type="response.output_item.done", output_index=output_index, item=item))
    return ev, dump(item)


def web_search_events(w: EventWriter, *, output_index: int, query: str,
                      urls: list[str]) -> tuple[list[dict], dict]:
    """A web_search_call item: added (in progress), its progress events, done with the search action."""
    wid = new_id("ws")
    ev = [w(ResponseOutputItemAddedEvent, type="response.output_item.added", output_index=output_index,
            item=ResponseFunctionWebSearch(id=wid, type="web_search_call", status="in_progress",
                                           action={"type": "search", "query": query}))]
    for cls, t in ((ResponseWebSearchCallInProgressEvent, "in_progress"),
                   (ResponseWebSearchCallSearchingEvent, "searching"),
                   (ResponseWebSearchCallCompletedEvent, "completed")):
        ev.append(w(cls, type=f"response.web_search_call.{t}", item_id=wid, output_index=output_index))
    item = ResponseFunctionWebSearch(id=wid, type="web_search_call", status="completed",
                                     action={"type": "search", "query": query,
                                             "sources": [{"type": "url", "url": u} for u in urls]})
    ev.append(w(ResponseOutputItemDoneEvent, type="response.output_item.done", output_index=output_index, item=item))
    return ev, dump(item)


def image_generation_events(w: EventWriter, *, output_index: int, b64: str) -> tuple[list[dict], dict]:
    iid = new_id("ig")
    ev = [w(ResponseOutputItemAddedEvent, type="response.output_item.added", output_index=output_index,
            item=ImageGenerationCall(id=iid, type="image_generation_call", status="in_progress", result=None))]
    for cls, t in ((ResponseImageGenCallInProgressEvent, "in_progress"),
                   (ResponseImageGenCallGeneratingEvent, "generating"),
                   (ResponseImageGenCallCompletedEvent, "completed")):
        ev.append(w(cls, type=f"response.image_generation_call.{t}", item_id=iid, output_index=output_index))
    item = ImageGenerationCall(id=iid, type="image_generation_call", status="completed", result=b64)
    ev.append(w(ResponseOutputItemDoneEvent, type="response.output_item.done", output_index=output_index, item=item))
    return ev, dump(item)


def lifecycle(w: EventWriter, kind: str, response: Response) -> dict:
    cls = {"created": ResponseCreatedEvent, "in_progress": ResponseInProgressEvent,
           "completed": ResponseCompletedEvent, "failed": ResponseFailedEvent,
           "incomplete": ResponseIncompleteEvent}[kind]
    return w(cls, type=f"response.{kind}", response=response)


def error_event(w: EventWriter, *, code: str | None, message: str, param: str | None = None) -> dict:
    return w(ResponseErrorEvent, type="error", code=code, message=message, param=param)
