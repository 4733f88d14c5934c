"""Connections to the model opened while a message is still on its way to its request, not after.

A message that will be answered needs a connection for its POST /v1/responses. With none idle in the pool,
aiohttp opens one only when the request is sent: a TCP (at OpenAI a TLS) handshake after the message has been
claimed and its turn set up. In a burst, every message past the first few found the pool empty, and the
connects all came at the end, one loop turn (or round trip) after the other in front of every request.

Here a message that will need one says so as soon as it arrives (`expect`, before its event is claimed), and a
connection is taken from the connector for it then, in the background, while the claim goes to the store, and
put back idle into the pool. With an idle connection in the pool (steady traffic) that takes and puts back the
idle one: nothing new is opened. A request sent while such a connect is still on its way waits for it (`take`)
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
        self._idle = 0   # opened ahead and put in the pool since a request last took one (an estimate)

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
            waited_for = False
        except ValueError:   # a request waits for it (take), or closed meanwhile
            waited_for = True
        if task.cancelled():
            return
        if task.exception() is not None:   # the request makes its own (and says why it can't)
            log.debug("a connection opened ahead failed: %r", task.exception())
            return
        task.result().release()   # idle in the pool: the next request takes it
        if not waited_for:
            self._idle += 1

    def take(self) -> asyncio.Task | None:
        """Before a request: None when a connection opened ahead is idle in the pool (or none is coming), else
        the connect to wait for — the oldest on its way — rather than opening a second one beside it (when it is
        done, its connection is in the pool, unless another request took it meanwhile)."""
        if self._idle:
            self._idle -= 1
            return None
        return self._opening.popleft() if self._opening else None

    def close(self) -> None:
        """Nothing more is opened ahead; the connects on their way are cancelled."""
        for task in self._opening:
            task.cancel()
        self._opening.clear()
