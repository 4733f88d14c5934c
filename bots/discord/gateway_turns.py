"""The gateway's reader takes turns with the messages it has already handed over.

discord.py reads the gateway in one task: it takes a frame from the socket, parses it into a Message and
schedules the handler, and reads the next — without giving the event loop back while frames are buffered
(aiohttp's `receive()` returns a buffered frame without suspending). In a burst of mentions, frames keep
arriving while the first ones are answered, so the reader parses frame after frame (~0.1 ms each) and the
messages already handed over get the loop only between its drains: with 200 mentions the first request to the
model left only after most of the burst had been parsed. Here the reader yields once every EVERY frames: the
messages already on their way take a step in between, so the first questions reach the model while the later
ones are still arriving. Not before every frame: that cut a burst's work into so many small steps (a hand-off to
the SQLite thread for every message's statements, a loop turn per frame) that it cost ~20 % more CPU per message.
"""
from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from discord.http import HTTPClient

EVERY = 4   # frames between two turns of the event loop


def take_turns(http: HTTPClient) -> None:
    """From now on the gateway sockets `http` opens yield to the event loop before every EVERY-th frame."""
    connect = http.ws_connect

    async def connect_taking_turns(url: str, **kwargs: Any) -> aiohttp.ClientWebSocketResponse:
        socket = await connect(url, **kwargs)
        receive = socket.receive
        frames = 0

        async def receive_in_turn(timeout: float | None = None) -> aiohttp.WSMessage:
            nonlocal frames
            frames += 1
            if frames % EVERY == 0:
                await asyncio.sleep(0)
            return await receive(timeout)

        socket.receive = receive_in_turn  # type: ignore[method-assign]  # discord.py calls socket.receive per frame
        return socket

    http.ws_connect = connect_taking_turns  # type: ignore[method-assign]  # discord.py opens the gateway with it
