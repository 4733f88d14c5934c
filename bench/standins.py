"""The test stand-ins, wrapped for measuring: each records *when* things happen, per answer.

All timestamps are time.monotonic() in the bench process (the stand-ins all run here), so they compare
directly. An answer is identified by its tag ("q0007"): the user's message carries it, the model's answer
starts with it, and each conversation has a channel of its own, so the channel names the answer too.

Nothing here changes what the stand-ins answer or how they enforce limits; the subclasses only observe
(and index the message stores, whose linear scans would otherwise make the bench process, not the bot,
the bottleneck at 1,000 conversations).
"""
from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bench.quietgc import GCHold
from bots.standins.discord_server import FakeDiscord, StoredMessage
from bots.standins.http import BACKLOG
from bots.standins.openai_server import FakeOpenAI, ScriptedResponse, last_user_text
from bots.standins.slack_server import FakeSlack, Message

now = time.monotonic
_ARRIVED = web.RequestKey("bench_arrived", float)   # when the request to the model began to arrive


@dataclass
class AnswerTimes:
    """Everything observed about one answer (times in monotonic seconds, None = never happened)."""
    tag: str
    answer: str
    event_sent: float | None = None
    model_request: float | None = None       # first POST /v1/responses for this answer arrived
    first_delta: float | None = None         # the model wrote its first text delta
    last_delta: float | None = None          # ... and its last one
    first_visible: float | None = None       # the platform first held a message showing the first delta
    complete_visible: float | None = None    # the platform first showed the complete answer
    written: float | None = None             # the bot wrote its request's body (its own clock: bench/written.py)
    visible: str = ""                        # what a reader sees at the end
    posts: int = 0
    edits: int = 0
    appends: int = 0
    rate_limited: int = 0
    other_calls: int = 0


def tag_of(text: str) -> str | None:
    for word in text.replace("<", " ").replace(">", " ").split():
        if len(word) == 6 and word[0] == "q" and word[1:].isdigit():
            return word
    return None


class Ledger:
    """The answers of one run, by tag and by channel."""

    def __init__(self) -> None:
        self.by_tag: dict[str, AnswerTimes] = {}
        self.by_channel: dict[str, AnswerTimes] = {}
        self.changed = asyncio.Event()
        # The bot's CPU seconds when every answer of the burst had reached the model (set by the harness)
        self.cpu_probe = None
        self.requests_expected = 0
        self.requests_arrived = 0
        self.cpu_at_last_request: float | None = None
        # no collection of this process's heap until the burst's last request arrived (bench/quietgc.py)
        self.gc = GCHold()

    def model_requested(self) -> None:
        self.requests_arrived += 1
        if self.cpu_probe is not None and self.requests_arrived == self.requests_expected:
            self.cpu_at_last_request = self.cpu_probe()
        self.gc.arrived(self.requests_arrived)

    def add(self, tag: str, answer: str, channel: str) -> AnswerTimes:
        a = AnswerTimes(tag=tag, answer=answer)
        self.by_tag[tag] = a
        self.by_channel[channel] = a
        return a

    def observe(self, a: AnswerTimes, visible: str) -> None:
        """Called right after the platform stored a change: what does the reader see now?"""
        t = now()
        a.visible = visible
        if a.first_visible is None and a.answer[:20] and a.answer[:20] in visible:
            a.first_visible = t
        if a.complete_visible is None and _normal(visible) == _normal(a.answer):
            a.complete_visible = t
            self.changed.set()

    def done(self) -> int:
        return sum(1 for a in self.by_tag.values() if a.complete_visible is not None)


def _normal(text: str) -> str:
    return text.strip()


# ---- OpenAI -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnswerShape:
    chars: int = 1_200
    delta_chars: int = 20
    interval: float = 0.025
    first_delay: float = 0.2

    def text_for(self, tag: str) -> str:
        words = ("the", "bridge", "adds", "nothing", "a", "user", "can", "notice", "on", "top", "of", "model",
                 "and", "platform", "one", "small", "process", "carries", "whole", "company")
        out, i = [f"[{tag}]"], 0
        length = len(out[0]) + 1   # of the words so far, a space after each (summed anew per word: 2 ms an answer)
        while length < self.chars:
            out.append(words[i % len(words)] + ("." if i % 11 == 10 else ""))
            length += len(out[-1]) + 1
            i += 1
        return " ".join(out)[: self.chars]


