"""What the OpenAI stand-in streams for one scripted answer: the Responses event sequence (output items for
function calls, file search, web search, code interpreter and image generation; the message with its annotations;
the terminal event) built from a `ScriptedResponse`, in the order the service sends them."""
from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Callable

from openai.types.containers.file_list_response import FileListResponse as ContainerFile

from bots.standins import openai_events as E
from bots.standins.openai_script import DefaultUsage, ScriptedResponse, last_user_text
from bots.standins.openai_storage import Container


@dataclass(slots=True)
class Answer:
    rid: str
    # the stream: event dicts, and ("delay", seconds) / ("hold", asyncio.Event) / ("cut", mode) / ("garbled", data)
    # markers
    events: list[Any] = field(default_factory=list)
    output: list[dict[str, Any]] = field(default_factory=list)   # the response's output items
    call_ids: list[str] = field(default_factory=list)            # the function calls it makes
    final: dict[str, Any] | None = None   # the response object; None: the stream ends without one (cut, error)


def build_answer(body: dict[str, Any], plan: ScriptedResponse, *, usage: DefaultUsage, now: int,
                 container_for: Callable[[dict[str, Any]], Container]) -> Answer:
    """The events of one response to the request `body`. `container_for` finds or makes the request's code
    interpreter container (the files the code writes go into it)."""
    w = E.EventWriter()
    rid = E.new_id("resp")
    created = now
    answer = Answer(rid)
    events, output = answer.events, answer.output
    base = E.response_object(rid=rid, request=body, status="in_progress", output=[], created_at=created)
    events.append(E.lifecycle(w, "created", base))
    events.append(E.lifecycle(w, "in_progress", base))
    annotations: list[dict[str, Any]] = []
    n_deltas = 0

    for call in plan.function_calls:
        call_id = call.call_id or E.new_id("call")
        ev, item = E.function_call_events(w, output_index=len(output), name=call.name, arguments=call.arguments,
                                          call_id=call_id)
        events += ev
        output.append(item)
        answer.call_ids.append(call_id)
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
        container = container_for(body)
        ev, item = E.code_interpreter_events(w, output_index=len(output), container_id=container.id,
                                             code=plan.code.code, logs=plan.code.logs)
        events += ev
        output.append(item)
        if plan.code.file is not None:
            cfid = E.new_id("cfile")
            path = f"/mnt/data/{plan.code.file.name}"
            obj = E.dump(ContainerFile(id=cfid, object="container.file", bytes=len(plan.code.file.data),
                                       container_id=container.id, created_at=now, path=path,
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
                return answer
            if plan.garbled is not None and i == plan.garbled[0]:
                events.append(("garbled", plan.garbled[1]))
                return answer
            if i and plan.delay:
                events.append(("delay", plan.delay))
            if plan.hold is not None and i == plan.hold_after:
                events.append(("hold", plan.hold))
            events.append(d)
            n_deltas += 1
        if plan.garbled is not None and plan.garbled[0] >= len(deltas):
            events.append(("garbled", plan.garbled[1]))
            return answer
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
        return answer

    u = E.usage(plan.input_tokens if plan.input_tokens is not None else usage.input_tokens,
                plan.cached_tokens if plan.cached_tokens is not None else usage.cached_tokens,
                plan.output_tokens if plan.output_tokens is not None else
                (usage.output_tokens if usage.output_tokens is not None else max(1, n_deltas)))
    if plan.error is not None:
        events.append(E.error_event(w, code=plan.error[0], message=plan.error[1]))
        return answer
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
    answer.final = E.dump(final)
    return answer
