"""One streamed POST /chat/completions: text deltas out, tool calls assembled from their pieces, usage.

Read from the raw SSE body like the Responses stream (core.backends.streaming): chunks are plain dicts here, since
compatible servers differ in what they add (reasoning_content, extra ids) and only a few keys matter.
Tool calls stream as fragments keyed by `index`: the first carries id and name, later ones append arguments.
"""
from __future__ import annotations

import json
import logging
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from core.backends.retry import Retryable
from core.backends.streaming import RetryingStream, sdk_body
from core.model import BackendEvent, TextDelta, ToolUpdate, Usage
from core.errors import BackendError

log = logging.getLogger(__name__)


@dataclass
class Call:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)

    @property
    def arguments_json(self) -> str:
        return "".join(self.arguments) or "{}"


@dataclass
class ChatRound:
    text: list[str] = field(default_factory=list)
    calls: dict[int, Call] = field(default_factory=dict)
    finish: str | None = None
    usage: Usage = Usage()
    visible: bool = False

    def restart(self) -> None:
        self.text.clear()
        self.calls.clear()
        self.finish = None


def usage_of(u: dict[str, Any]) -> Usage:
    details = u.get("prompt_tokens_details") or {}
    return Usage(input_tokens=int(u.get("prompt_tokens") or 0), cached_tokens=int(details.get("cached_tokens") or 0),
                 output_tokens=int(u.get("completion_tokens") or 0))


class ChatStream(RetryingStream):
    def round(self, params: dict[str, Any], rnd: ChatRound) -> AsyncIterator[BackendEvent]:
        return self._retrying(lambda p: self._stream(p, rnd), params, rnd)

    async def _stream(self, params: dict[str, Any], rnd: ChatRound) -> AsyncIterator[BackendEvent]:
        # messages and the rest go as plain JSON in extra_body (it wins over the typed argument): the SDK's
        # TypedDict transform of a long history costs more CPU than the whole answer.
        body = {k: v for k, v in params.items() if k != "model"}
        response = sdk_body(self._client.chat.completions.with_streaming_response.create(
            model=params["model"], messages=[], stream=True, extra_body=body, extra_headers=self._headers))
        async with self._failures(), aclosing(self._payloads(response)) as payloads:
            async for payload in payloads:
                for out in self._chunk(payload, rnd):
                    yield out
        match rnd.finish:
            case None:
                raise Retryable("The connection to the model was lost mid-answer")
            case "length":
                raise BackendError("The answer was cut short: max_output_tokens reached")
            case "content_filter":
                raise BackendError(f"The answer was cut short by {self._who}'s content filter")

    def _chunk(self, payload: bytes, rnd: ChatRound) -> list[BackendEvent]:
        try:
            ev = json.loads(payload)
        except ValueError as exc:
            log.error("%s sent an event that is not JSON: %r", self._who, payload[:200])
            raise self._unreadable() from exc
        if not isinstance(ev, dict):
            raise self._unreadable()
        if (err := ev.get("error")) is not None:
            # Compatible servers report a failure mid-stream as a data event with an error object.
            msg = err.get("message") if isinstance(err, dict) else str(err)
            raise BackendError(f"The model could not answer: {msg or 'no reason given'}")
        out: list[BackendEvent] = []
        if isinstance(u := ev.get("usage"), dict):
            rnd.usage = usage_of(u)
        for choice in ev.get("choices") or ():
            delta = choice.get("delta") or {}
            text = delta.get("content") or delta.get("refusal")
            if text:
                rnd.visible = True
                rnd.text.append(text)
                out.append(TextDelta(text))
            for piece in delta.get("tool_calls") or ():
                call = rnd.calls.setdefault(int(piece.get("index") or 0), Call())
                if piece.get("id"):
                    call.id = piece["id"]
                fn = piece.get("function") or {}
                if fn.get("name") and not call.name:
                    call.name = fn["name"]
                    out.append(ToolUpdate(call.id or call.name, "function", "started", f"Calling {call.name}"))
                if fn.get("arguments"):
                    call.arguments.append(fn["arguments"])
            if choice.get("finish_reason"):
                rnd.finish = choice["finish_reason"]
        return out
