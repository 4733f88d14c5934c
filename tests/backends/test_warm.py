"""Connections to the model opened while messages are still on their way to their requests
(core/backends/warm.py, through core/backends/direct.py): a burst's requests find them open, a request never
opens a second connection beside the one opening for it, and steady traffic opens nothing new.

The server is a plain HTTP/1.1 one on 127.0.0.1 that records each TCP connection it accepts and each request."""
from __future__ import annotations

import asyncio

import pytest
import openai
from openai import AsyncOpenAI

from core.backends.direct import DirectJSON


class CountingServer:
    """Answers every POST with `{}` (keep-alive); `connections`: accepted so far; `requests`: (connection, path)."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[tuple[int, str]] = []
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> "CountingServer":
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                length = next((int(line.split(":", 1)[1]) for line in lines
                               if line.lower().startswith("content-length:")), 0)
                await reader.readexactly(length)
                self.requests.append((number, lines[0].split(" ")[1]))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def server():
    async with CountingServer() as s:
        yield s


@pytest.fixture
async def direct(server):
    client = AsyncOpenAI(base_url=server.base_url, api_key="sk-test")
    d = DirectJSON(client)
    yield d
    await d.aclose()
    await client.close()


async def _until(condition, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_burst_of_messages_finds_its_connections_open_when_its_requests_go(server, direct):
    for _ in range(3):        # three messages arrive; their events are being claimed
        direct.expect()
    await _until(lambda: server.connections == 3)   # opened meanwhile, before any request
    assert server.requests == []
    answers = await asyncio.gather(*(direct.post_json("responses", {"n": i}) for i in range(3)))
    assert answers == [{}, {}, {}]
    assert server.connections == 3 and sorted(n for n, _ in server.requests) == [1, 2, 3]


async def test_a_request_sent_while_its_connection_is_opening_waits_for_it_instead_of_opening_another(server, direct):
    direct.expect()
    assert await direct.post_json("responses", {}) == {}   # sent at once: its connection is still on its way
    assert server.connections == 1 and server.requests == [(1, "/v1/responses")]


async def test_steady_traffic_opens_nothing_new(server, direct):
    for _ in range(4):         # one message after the other: the idle connection serves each
        direct.expect()
        assert await direct.post_json("responses", {}) == {}
    assert server.connections == 1 and len(server.requests) == 4


async def test_a_request_whose_connection_failed_to_open_fails_with_it_without_connecting_again(monkeypatch):
    # Nothing listens on the port: the connect opened ahead fails, and so does the request — with that failure
    # (the SDK's exception), not after a second connect of its own (with a slow failure: twice the wait).
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    loop = asyncio.get_running_loop()
    connects: list[object] = []   # attempts to connect a socket (aiohttp: itself, or through aiohappyeyeballs)
    create_connection, sock_connect = loop.create_connection, loop.sock_connect

    async def counted_create(*args, **kwargs):
        if kwargs.get("sock") is None:
            connects.append(args)
        return await create_connection(*args, **kwargs)

    async def counted_sock(*args, **kwargs):
        connects.append(args)
        return await sock_connect(*args, **kwargs)

    monkeypatch.setattr(loop, "create_connection", counted_create)
    monkeypatch.setattr(loop, "sock_connect", counted_sock)
    client = AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-test")
    direct = DirectJSON(client)
    try:
        direct.expect()
        with pytest.raises(openai.APIConnectionError):
            await direct.post_json("responses", {})
        assert len(connects) == 1
    finally:
        await direct.aclose()
        await client.close()

