"""Slack's HTTP mode endpoint: verify the signature on the raw bytes first, parse second, then hand to bolt.

bolt's own aiohttp server decodes and parses a body before it checks the signature, so a malformed unsigned
request (bad JSON, bad UTF-8, deep nesting, a non-numeric X-Slack-Request-Timestamp) answers 500 with a
traceback: anyone who can reach the URL could fill the log. Here nothing reads a body that Slack did not
sign: such requests get 401 and, at most once a minute, one log line counting them.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Callable
from urllib.parse import parse_qsl

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest

from bots.slack.parse import envelope_problem

log = logging.getLogger("teambridge.slack")

MAX_AGE = 300              # seconds: Slack's replay window for X-Slack-Request-Timestamp
MAX_BODY = 1024 * 1024     # Slack's requests are far smaller
REPORT_EVERY = 60.0        # seconds between two log lines about refused requests


class SignedEndpoint:
    def __init__(self, app: AsyncApp, signing_secret: str, *, clock: Callable[[], float] = time.time) -> None:
        self._app = app
        self._secret = signing_secret.encode()
        self._clock = clock
        self.refused = 0           # unsigned or badly signed requests, since start
        self.malformed = 0         # signed, but not a payload we can read
        self._unreported = 0
        self._reported_at = float("-inf")

    def web_app(self, path: str) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post(path, self.handle)
        return app

    def verified(self, headers, body: bytes) -> bool:
        timestamp = headers.get("X-Slack-Request-Timestamp", "")
        signature = headers.get("X-Slack-Signature", "")
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12) or not signature.isascii():
            return False
        if abs(self._clock() - int(timestamp)) > MAX_AGE:
            return False
        expected = "v0=" + hmac.new(self._secret, b"v0:" + timestamp.encode() + b":" + body,
                                    hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature)

    async def handle(self, request: web.Request) -> web.Response:
        try:
            body = await request.read()
        except web.HTTPException as exc:  # larger than MAX_BODY: 413, whoever sent it
            self._refuse()
            return web.Response(status=exc.status)
        if not self.verified(request.headers, body):
            self._refuse()
            return web.Response(status=401, text="invalid signature")
        problem = _payload_problem(body, request.content_type)
        if problem is not None:
            self.malformed += 1
            log.warning("Slack request dropped: %s", problem)
            # a 200 with X-Slack-No-Retry: Slack would resend the same bytes three more times otherwise
            return web.Response(status=200, headers={"X-Slack-No-Retry": "1"})
        bolt_request = AsyncBoltRequest(body=body.decode("utf-8"), query=request.query_string,
                                        headers=request.headers)  # type: ignore[arg-type]
        return await to_aiohttp_response(await self._app.async_dispatch(bolt_request))

    def _refuse(self) -> None:
        self.refused += 1
        self._unreported += 1
        now = time.monotonic()
        if now - self._reported_at >= REPORT_EVERY:
            log.warning("refused %d Slack request(s) without a valid signature (401)", self._unreported)
            self._unreported, self._reported_at = 0, now


def _payload_problem(body: bytes, content_type: str) -> str | None:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "the body is not UTF-8"
    try:
        if content_type == "application/x-www-form-urlencoded":
            form = dict(parse_qsl(text, keep_blank_values=True))
            payload = json.loads(form["payload"]) if "payload" in form else form
        else:
            payload = json.loads(text)
    except (ValueError, RecursionError):
        return "the body is not valid JSON"
    return envelope_problem(payload)
