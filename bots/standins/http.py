"""What the stand-ins share: serving on 127.0.0.1 (an ephemeral port: several test runs share the machine).
And what the OpenAI-shaped ones (Responses, Chat Completions) share: recording every request with its headers,
OpenAI's error body, failures a test scripts ahead (`fail_next`), and the server-sent-events body of a streamed
answer."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, NamedTuple

from aiohttp import web

# A real API takes any number of connections at once: a burst of 200 new ones must not overflow the listen
# queue (aiohttp's default is 128) and wait out a SYN retry on a loaded machine.
BACKLOG = 1024

JSON_BODY = web.RequestKey("json", object)   # a request's parsed JSON body, as the middleware read it


async def listen(runner: web.AppRunner) -> int:
    """Set `runner` up and serve it on 127.0.0.1 at an ephemeral port; returns the port."""
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=BACKLOG)
    await site.start()
    return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


@dataclass(frozen=True, slots=True)
class HttpFailure:
    status: int
    times: int = 1
    retry_after: str | None = None
    message: str = ""
    path: str = "/v1/responses"


class RecordedRequest(NamedTuple):
    method: str
    path: str
    body: Any          # parsed JSON, the form fields of a multipart upload, or None


def error(status: int, message: str, *, type_: str = "invalid_request_error", code: str | None = None,
          param: str | None = None, headers: dict[str, str] | None = None) -> web.Response:
    """OpenAI's error body, which the SDK turns into its APIStatusError."""
    return web.json_response({"error": {"message": message, "type": type_, "param": param, "code": code}},
                             status=status, headers=headers)


def consume(value: Any) -> Any:
    """Pydantic validates `Iterable[...]` TypedDict fields lazily: walk them so errors surface now."""
    if isinstance(value, dict):
        return {k: consume(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [consume(v) for v in value]
    if type(value).__name__ == "ValidatorIterator":
        return [consume(v) for v in value]
    return value


class RecordingServer:
    """An aiohttp app on 127.0.0.1 that records what it was sent; `async with` starts and stops it."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.headers: list[dict[str, str]] = []   # request headers, per request
        self.client_ports: list[int] = []         # per request: the client's port, i.e. which connection carried it
        self._failures: list[list[Any]] = []      # [HttpFailure, remaining]
        self._runner: web.AppRunner | None = None
        self.port = 0

    def _app(self) -> web.Application:
        raise NotImplementedError

    async def __aenter__(self):  # noqa: ANN204 - the subclass
        self._runner = web.AppRunner(self._app(), access_log=None)
        self.port = await listen(self._runner)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _record(self, request: web.Request, body: Any) -> None:
        self.requests.append(RecordedRequest(request.method, request.path, body))
        self.headers.append(dict(request.headers))
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        self.client_ports.append(peer[1] if peer else 0)

    def _scripted_failure(self, path: str) -> HttpFailure | None:
        """The failure scripted for a request to `path` now, if any (each counts down its `times`)."""
        for entry in self._failures:
            failure, remaining = entry
            if remaining > 0 and path == failure.path:
                entry[1] -= 1
                return failure
        return None


class SseStream:
    """The text/event-stream body of one streamed answer: one frame per event (`data: <json>`, after an
    `event: <type>` line when given), and the two ways a test ends it early (`cut`)."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})

    async def open(self) -> None:
        await self.response.prepare(self.request)

    async def send(self, data: dict[str, Any] | str, *, event: str | None = None) -> None:
        text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        frame = f"event: {event}\ndata: {text}\n\n" if event is not None else f"data: {text}\n\n"
        await self.response.write(frame.encode())

    async def end(self) -> web.StreamResponse:
        await self.response.write_eof()
        return self.response

    async def cut(self, mode: str) -> web.StreamResponse:
        """"abort" drops the TCP connection mid-body (the client sees an incomplete chunked read); "eof" ends
        the body cleanly but without the terminal event."""
        if mode == "eof":
            await self.response.write_eof()
        else:
            assert self.request.transport is not None
            self.request.transport.abort()
        return self.response
