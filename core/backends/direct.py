"""The hot path's own HTTP: the two requests in front of every new answer, without the SDK's request machinery.

Before the model writes a word, a new conversation costs `POST /v1/conversations` and every answer costs
`POST /v1/responses`. Through the SDK each one builds pydantic request options (copied twice), walks the body
with typing introspection, merges header dicts, builds an httpx request and converts it for its aiohttp
transport: about 1 ms of CPU per request, and a burst of 200 mentions queues behind 200 of them on one event
loop. Here the headers are merged once per client, the body is serialized once with orjson and sent on an
aiohttp session of our own.

The SDK keeps its role everywhere else (files, vector stores, containers, listing, deleting, the condensing
request), and this module borrows from it what a request must match: the base URL, the API key and default
headers (OpenAI-Organization, OpenAI-Project, User-Agent, the headers a backend adds or omits), the timeout,
and its exception types — a failure here raises the same openai.APIStatusError / APITimeoutError /
APIConnectionError the SDK would, so core.backends.errors words it the same way. A client with another kind
of credential (a key provider, workload identity) is not handled here: `for_client` returns None and the
caller uses the SDK.
"""
from __future__ import annotations

import asyncio
from typing import Any, Mapping

import aiohttp
import httpx2
import openai
import orjson
import yarl
from openai import AsyncOpenAI

# The SDK's mapping of an HTTP status to its exception type (openai._client.AsyncOpenAI._make_status_error).
_STATUS_ERRORS: dict[int, type[openai.APIStatusError]] = {
    400: openai.BadRequestError, 401: openai.AuthenticationError, 403: openai.PermissionDeniedError,
    404: openai.NotFoundError, 409: openai.ConflictError, 422: openai.UnprocessableEntityError,
    429: openai.RateLimitError,
}


def dumps(body: Mapping[str, Any]) -> bytes:
    return orjson.dumps(body)


def _timeout(value: Any) -> aiohttp.ClientTimeout:
    """The SDK's timeout (seconds, or an httpx Timeout) as aiohttp's: per connect and per read, no total (an
    answer may stream for minutes)."""
    if isinstance(value, (int, float)):
        return aiohttp.ClientTimeout(total=None, sock_connect=float(value), sock_read=float(value))
    if isinstance(value, httpx2.Timeout):
        return aiohttp.ClientTimeout(total=None, sock_connect=value.connect, sock_read=value.read)
    return aiohttp.ClientTimeout(total=None)   # None: the client set no limit


class DirectJSON:
    """JSON POSTs to one SDK client's server. One aiohttp session per event loop, closed by aclose()."""

    def __init__(self, client: AsyncOpenAI, headers: Mapping[str, Any] | None = None) -> None:
        self._client = client
        self._extra = dict(headers or {})
        self._base = str(client.base_url).rstrip("/") + "/"
        self._timeout = _timeout(client.timeout)
        # Worked out now, at start: the SDK's default headers describe the platform, and finding out the
        # processor runs `uname -p` in a subprocess (once per process) — in the first answer's way otherwise.
        self._headers = self._merged_headers()
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._urls: dict[str, yarl.URL] = {}    # parsed once per path (a new conversation's label: once per id)

    @staticmethod
    def for_client(client: AsyncOpenAI, headers: Mapping[str, Any] | None = None) -> "DirectJSON | None":
        """None when the client authenticates with anything but a plain API key: the SDK handles that."""
        if not isinstance(client.api_key, str) or client.workload_identity is not None:
            return None
        return DirectJSON(client, headers)

    # ---- what every request carries, worked out once -----------------------------------------------------

    def headers(self) -> dict[str, str]:
        return self._headers

    def _merged_headers(self) -> dict[str, str]:
        merged: dict[str, tuple[str, Any]] = {}   # lower-case name -> (name, value): HTTP names ignore case
        key = self._client.api_key
        for source in ({"Authorization": f"Bearer {key}"} if key else {}, self._client.default_headers, self._extra):
            for name, value in source.items():
                merged[name.lower()] = (name, value)
        # openai.Omit: a header the client or backend leaves out (a local server gets no Authorization)
        return {name: value for name, value in merged.values() if isinstance(value, str)}

    def prepare(self) -> None:
        """Opens the HTTP session now (in a running event loop), not in the first answer's way."""
        self._session_now()

    def _session_now(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            # keep-alive for as many answers as stream at once; the SDK's aiohttp transport allows 1,000 too.
            # What every request carries is the session's: aiohttp merges it per request without parsing again.
            # No cookie jar: the API sets none worth keeping, and the jar is walked on every request.
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000), headers=self.headers(),
                                                  timeout=self._timeout, cookie_jar=aiohttp.DummyCookieJar())
            self._loop = loop
        return self._session

    def _url(self, path: str) -> yarl.URL:
        url = self._urls.get(path)
        if url is None:
            url = yarl.URL(self._base + path)
            if len(self._urls) < 64:   # the fixed paths; a label's path names its conversation
                self._urls[path] = url
        return url

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed and self._loop is asyncio.get_running_loop():
            await session.close()

    # ---- requests ------------------------------------------------------------------------------------------

    def post(self, path: str, body: bytes) -> "_Posted":
        """`async with post(path, body) as content:` POST `body` (JSON) to base_url + path; `content` is the
        response body stream once the status is 2xx. Raises the SDK's exceptions for a status error or a
        failure before the response; a failure while the body is read raises aiohttp's
        (core.backends.errors.transport words both)."""
        return _Posted(self._session_now(), self._url(path), self._base + path, body)

    async def post_json(self, path: str, body: Mapping[str, Any]) -> Any:
        """A plain JSON request and its decoded answer (errors as the SDK raises them for a non-streamed call)."""
        url = self._base + path
        async with self.post(path, dumps(body)) as content:
            try:
                data = await content.read()
            except asyncio.TimeoutError as exc:
                raise openai.APITimeoutError(request=httpx2.Request("POST", url)) from exc
            except aiohttp.ClientError as exc:
                raise openai.APIConnectionError(request=httpx2.Request("POST", url)) from exc
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise openai.APIResponseValidationError(
                response=httpx2.Response(200, content=data, request=httpx2.Request("POST", url)), body=None,
                message="The server's answer is not JSON") from exc