class BenchOpenAI(FakeOpenAI):
    def __init__(self, ledger: Ledger, shape: AnswerShape) -> None:
        super().__init__()
        self.ledger, self.shape = ledger, shape
        self.responder = self._answer
        # the stand-in keeps every request; at 1,000 answers that is only memory, but conversation items
        # and stored responses are never read by the bench
        self.response_requests_seen = 0
        self._turn_busy = False
        self._turn_waiting: deque[asyncio.Future[None]] = deque()

    def _answer(self, body: dict[str, Any]) -> ScriptedResponse:
        tag = tag_of(last_user_text(body)) or ""
        a = self.ledger.by_tag.get(tag)
        text = a.answer if a is not None else self.shape.text_for(tag or "q9999")
        return ScriptedResponse(text=text, delta_size=self.shape.delta_chars, delay=self.shape.interval,
                                first_delay=self.shape.first_delay)

    async def __aenter__(self) -> "BenchOpenAI":
        """Served like every stand-in (RecordingServer), but through _Arrivals: each connection's protocol notes
        when a POST /v1/responses began to arrive — in the loop turn that read it from the socket, before aiohttp
        parses it, starts its handler (two more turns) and the stand-in reads, checks and answers it."""
        self._runner = web.AppRunner(self._app(), access_log=None)
        await self._runner.setup()
        server = self._runner.server
        assert server is not None
        arrivals = self._arrivals = _Arrivals()
        self._listener = await asyncio.get_running_loop().create_server(
            lambda: arrivals.protocol(server()), "127.0.0.1", 0, backlog=BACKLOG)
        self.port = self._listener.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self._listener.close()
        await super().__aexit__(*exc)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "POST" and request.path == "/v1/responses":   # taken whatever the answer
            request[_ARRIVED] = self._arrivals.take(request.protocol) or now()
        return await super()._middleware(request, handler)

    async def _create_response(self, request: web.Request) -> web.StreamResponse:
        t = request.get(_ARRIVED) or now()
        self.response_requests_seen += 1
        body = request.get(_json_key(), None)
        if isinstance(body, dict):
            a = self.ledger.by_tag.get(tag_of(last_user_text(body)) or "")
            if a is not None and a.model_request is None:
                a.model_request = t
                self.ledger.model_requested()
        self.requests.clear()  # keep memory flat: the bench reads its own ledger, not the request log
        return await super()._create_response(request)

    async def _stream(self, request: web.Request, body: dict[str, Any], plan, conv_id) -> web.StreamResponse:
        await self._turn()
        return await super()._stream(request, body, plan, conv_id)

    async def _turn(self) -> None:
        """One answer starts (is built, and its first events sent) per turn of the event loop. Answers started
        together would otherwise run back to back in one turn (~0.5 ms each), and a request arriving meanwhile
        would be noticed — timestamped — only after all of them."""
        if self._turn_busy:
            waiter = asyncio.get_running_loop().create_future()
            self._turn_waiting.append(waiter)
            await waiter          # handed over by _next_turn: busy stays True
        else:
            self._turn_busy = True
        asyncio.get_running_loop().call_soon(self._next_turn)

    def _next_turn(self) -> None:
        while self._turn_waiting:
            waiter = self._turn_waiting.popleft()
            if not waiter.done():     # cancelled: the client went away while waiting
                waiter.set_result(None)
                return
        self._turn_busy = False

    def _sent(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        if event.get("type") != "response.output_text.delta":
            return
        a = self.ledger.by_tag.get(tag_of(last_user_text(body)) or "")
        if a is not None:
            t = now()
            if a.first_delta is None:
                a.first_delta = t
            a.last_delta = t


class _Arrivals:
    """When each POST /v1/responses began to arrive, per connection (a connection carries one request after the
    other: the first noted is the first answered)."""

    def __init__(self) -> None:
        self.by_connection: dict[Any, deque[float]] = {}

    def protocol(self, inner: asyncio.Protocol) -> asyncio.Protocol:
        return _NotingProtocol(inner, self.by_connection)

    def take(self, connection: Any) -> float | None:
        times = self.by_connection.get(connection)
        return times.popleft() if times else None


class _NotingProtocol(asyncio.Protocol):
    """aiohttp's protocol for one connection, passed everything, noting the arrival of each request to the model."""

    def __init__(self, inner: asyncio.Protocol, by_connection: dict[Any, deque[float]]) -> None:
        self.inner, self.by_connection = inner, by_connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if data.startswith(b"POST /v1/responses "):   # a request's first bytes: its request line
            self.by_connection.setdefault(self.inner, deque()).append(now())
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.by_connection.pop(self.inner, None)
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


def _json_key():
    from bots.standins import openai_server
    return openai_server._JSON


# ---- Slack --------------------------------------------------------------------------------------------


class _IndexedMessages(list):
    """FakeSlack.messages with an index by (channel, ts) and by channel, kept on append."""

    def __init__(self) -> None:
        super().__init__()
        self.by_key: dict[tuple[str, str], Message] = {}
        self.bot_by_channel: dict[str, list[Message]] = defaultdict(list)

    def append(self, m: Message) -> None:  # type: ignore[override]
        super().append(m)
        self.by_key[(m.channel, m.ts)] = m
        if m.is_bot:
            self.bot_by_channel[m.channel].append(m)


POSTS = {"chat.postMessage", "chat.startStream"}
EDITS = {"chat.update"}
APPENDS = {"chat.appendStream", "chat.stopStream"}


class BenchSlack(FakeSlack):
    def __init__(self, ledger: Ledger, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ledger = ledger
        self.messages = _IndexedMessages()
        self.call_counts: dict[str, int] = defaultdict(int)

    def message(self, channel: str, ts: str) -> Message | None:
        return self.messages.by_key.get((channel, ts))

    def bot_messages(self, channel: str | None = None, thread_ts: str | None = None, *,
                     top_level: bool = False) -> list[Message]:
        if channel is None:
            return super().bot_messages(channel, thread_ts, top_level=top_level)
        out = self.messages.bot_by_channel.get(channel, [])
        if thread_ts is not None:
            out = [m for m in out if m.thread_ts == thread_ts]
        if top_level:
            out = [m for m in out if m.thread_ts is None]
        return list(out)

    async def _notify(self) -> None:
        # Nobody waits on the condition during a bench; notify_all on every call costs the bench process.
        return None

    def _over_limit(self, method: str, args: dict) -> bool:
        limited = super()._over_limit(method, args)
        self.call_counts[method] += 1
        self.calls.clear()  # the bench counts calls itself; keep memory flat
        a = self.ledger.by_channel.get(str(args.get("channel") or args.get("channel_id") or ""))
        if a is not None:
            if limited:
                a.rate_limited += 1
            elif method in POSTS:
                a.posts += 1
            elif method in EDITS:
                a.edits += 1
            elif method in APPENDS:
                a.appends += 1
            else:
                a.other_calls += 1
        return limited

    def _after(self, a: dict) -> None:
        ans = self.ledger.by_channel.get(str(a.get("channel") or ""))
        if ans is not None:
            self.ledger.observe(ans, "".join(m.text for m in self.messages.bot_by_channel.get(a["channel"], ())))

    async def _m_chat_postMessage(self, a: dict) -> dict:
        r = await super()._m_chat_postMessage(a)
        self._after(a)
        return r

    async def _m_chat_update(self, a: dict) -> dict:
        r = await super()._m_chat_update(a)
        self._after(a)
        return r

    async def _m_chat_startStream(self, a: dict) -> dict:
        r = await super()._m_chat_startStream(a)
        self._after(a)
        return r

    async def _m_chat_appendStream(self, a: dict) -> dict:
        r = await super()._m_chat_appendStream(a)
        self._after(a)
        return r

    async def _m_chat_stopStream(self, a: dict) -> dict:
        r = await super()._m_chat_stopStream(a)
        self._after(a)
        return r

    def connected(self) -> bool:
        return any(not ws.closed for ws in self._sockets)


# ---- Discord ------------------------------------------------------------------------------------------


class BenchDiscord(FakeDiscord):
    def __init__(self, ledger: Ledger, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ledger = ledger
        self.bot_by_channel: dict[str, list[StoredMessage]] = defaultdict(list)

    def messages_in(self, channel_id: str, *, by_bot: bool | None = None) -> list[StoredMessage]:
        if by_bot:
            return sorted(self.bot_by_channel.get(channel_id, []), key=lambda m: int(m.id))
        return super().messages_in(channel_id, by_bot=by_bot)

    def _new_bot_message(self, channel_id: str, body: dict, files: list[dict], **kwargs: Any) -> StoredMessage:
        msg = super()._new_bot_message(channel_id, body, files, **kwargs)
        self.bot_by_channel[channel_id].append(msg)
        return msg

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        index = len(self.requests)  # super() appends this request's entry before its first await
        resp = await super()._rest(request)
        entry = self.requests[index] if index < len(self.requests) else None
        if entry is None:
            return resp
        a = self.ledger.by_channel.get(entry.get("channel") or "")
        if a is None:
            return resp
        if entry.get("status") == 429:
            a.rate_limited += 1
            return resp
        if entry["method"] == "POST" and entry["path"].endswith("/messages"):
            a.posts += 1
        elif entry["method"] == "PATCH":
            a.edits += 1
        else:
            a.other_calls += 1
        if entry["method"] in ("POST", "PATCH"):
            self.ledger.observe(a, "".join(m.content for m in self.messages_in(entry["channel"], by_bot=True)))
        return resp
