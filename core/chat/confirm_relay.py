"""A Confirm / Cancel click that reaches a process which did not ask the question.

A command's question (core/chat/confirm.py) lives in the process that asked it, but the click may reach any
process: Slack spreads Socket Mode envelopes over an app's open connections, and HTTP mode runs behind any
balancer. The process that received the click and finds no such question here publishes it as a signal
(core/store/signals.py); the process that asked decides — who may answer, once, in time — does what was asked,
and publishes the reply for the clicker. First it says it has taken the click, so a click nobody knows (an old
message, a restarted fleet) is answered after ACK_WAIT seconds, not after the slower RESULT_WAIT that deleting at
the model provider may need.

Only the asking process knows a question's key (a random one), so at most one process answers a click.
"""
from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Awaitable, Callable

from core.chat.confirm import ConfirmReply
from core.model import Author, InboundMessage
from core.store.signals import Signals

log = logging.getLogger("teambridge.confirm")

CLICKS = "confirm.click"     # signal topics: a click on a question this process did not ask ...
REPLIES = "confirm.reply"    # ... the asking process taking it, then what to tell the clicker
ACK_WAIT = 5.0        # how long the clicker's process waits to hear that some process asked the question
RESULT_WAIT = 120.0   # and then for the answer (a delete at the model provider may take a while)

TAKEN_NO_ANSWER = ("The teambridge process that asked this took your click but has not answered yet; it may still "
                   "be at work. Check the result before you run the command again.")

Decide = Callable[[InboundMessage, str, bool], Awaitable[ConfirmReply]]   # (clicker's msg, token, accepted)
Knows = Callable[[str], bool]   # was the question behind this token asked in this process?


class ConfirmRelay:
    """Passes clicks on questions asked elsewhere to the process that asked them, and answers theirs."""

    def __init__(self, signals: Signals, *, knows: Knows, decide: Decide) -> None:
        self._signals = signals
        self._knows = knows
        self._decide = decide            # the local decision: CommandSurface's, which never raises
        self._listening = False
        self._waiting: dict[str, tuple[asyncio.Future[None], asyncio.Future[ConfirmReply]]] = {}
        self._tasks: set[asyncio.Task] = set()

    @property
    def shared(self) -> bool:
        return self._signals.shared

    @property
    def tasks(self) -> frozenset[asyncio.Task]:
        """Other processes' clicks being acted on here (a shutdown gives them its grace, like answers)."""
        return frozenset(self._tasks)

    def listen(self) -> None:
        """Answer other processes' clicks on this process's questions (idempotent)."""
        if self._listening or not self._signals.shared:
            return
        self._listening = True
        self._signals.listen(CLICKS, self._heard_click)
        self._signals.listen(REPLIES, self._heard_reply)

    async def elsewhere(self, msg: InboundMessage, token: str, accepted: bool) -> ConfirmReply | None:
        """The reply of the process that asked the question behind `token`; None if no process did."""
        if not self._signals.shared:
            return None
        self.listen()
        request = uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        taken, result = loop.create_future(), loop.create_future()
        self._waiting[request] = (taken, result)
        who = msg.author
        try:
            await self._signals.publish(CLICKS, json.dumps({
                "request": request, "token": token, "accepted": accepted, "platform": msg.platform,
                "workspace": msg.workspace, "channel": msg.channel, "user": who.id, "name": who.name[:100],
                "roles": list(who.roles)[:50], "admin": who.is_admin}))
            await asyncio.wait_for(taken, ACK_WAIT)
            return await asyncio.wait_for(result, RESULT_WAIT)
        except TimeoutError:
            if not taken.done() or taken.cancelled():   # wait_for cancels what it gave up on: nobody took it
                return None
            # the asking process took it and may still be acting on it: never say "nothing was done" then
            log.warning("the process that asked question %s took the click but did not answer", token[:60])
            return ConfirmReply(TAKEN_NO_ANSWER, settled=False)
        except Exception:
            log.exception("could not pass a confirmation click on to the other processes")
            return None
        finally:
            self._waiting.pop(request, None)

    # ---- the asking process ------------------------------------------------------------------------------

    def _heard_click(self, payload: str) -> None:
        try:
            data = json.loads(payload)
            clicker = Author(str(data["user"]), str(data.get("name", "")),
                             tuple(str(r) for r in data.get("roles", ())), data.get("admin") is True)
            msg = InboundMessage(platform=str(data["platform"]), workspace=str(data.get("workspace", "")),
                                 channel=str(data.get("channel", "")), author=clicker, text="", mentions_bot=True)
            request, token, accepted = str(data["request"]), str(data["token"]), data["accepted"] is True
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("dropped a malformed confirmation click signal")
            return
        if request in self._waiting or not self._knows(token):
            return   # our own click heard back, or another process's question: that process answers
        task = asyncio.ensure_future(self._answer(request, msg, token, accepted))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, request: str, msg: InboundMessage, token: str, accepted: bool) -> None:
        async def send(data: dict) -> None:
            try:
                await self._signals.publish(REPLIES, json.dumps({"request": request, **data}))
            except Exception:
                log.exception("could not send a confirmation reply signal")

        await send({"taken": True})
        reply = await self._decide(msg, token, accepted)
        await send({"text": reply.text, "settled": reply.settled})

    # ---- the clicker's process ---------------------------------------------------------------------------

    def _heard_reply(self, payload: str) -> None:
        try:
            data = json.loads(payload)
            waiting = self._waiting.get(str(data["request"]))
            reply = None if data.get("taken") else ConfirmReply(str(data["text"]), data["settled"] is True)
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("dropped a malformed confirmation reply signal")
            return
        if waiting is None:
            return
        taken, result = waiting
        if not taken.done():
            taken.set_result(None)
        if reply is not None and not result.done():
            result.set_result(reply)
