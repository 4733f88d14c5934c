"""One streamed POST /chat/completions: text deltas out, tool calls assembled from their pieces, usage.

Read from the raw SSE body like the Responses stream (core.backends.sse): chunks are plain dicts here, since
compatible servers differ in what they add (reasoning_content, extra ids) and only a few keys matter.
Tool calls stream as fragments keyed by `index`: the first carries id and name, later ones append arguments.
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable

import openai
from openai import AsyncOpenAI

from core.backends import errors
from core.backends.retry import Retryable, delay_for
from core.backends.sse import SSEDecoder
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


class ChatStream:
    def __init__(self, client: AsyncOpenAI, *, who: str, max_retries: int, headers: dict[str, Any] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._client = client.with_options(max_retries=0)
        self._who = who
        self._max_retries = max_retries
        self._headers = headers or {}
        self._sleep = sleep

    async def round(self, params: dict[str, Any], rnd: ChatRound) -> AsyncIterator[BackendEvent]:
        attempt = 0
        while True:
            try:
                async for ev in self._stream(params, rnd):
                    yield ev
                return
            except Retryable as exc:
                if rnd.visible:
                    raise BackendError(exc.message) from exc
                if attempt >= self._max_retries:
                    raise BackendError(exc.message + (f" (gave up after {attempt + 1} attempts)" if attempt else ""))
                attempt += 1
                delay = delay_for(attempt, exc.retry_after)
                log.warning("%s request failed (%s); retry %d/%d in %.2fs", self._who, exc.message, attempt,
                            self._max_retries, delay)
                rnd.restart()
                await self._sleep(delay)

    async def _stream(self, params: dict[str, Any], rnd: ChatRound) -> AsyncIterator[BackendEvent]:
        try:
            # messages and the rest go as plain JSON in extra_body (it wins over the typed argument): the SDK's
            # TypedDict transform of a long history costs more CPU than the whole answer.
            body = {k: v for k, v in params.items() if k != "model"}
            async with self._client.chat.completions.with_streaming_response.create(
                    model=params["model"], messages=[], stream=True, extra_body=body,
                    extra_headers=self._headers) as raw:
                decoder = SSEDecoder()
                async for chunk in raw.iter_bytes():
                    for payload in decoder.feed(chunk):
                        for out in self._chunk(payload, rnd):
                            yield out
                    if decoder.done:
                        break
        except openai.APIStatusError as exc:
            raise errors.classify(exc, self._who) from exc
        except Exception as exc:
            retry = errors.transport(exc, self._who)
            if retry is None:
                raise
            raise retry from exc
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
            raise BackendError(f"{errors.cap(self._who)} sent an unreadable event") from exc
        if not isinstance(ev, dict):
            raise BackendError(f"{errors.cap(self._who)} sent an unreadable event")
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
