"""What a streamed request of either API (Responses, Chat Completions) does the same way: read the raw SSE
body read by read, map the SDK's and the transport's failures, and retry a round while nothing of it
reached the user. The API-specific part — what a payload means — stays with each API's stream.
"""
from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing, asynccontextmanager
from typing import Any, AsyncContextManager, AsyncIterator, Awaitable, Callable, Protocol

import openai
from openai import AsyncOpenAI

from core.backends import errors
from core.backends.retry import Retryable, delay_for
from core.backends.sse import SSEDecoder
from core.errors import BackendError
from core.model import BackendEvent

log = logging.getLogger(__name__)

# A request refused for an option the server does not know -> the request without it (None: not that case).
Fallback = Callable[[BackendError, dict[str, Any]], "dict[str, Any] | None"]


class Body(Protocol):
    """A streamed response body read like aiohttp's (core.backends.direct); the SDK's through sdk_body()."""

    def iter_any(self) -> AsyncIterator[bytes]: ...


class _SDKChunks:
    """The SDK's streamed response, read like aiohttp's body stream (`iter_any`)."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def iter_any(self) -> AsyncIterator[bytes]:
        return self._raw.iter_bytes()


@asynccontextmanager
async def sdk_body(response: AsyncContextManager[Any]) -> AsyncIterator[Body]:
    """An SDK `with_streaming_response.create(...)` as a Body."""
    async with response as raw:
        yield _SDKChunks(raw)


class RoundState(Protocol):
    """A round's progress as the retry loop needs it."""

    visible: bool                 # some of its text already reached the user: a retry would repeat it

    def restart(self) -> None: ...


class RetryingStream:
    """One round = one streamed request, retried (with backoff) while nothing was shown. Stateless between
    rounds: everything a round learns is in its RoundState."""

    def __init__(self, client: AsyncOpenAI, *, who: str, max_retries: int, headers: dict[str, Any] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, fallback: Fallback | None = None) -> None:
        # Retried here, not in the SDK: only we know whether text already reached the user.
        self._client = client.with_options(max_retries=0)
        self._who = who
        self._max_retries = max_retries
        self._headers = headers or {}
        self._sleep = sleep
        self._fallback = fallback

    async def _retrying(self, attempt: Callable[[dict[str, Any]], AsyncIterator[BackendEvent]],
                        params: dict[str, Any], rnd: RoundState) -> AsyncIterator[BackendEvent]:
        tries = 0
        while True:
            try:
                async for ev in attempt(params):
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
                if tries >= self._max_retries:
                    raise BackendError(exc.message + (f" (gave up after {tries + 1} attempts)" if tries else ""))
                tries += 1
                delay = delay_for(tries, exc.retry_after)
                log.warning("%s request failed (%s); retry %d/%d in %.2fs", self._who, exc.message, tries,
                            self._max_retries, delay)
                rnd.restart()
                await self._sleep(delay)

    def _failures(self) -> "_Failures":
        """The SDK's HTTP errors as BackendError/Retryable; transport failures as Retryable."""
        return _Failures(self._who)

    async def _payloads(self, response: AsyncContextManager[Body]) -> AsyncIterator[bytes]:
        """The data payloads of a streamed response's SSE body, one by one (see _batches)."""
        async with aclosing(self._batches(response)) as batches:
            async for batch in batches:
                for payload in batch:
                    yield payload

    async def _batches(self, response: AsyncContextManager[Body]) -> AsyncIterator[list[bytes]]:
        """The data payloads of a streamed response's SSE body, until `[DONE]` or the body's end: every payload
        that came in one read of the body at once (when the loop is busy, a read holds many: the layers above
        then take them in one step each, not one per payload). After the terminal event the body is read to its
        end (only the final chunk is left): a body left unread makes the HTTP client drop the keep-alive
        connection."""
        async with response as raw:
            decoder = SSEDecoder()
            chunks = aiter(raw.iter_any())
            async for chunk in chunks:
                batch = decoder.feed(chunk)
                if batch:
                    yield batch
                if decoder.done:
                    await _drain(chunks)
                    break

    def _unreadable(self, what: str = "event") -> BackendError:
        return BackendError(f"{errors.cap(self._who)} sent an unreadable {what}")


class _Failures:
    """RetryingStream._failures as a context manager written out: entered once per request to the model, where
    @asynccontextmanager would cost an async generator and contextlib's wrapper each time."""

    __slots__ = ("_who",)

    def __init__(self, who: str) -> None:
        self._who = who

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        if isinstance(exc, openai.APIStatusError):
            raise errors.classify(exc, self._who) from exc
        retry = errors.transport(exc, self._who)
        if retry is None:
            return False
        raise retry from exc


DRAIN_SECONDS = 1.0


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Reads what follows the terminal event (at most the body's last chunk) so the keep-alive connection goes
    back to the pool; a server that keeps the body open after it is left to the client's close. The answer is
    complete by now: a failure while draining changes nothing for it."""
    async def rest() -> None:
        async for _ in chunks:
            pass
    try:
        await asyncio.wait_for(rest(), DRAIN_SECONDS)
    except Exception:  # noqa: BLE001 - see above
        pass
