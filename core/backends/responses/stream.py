"""One streamed POST /v1/responses, read from the raw SSE body, retried while nothing was shown."""
from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable

import openai
import orjson
from openai import AsyncOpenAI
from pydantic import ValidationError

from core.backends import errors
from core.backends.direct import DirectJSON, dumps
from core.backends.responses.events import DELTA, EVENT_CLASSES, SKIP, EventMapper, Round, TurnState
from core.backends.retry import Retryable, delay_for
from core.backends.sse import SSEDecoder
from core.model import BackendEvent, TextDelta
from core.errors import BackendError

log = logging.getLogger(__name__)

# A request refused for an option the server does not know -> the request without it (None: not that case).
Fallback = Callable[[BackendError, dict[str, Any]], "dict[str, Any] | None"]


class ResponsesStream:
    def __init__(self, client: AsyncOpenAI, mapper: EventMapper, *, who: str, max_retries: int,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, headers: dict[str, Any] | None = None,
                 fallback: Fallback | None = None) -> None:
        # Retried here, not in the SDK: only we know whether text already reached the user.
        self._client = client.with_options(max_retries=0)
        # The request itself goes out directly (core.backends.direct); the SDK when the client needs its auth.
        self._direct = DirectJSON.for_client(client, headers)
        self._mapper = mapper
        self._who = who
        self._max_retries = max_retries
        self._sleep = sleep
        self._headers = headers or {}
        self._fallback = fallback

    async def round(self, params: dict[str, Any], rnd: Round, state: TurnState) -> AsyncIterator[BackendEvent]:
        attempt = 0
        while True:
            try:
                async for ev in self._stream(params, rnd, state):
                    yield ev
                return
            except BackendError as exc:
                changed = None if rnd.visible or self._fallback is None else self._fallback(exc, params)
                if changed is None:
                    raise
                log.warning("%s refused a request option (%s); sending without it", self._who, exc.message)
                params = changed
                rnd.restart()
            except Retryable as exc:
                if rnd.visible:
                    # Text is already on the user's screen: a second request would repeat it.
                    raise BackendError(exc.message) from exc
                if attempt >= self._max_retries:
                    raise BackendError(exc.message + (f" (gave up after {attempt + 1} attempts)" if attempt else ""))
                attempt += 1
                delay = delay_for(attempt, exc.retry_after)
                log.warning("%s request failed (%s); retry %d/%d in %.2fs", self._who, exc.message, attempt,
                            self._max_retries, delay)
                rnd.restart()
                await self._sleep(delay)

    async def aclose(self) -> None:
        if self._direct is not None:
            await self._direct.aclose()

    def _open(self, params: dict[str, Any]):
        """The streamed POST /v1/responses; yields an async iterator of body chunks."""
        if self._direct is not None:
            return self._direct.post("responses", dumps({**params, "stream": True}))
        return _sdk_stream(self._client, params, self._headers)

    async def _stream(self, params: dict[str, Any], rnd: Round, state: TurnState) -> AsyncIterator[BackendEvent]:
        try:
            async with self._open(params) as raw:
                decoder = SSEDecoder()
                async for chunk in raw.iter_any():
                    for payload in decoder.feed(chunk):
                        try:
                            ev = orjson.loads(payload)
                        except ValueError as exc:
                            log.error("%s sent an event that is not JSON: %r", self._who, payload[:200])
                            raise BackendError(f"{errors.cap(self._who)} sent an unreadable event") from exc
                        kind = ev.get("type")
                        if kind == DELTA:     # the hot path: no pydantic
                            rnd.visible = True
                            delta = ev["delta"]
                            rnd.text.append(delta)
                            yield TextDelta(delta)
                            continue
                        if kind in SKIP:
                            continue
                        cls = EVENT_CLASSES.get(kind)
                        if cls is None:
                            continue           # an event type newer than this SDK: nothing we render
                        try:
                            typed = cls.model_validate(ev)
                        except ValidationError as exc:
                            log.error("%s sent a %s event this SDK cannot read: %s", self._who, kind, exc)
                            raise BackendError(f"{errors.cap(self._who)} sent an unreadable {kind} event") from exc
                        async for out in self._mapper.handle(typed, rnd, state):
                            yield out
                    if decoder.done:
                        break
                    # After the terminal event keep reading to the end of the body (only the final chunk is
                    # left): a body left unread makes httpx drop the keep-alive connection.
        except openai.APIStatusError as exc:
            raise errors.classify(exc, self._who) from exc
        except Exception as exc:
            retry = errors.transport(exc, self._who)
            if retry is None:
                raise
            raise retry from exc
        if not rnd.terminal:
            raise Retryable("The connection to the model was lost mid-answer")


class _SDKChunks:
    """The SDK's streamed response, read like aiohttp's body stream (`iter_any`)."""

    def __init__(self, raw) -> None:
        self._raw = raw

    def iter_any(self) -> AsyncIterator[bytes]:
        return self._raw.iter_bytes()


@asynccontextmanager
async def _sdk_stream(client: AsyncOpenAI, params: dict[str, Any], headers: dict[str, Any]):
    # The body goes in extra_body: it is plain JSON already, and the SDK's TypedDict transform walks every
    # nested input/tool part with typing introspection. The request on the wire is the same.
    body = {k: v for k, v in params.items() if k != "model"}
    async with client.responses.with_streaming_response.create(model=params["model"], stream=True, extra_body=body,
                                                                extra_headers=headers) as raw:
        yield _SDKChunks(raw)