class _Posted:
    """One POST of DirectJSON.post, as an async context manager written out (not @asynccontextmanager: every
    answer's request goes through here, and the generator form costs an async generator and contextlib's
    wrapper per request)."""

    __slots__ = ("_session", "_url", "_text_url", "_body", "_resp")

    def __init__(self, session: aiohttp.ClientSession, url: yarl.URL, text_url: str, body: bytes) -> None:
        self._session, self._url, self._text_url, self._body = session, url, text_url, body
        self._resp: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> aiohttp.StreamReader:
        try:
            resp = await self._session.post(self._url, data=self._body,
                                            allow_redirects=False)   # a token never follows a redirect
        except asyncio.TimeoutError as exc:
            raise openai.APITimeoutError(request=httpx2.Request("POST", self._text_url)) from exc
        except aiohttp.ClientError as exc:
            raise openai.APIConnectionError(request=httpx2.Request("POST", self._text_url)) from exc
        if resp.status >= 300:
            try:
                raise await _status_error(resp, self._text_url)
            finally:
                _done(resp)
        self._resp = resp
        return resp.content

    async def __aexit__(self, *exc: object) -> None:
        resp, self._resp = self._resp, None
        if resp is not None:
            _done(resp)


def _done(resp: aiohttp.ClientResponse) -> None:
    if resp.content.at_eof():
        resp.release()     # back to the pool
    else:
        resp.close()       # left early (a stopped reply): this connection can't be reused


async def _status_error(resp: aiohttp.ClientResponse, url: str) -> openai.APIStatusError:
    """The exception the SDK raises for this status, with the same message, body and response."""
    try:
        raw = await resp.read()
    except (aiohttp.ClientError, asyncio.TimeoutError):
        raw = b""
    text = raw.decode("utf-8", "replace").strip()
    body: Any = text
    message = f"Error code: {resp.status}"
    try:
        body = orjson.loads(text) if text else None
    except orjson.JSONDecodeError:
        body = text or None
    else:
        error = body.get("error", body) if isinstance(body, dict) else None
        if isinstance(error, dict) and isinstance(error.get("message"), str) and error["message"]:
            message += f" - {error['message']}"
    # aiohttp has decoded the body already: its encoding and length headers would mislead the reader
    headers = [(k, v) for k, v in resp.headers.items() if k.lower() not in ("content-encoding", "content-length")]
    response = httpx2.Response(resp.status, headers=headers, content=raw,
                               request=httpx2.Request("POST", url))
    cls = _STATUS_ERRORS.get(resp.status, openai.InternalServerError if resp.status >= 500 else openai.APIStatusError)
    return cls(message, response=response, body=body)
