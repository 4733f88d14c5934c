"""How the stand-in Slack delivers to the app: Socket Mode (the websocket that apps.connections.open points to,
envelopes spread over an app's connections, acks) or HTTP mode (signed POSTs to the app's request URL, with
Slack's retry headers). Methods of FakeSlack (bots/standins/slack_server.py), which holds the state."""
from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.parse
import uuid

import aiohttp
from aiohttp import web


class Delivery:
    """Methods of FakeSlack: _sockets, acks, spread, http_events_url and signing_secret are its state."""

    # ---- Socket Mode -----------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json({"type": "hello", "num_connections": len(self._sockets),
                            "connection_info": {"app_id": "A0APP"},
                            "debug_info": {"host": "fake-slack", "approximate_connection_time": 18060}})
        await self._notify()
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    data = json.loads(msg.data)
                    if "envelope_id" in data:
                        self.acks[data["envelope_id"]] = data
                        await self._notify()
        finally:
            self._sockets.remove(ws)
        return ws

    async def wait_connected(self, timeout: float = 30.0, *, count: int = 1) -> None:
        await self.wait_for(lambda: sum(not ws.closed for ws in self._sockets) >= count, timeout, "socket connection")

    async def send_envelope(self, kind: str, payload: dict, *, retry_attempt: int = 0,
                            retry_reason: str = "") -> str:
        envelope_id = str(uuid.uuid4())
        envelope = {"envelope_id": envelope_id, "type": kind, "payload": payload,
                    "accepts_response_payload": kind != "events_api"}
        if kind == "events_api":
            envelope.update(retry_attempt=retry_attempt, retry_reason=retry_reason)
        await self.wait_connected()
        open_ = [ws for ws in self._sockets if not ws.closed]
        if self.spread:
            self._turn += 1
            ws = open_[self._turn % len(open_)]
        else:
            ws = open_[-1]
        await ws.send_str(json.dumps(envelope))
        return envelope_id

    async def send_raw(self, frame: str) -> None:
        """One text frame on the newest open socket, as it is (no envelope built around it)."""
        ws = next(ws for ws in reversed(self._sockets) if not ws.closed)
        await ws.send_str(frame)


    async def wait_ack(self, envelope_id: str, timeout: float = 3.0) -> dict:
        """Slack's deadline: an envelope not acked within 3 seconds is retried."""
        return await self.wait_for(lambda: self.acks.get(envelope_id), timeout, f"ack of {envelope_id}")

    async def disconnect_all(self) -> None:
        for ws in list(self._sockets):
            await ws.close()

    async def deliver(self, body: dict, *, retry_attempt: int = 0) -> str:
        """Send an event callback the way the app is connected: Socket Mode envelope or signed HTTP POST."""
        if self.http_events_url:
            status, _ = await self.post_http(self.http_events_url, json.dumps(body),
                                             retry_num=retry_attempt or None)
            return str(status)
        return await self.send_envelope("events_api", body, retry_attempt=retry_attempt,
                                        retry_reason="timeout" if retry_attempt else "")

    async def send_interactive(self, kind: str, payload: dict) -> str:
        """A slash command (`kind` "slash_commands": the payload is form fields) or an interaction ("interactive":
        form-encoded as `payload=<json>` in HTTP mode), the way the app is connected."""
        if self.http_events_url:
            form = payload if kind == "slash_commands" else {"payload": json.dumps(payload)}
            status, _ = await self.post_http(self.http_events_url, urllib.parse.urlencode(form),
                                             content_type="application/x-www-form-urlencoded")
            return str(status)
        return await self.send_envelope(kind, payload)

    # ---- HTTP mode ---------------------------------------------------------------------------

    def sign(self, body: str, timestamp: int, secret: str | None = None) -> str:
        base = f"v0:{timestamp}:{body}".encode()
        return "v0=" + hmac.new((secret or self.signing_secret).encode(), base, hashlib.sha256).hexdigest()

    async def post_http(self, url: str, body: str, *, secret: str | None = None, retry_num: int | None = None,
                        content_type: str = "application/json") -> tuple[int, str]:
        ts = int(time.time())
        headers = {"Content-Type": content_type, "X-Slack-Request-Timestamp": str(ts),
                   "X-Slack-Signature": self.sign(body, ts, secret)}
        if retry_num:
            headers.update({"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"})
        async with aiohttp.ClientSession() as s:
            async with s.post(url, data=body.encode(), headers=headers) as r:
                return r.status, await r.text()
