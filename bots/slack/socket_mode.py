"""How bolt receives: Socket Mode envelopes read once as their frame arrives and checked before bolt sees them
(HTTP requests are checked by bots/slack/http.py) — a channel @mention's two envelopes then go straight to the
adapter, past bolt and past slack_sdk's queue; the rest to slack_sdk's listeners and bolt as read — and, in either
mode, bolt's authorization handed the auth.test answer start() already has."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

import orjson

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import run_async_bolt_app, send_async_response
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.middleware.authorization.async_single_team_authorization import AsyncSingleTeamAuthorization
from slack_bolt.response import BoltResponse
from slack_sdk.socket_mode.response import SocketModeResponse

from bots.slack.parse import envelope_problem

log = logging.getLogger("teambridge.slack")


class CheckedSocketHandler(AsyncSocketModeHandler):
    """Socket Mode envelopes go through the same shape check as HTTP requests before bolt reads them: a
    malformed one is acked (Slack would redeliver it otherwise) and dropped with one log line."""

    def __init__(self, *args: Any, events: Callable[[dict], bool] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._events = events   # takes an events_api body past bolt (bots/slack/arrivals.py: MentionPath.take), or says no
        # payloads the fast path read and checked that go on to slack_sdk's listeners (by id, the object kept
        # alive until then): `handle` need not check them again
        self._checked: dict[int, dict] = {}
        self._listening: set[asyncio.Future] = set()
        sockets = self.client   # the Socket Mode client (named so: tests list the Web API methods by `client.`)
        run_listeners = sockets.run_message_listeners

        async def checked(message: dict, raw_message: str) -> None:
            # slack_sdk builds a SocketModeRequest from every envelope and raises (with a traceback) when its
            # payload is not an object, before any listener of ours runs
            if isinstance(message, dict) and message.get("envelope_id") and not isinstance(message.get("payload"),
                                                                                          dict):
                log.warning("Slack %s envelope dropped: the payload is not an object", message.get("type"))
                await sockets.send_socket_mode_response(SocketModeResponse(envelope_id=message["envelope_id"]))
                return
            await run_listeners(message, raw_message)

        sockets.run_message_listeners = checked  # type: ignore[method-assign]
        enqueue = sockets.enqueue_message

        async def received(raw_message: str) -> None:
            # every text frame of the websocket, as it arrives
            try:
                verdict = self._took(raw_message)
            except Exception:   # a bug here must not cost the envelope: slack_sdk's and bolt's way still reads it
                log.exception("Slack envelope: the fast path failed; handing it to slack_sdk")
                verdict = None
            if verdict is None:   # not read here: slack_sdk's queue, and its own json, read it
                await enqueue(raw_message)
                return
            if type(verdict) is dict:   # read here, not taken: slack_sdk's listeners (bolt) get it as read
                self._listen(verdict, raw_message)
                return
            try:
                await sockets.send_message(orjson.dumps({"envelope_id": verdict}).decode())
            except Exception as error:   # e.g. the connection being replaced: Slack sends the envelope again
                # (and the early duplicate drop and the store's claim answer it once); an exception escaping
                # here would make slack_sdk's reader back off, delaying every other envelope's ack
                log.warning("Slack envelope %s: the acknowledgement could not be sent (%r)", verdict, error)

        sockets.enqueue_message = received  # type: ignore[method-assign]

    def _listen(self, message: dict, raw: str) -> None:
        """slack_sdk's listeners (bolt's handler: `handle`) for an envelope read here, in a task of its own, as
        slack_sdk's queue reader would start them — past the queue and without parsing the frame again."""
        sockets = self.client   # (not `client.`: tests list the Web API methods by that)
        task = asyncio.ensure_future(sockets.run_message_listeners(message, raw))
        self._listening.add(task)
        payload = message.get("payload")
        task.add_done_callback(lambda t: (self._listening.discard(t), self._checked.pop(id(payload), None)))

    def _took(self, raw: str) -> str | dict | None:
        """Every frame is read here once, as it arrives. The fast path of a channel @mention's envelopes: checked,
        handed to the adapter (`events`) and acknowledged, without slack_sdk's queue, its task per envelope, its
        SocketModeRequest and bolt's request: together about half of what an envelope cost. Returns the
        envelope's id when it was handled here (it is to be acknowledged: taken, or dropped with its log line);
        the envelope as read, for slack_sdk's and bolt's way, when the adapter does not take it (its payload
        checked already, see `handle`); None when it was not read (slack_sdk's own json reads it)."""
        if self._events is None or not raw.startswith("{"):
            return None
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None   # e.g. a lone UTF-16 surrogate, which orjson refuses: slack_sdk's json reads it
        if type(message) is not dict:
            return None
        envelope_id, payload = message.get("envelope_id"), message.get("payload")
        if type(envelope_id) is not str or not envelope_id or type(payload) is not dict:
            return message   # hello, disconnect; a broken envelope is dropped by `checked` with its log line
        problem = envelope_problem(payload)
        if problem is not None:
            log.warning("Slack %s envelope dropped: %s", message.get("type"), problem)
            return envelope_id
        if message.get("type") == "events_api" and self._events(payload):
            return envelope_id
        self._checked[id(payload)] = payload
        return message

    async def handle(self, socket: Any, req: Any) -> None:  # type: ignore[override]
        if self._checked.pop(id(req.payload), None) is not req.payload:   # not read and checked as it arrived
            problem = envelope_problem(req.payload)
            if problem is not None:
                log.warning("Slack %s envelope dropped: %s", req.type, problem)
                await socket.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
                return
            if req.type == "events_api" and self._events is not None and self._events(req.payload):
                await socket.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
                return
        start = time.time()
        response = await run_async_bolt_app(self.app, req)
        if response.status != 200:
            # bolt leaves an envelope no listener matched unacknowledged, and Slack resends it three times
            log.info("Slack %s envelope not handled (bolt: %s); acknowledged", req.type, response.status)
            response = BoltResponse(status=200, body="")
        await send_async_response(socket, req, response, start)


def seed_authorization(app: AsyncApp, auth: Any) -> None:
    """bolt's single-workspace authorization calls auth.test at the first event and keeps the answer; every
    event that arrives before that answer (a burst right after start-up) calls it again. start() has just
    asked the same question with the same token: hand bolt that answer, so no event waits for auth.test."""
    for middleware in getattr(app, "_async_middleware_list", ()):
        if isinstance(middleware, AsyncSingleTeamAuthorization) and middleware.auth_test_result is None:
            middleware.auth_test_result = auth
