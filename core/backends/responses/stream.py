"""One streamed POST /v1/responses: its events mapped (core.backends.responses.events); reading the SSE body,
failures and retries are core.backends.streaming's. The request goes out directly (core.backends.direct), or
through the SDK when the client needs its auth."""
from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing
from typing import Any, AsyncIterator, Awaitable, Callable

import orjson
from openai import AsyncOpenAI
from pydantic import ValidationError

from core.backends.direct import DirectJSON, dumps
from core.backends.responses.events import (DELTA, EVENT_CLASSES, PLAIN, SKIP, EventMapper, Round, TurnState,
                                            read_plain)
from core.backends.retry import Retryable
from core.backends.streaming import Fallback, RetryingStream, sdk_body
from core.model import BackendEvent, ConversationStarted, TextDelta

log = logging.getLogger(__name__)

CREATED = "response.created"
COMPLETED = "response.completed"


class ResponsesStream(RetryingStream):
    def __init__(self, client: AsyncOpenAI, mapper: EventMapper, *, who: str, max_retries: int,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, headers: dict[str, Any] | None = None,
                 fallback: Fallback | None = None, direct: DirectJSON | None = None) -> None:
        super().__init__(client, who=who, max_retries=max_retries, headers=headers, sleep=sleep, fallback=fallback)
        # The request itself goes out directly (core.backends.direct); the SDK when the client needs its auth.
        # `direct`: one shared with the backend's other direct requests (their connections serve each other).
        self._direct = direct if direct is not None else DirectJSON.for_client(client, headers)
        self._mapper = mapper

    def round(self, params: dict[str, Any], rnd: Round, state: TurnState) -> AsyncIterator[BackendEvent]:
        return self._retrying(lambda p: self._stream(p, rnd, state), params, rnd)

    def prepare(self) -> None:
        if self._direct is not None:
            self._direct.prepare()

    async def aclose(self) -> None:
        if self._direct is not None:
            await self._direct.aclose()

    def _open(self, params: dict[str, Any]):
        """The streamed POST /v1/responses; yields an async iterator of body chunks."""
        if self._direct is not None:
            return self._direct.post("responses", dumps({**params, "stream": True}))
        # The body goes in extra_body: it is plain JSON already, and the SDK's TypedDict transform walks every
        # nested input/tool part with typing introspection. The request on the wire is the same.
        body = {k: v for k, v in params.items() if k != "model"}
        return sdk_body(self._client.responses.with_streaming_response.create(
            model=params["model"], stream=True, extra_body=body, extra_headers=self._headers))

    async def _stream(self, params: dict[str, Any], rnd: Round, state: TurnState) -> AsyncIterator[BackendEvent]:
        async with self._failures(), aclosing(self._batches(self._open(params))) as batches:
            async for batch in batches:
                # The text deltas of one read go on as one TextDelta (the reply shows them at once either way);
                # any other event goes after the text before it.
                run: list[str] = []
                for payload in batch:
                    ev = _event_object(payload)
                    kind = ev.get("type") if ev is not None else None
                    delta = ev.get("delta") if kind == DELTA else None
                    if ev is None or kind == DELTA and type(delta) is not str:
                        # garbled: the text of this read before it still reaches the reader, then the error
                        log.error("%s sent an unreadable event: %r", self._who, payload[:200])
                        if run:
                            yield self._text(run, rnd)
                        raise self._unreadable()
                    if kind == DELTA:     # the hot path: no pydantic
                        rnd.visible = True
                        run.append(delta)
                        continue
                    if rnd.stored and (kind == CREATED or kind == COMPLETED):
                        # a first turn without a conversation: where its exchange is kept
                        response = ev.get("response")
                        if kind == CREATED and isinstance(response, dict) and isinstance(response.get("id"), str):
                            if run:
                                yield self._text(run, rnd)
                                run = []
                            rnd.response_id = response["id"]   # kept, should the answer end midway
                            yield ConversationStarted(rnd.response_id, pending=True)
                        elif kind == COMPLETED and isinstance(response, dict):
                            output = response.get("output")
                            rnd.output = list(output) if isinstance(output, list) else []
                    if kind in SKIP or kind in PLAIN and read_plain(kind, ev, rnd):
                        continue          # nothing (else) to show or keep: the text run goes on
                    if run:
                        yield self._text(run, rnd)
                        run = []
                    async for out in self._event(kind, ev, rnd, state):
                        yield out
                if run:
                    yield self._text(run, rnd)
        if not rnd.terminal:
            raise Retryable("The connection to the model was lost mid-answer")

    @staticmethod
    def _text(run: list[str], rnd: Round) -> TextDelta:
        text = run[0] if len(run) == 1 else "".join(run)
        rnd.text.append(text)
        return TextDelta(text)

    async def _event(self, kind: str | None, ev: dict[str, Any], rnd: Round,
                     state: TurnState) -> AsyncIterator[BackendEvent]:
        """Any event but a text delta and those read plainly (the rare ones: typed through the SDK's models)."""
        cls = EVENT_CLASSES.get(kind)
        if cls is None:
            return             # an event type newer than this SDK: nothing we render
        try:
            typed = cls.model_validate(ev)
        except ValidationError as exc:
            log.error("%s sent a %s event this SDK cannot read: %s", self._who, kind, exc)
            raise self._unreadable(f"{kind} event") from exc
        async for out in self._mapper.handle(typed, rnd, state):
            yield out


def _event_object(payload: bytes) -> dict[str, Any] | None:
    """One SSE data payload as the JSON object every Responses event is; None for anything else."""
    try:
        ev = orjson.loads(payload)
    except ValueError:
        return None
    return ev if type(ev) is dict else None
