"""Connections to the model opened while a message is still on its way to its request, not after.

A message that will be answered needs a connection for its POST /v1/responses. With none idle in the pool,
aiohttp opens one only when the request is sent: a TCP (at OpenAI a TLS) handshake after the message has been
claimed and its turn set up. In a burst, every message past the first few found the pool empty, and the
connects all came at the end, one loop turn (or round trip) after the other in front of every request.

Here a message that will need one says so as soon as it arrives (`expect`, before its event is claimed), and a
connection is taken from the connector for it then, in the background, while the claim goes to the store, and
put back idle into the pool. With an idle connection in the pool (steady traffic) that takes and puts back the
idle one: nothing new is opened. A request sent while such a connect is still on its way waits for it (`ready`)
instead of opening a second one. A duplicate delivery (its claim fails) leaves its connection idle in the pool,
where aiohttp closes it after the keep-alive time like any other.

Only aiohttp's documented connector calls are used: `BaseConnector.connect` and `Connection.release`.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque

import aiohttp
import yarl

log = logging.getLogger(__name__)


class Warmer:
    """Opens connections to `url`'s server ahead of the requests that will need them, on `session`'s connector."""

    def __init__(self, session: aiohttp.ClientSession, url: yarl.URL, timeout: aiohttp.ClientTimeout) -> None:
        self._connector = session.connector
        self._url = url
        self._timeout = timeout
        self._request: aiohttp.ClientRequest | None = None   # stands for the requests to `url` (host, port, TLS)
        self._opening: deque[asyncio.Task] = deque()

    def expect(self) -> None:
        """A request to `url` is coming: take a connection for it now (in a running loop) and put it back idle."""
        connector = self._connector
        if connector is None or connector.closed:
            return
        if self._request is None:
            self._request = aiohttp.ClientRequest("POST", self._url, loop=asyncio.get_running_loop())
        task = asyncio.ensure_future(connector.connect(self._request, [], self._timeout))
        task.add_done_callback(self._opened)
        self._opening.append(task)

    def _opened(self, task: asyncio.Task) -> None:
        try:
            self._opening.remove(task)
        except ValueError:   # closed meanwhile
            pass
        if task.cancelled():
            return
        if task.exception() is not None:   # the request makes its own (and says why it can't)
            log.debug("a connection opened ahead failed: %r", task.exception())
            return
        task.result().release()   # idle in the pool: the next request takes it

    @property
    def opening(self) -> bool:
        """Whether a connection opened ahead is still on its way."""
        return bool(self._opening)

    async def ready(self) -> None:
        """Before a request: a connection on its way is waited for, not opened a second time beside it (each
        request waits for at most one, the oldest; it is in the pool when this returns, unless taken meanwhile)."""
        if self._opening:
            await asyncio.wait((self._opening.popleft(),))

    def close(self) -> None:
        """Nothing more is opened ahead; the connects on their way are cancelled."""
        for task in self._opening:
            task.cancel()
        self._opening.clear()
