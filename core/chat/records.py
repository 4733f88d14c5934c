"""An answer's bookkeeping, apart from the answer itself (core/chat/turn.py): what the observer hears about it
(`TurnProgress`), and what the store keeps while it streams (`AnswerRecords`): the usage of each model call
(a code interpreter container billed once per life), the reply message in flight (a crash leaves it marked as
cut off), and the store writes made during the turn, settled before it ends."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace

from core.admin.observe import ERROR, TurnReport
from core.chat.limits import UsageLimiter
from core.model import Completed, ConversationKey, InboundMessage, TextDelta, Usage
from core.store.protocol import Store

log = logging.getLogger("teambridge.service")

CONTAINER_IDLE_SECONDS = 20 * 60    # OpenAI expires a code interpreter container after ~20 idle minutes


class TurnProgress:
    """What the observer hears about one turn: when the first text came, the tokens, how it ended."""

    def __init__(self, received: float) -> None:
        self.received = received
        self.first_text: float | None = None
        self.usage = Usage()
        self.outcome = ERROR  # until the turn says otherwise
        self.error = ""
        self.model = ""       # as the backend billed it

    def saw(self, event) -> None:
        match event:
            case TextDelta(text=delta) if delta and self.first_text is None:
                self.first_text = time.monotonic()
            case Completed(usage=usage, model=model):
                self.usage = self.usage + usage
                self.model = model or self.model

    def report(self, msg: InboundMessage, assistant) -> TurnReport:
        now = time.monotonic()
        return TurnReport(msg.platform, assistant.name, msg.channel, msg.author.id, self.outcome,
                          now - self.received, None if self.first_text is None else self.first_text - self.received,
                          usage=self.usage, backend=assistant.backend, text=msg.text)


class AnswerRecords:
    """The store's records of one answer to `msg` by `assistant` in conversation `key`."""

    def __init__(self, store: Store, limiter: UsageLimiter, msg: InboundMessage, assistant,
                 key: ConversationKey) -> None:
        self._store = store
        self._limiter = limiter
        self._msg = msg
        self._assistant = assistant
        self._key = key
        self.writes: list[asyncio.Future] = []   # store writes running while the model answers
        self._inflight: list[int] = []
        self.pending = ""                          # the stored first answer a conversation is to be made from
        self._started: asyncio.Future | None = None

    def conversation_started(self, conversation_id: str, pending: bool, metadata: dict[str, str]) -> None:
        """A first turn sent before its conversation existed says where the thread's history is now (the stored
        answer, then the conversation made during the turn): saved in the order said, while the answer goes on."""
        previous = self._started

        async def save() -> None:
            if previous is not None:
                await asyncio.wait((previous,))
            await self._store.save_conversation(self._key, self._assistant.name, conversation_id, metadata,
                                                pending=pending)

        self.pending = conversation_id if pending else ""
        self._started = asyncio.ensure_future(save())
        self.writes.append(self._started)

    def pending_saved(self) -> bool:
        """Whether the thread's row was written as pending (settle() first): only then does a row missing now
        mean the thread was erased meanwhile."""
        started = self._started
        return started is not None and started.done() and not started.cancelled() and started.exception() is None

    async def posted(self, message_id: str) -> None:
        """The reply went on in a new message. A reply goes on in a new message only once the one before is
        complete: from now on only this message could be left cut off by a crash, so only it stays recorded."""
        msg = self._msg
        record = await self._store.add_inflight(msg.platform, msg.channel, message_id, msg.thread)
        await self.forget_inflight()
        self._inflight.append(record)

    async def forget_inflight(self) -> None:
        """The reply shows its end: nothing of it is left to mark as cut off."""
        while self._inflight:
            await quietly(self._store.remove_inflight(self._inflight.pop()))

    async def completed(self, event: Completed) -> None:
        """One model call's usage: recorded for reports, counted against the person's limits."""
        msg, assistant, usage = self._msg, self._assistant, event.usage
        if event.containers:  # a container reused by a later turn is the same billed session
            usage = replace(usage, code_interpreter_sessions=await self._new_sessions(event.containers))
        await self._store.record_usage(
            assistant=assistant.name, platform=msg.platform, workspace=msg.workspace, channel=msg.channel,
            user=msg.author.id, model=event.model or assistant.model, usage=usage)
        self._limiter.add_tokens(msg.author.id, msg.channel, usage.input_tokens + usage.output_tokens)

    async def _new_sessions(self, containers: tuple[str, ...]) -> int:
        """How many of these code interpreter containers were not billed yet (they expire after ~20 idle min)."""
        new = 0
        for container in containers:
            new += await self._store.touch_container(container, ttl=CONTAINER_IDLE_SECONDS)
        return new

    async def settle(self) -> None:
        """Wait for the store writes made during the turn; a failed one is logged (the answer was given)."""
        for write in self.writes:
            try:
                await asyncio.shield(write)
            except Exception:
                log.exception("a store write for %s failed: its next message may start a new conversation",
                              self._key.as_string())
        self.writes.clear()


async def quietly(awaitable) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("ignored error while reporting another")
