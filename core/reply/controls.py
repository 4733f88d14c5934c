"""Controls on answers: Stop while an answer streams, Retry and 👍 / 👎 once it has ended.

Platform-neutral: a platform draws the buttons (Slack Block Kit, Discord components, console commands) and hands
each click here as a `Click`; the answer is named by the id its buttons carry (`lifetime.answer_id`).

- `begin()` gives an answer its id when its reply opens (the service calls it), `end()` records it in the store
  when it has ended (with its model, its first message and how it ended): from then on anyone can rate it and
  the asker or an admin can ask again, in any process and after a restart.
- Stop acts on the reply's lifetime (core.reply.lifetime): the stream's next text raises ReplyStopped, the service
  closes the model's stream, the text so far stays with a short "stopped" note. Answers streaming are known only
  to the process streaming them: a Stop click that reaches another process sharing the store is passed on as a
  signal (core/store/signals.py); the process writing that answer decides and sends back what to tell the clicker.
  No reply within a moment means no process is writing it.
- Rating: one per person per answer (the store's upsert); a second click changes it.
- Retry: the same question asked again in the same place (a new answer; the old one stays). Each answer is
  asked again once (a claim in the store): a double click, or a click in a second process, starts one retry.
- A click that cannot be served (a stale message, someone who may not press it, a double click) is answered
  with a short note for that person only, never an error.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Callable, Literal

from core.chat.access import is_admin
from core.model import Author, InboundMessage
from core.reply.lifetime import ReplyLifetime
from core.store.protocol import AnswerRecord, Store

log = logging.getLogger("teambridge.controls")

Action = Literal["stop", "retry", "up", "down"]
ACTIONS: tuple[Action, ...] = ("stop", "retry", "up", "down")
RATINGS = {"up": 1, "down": -1}
RECENT = 2_000            # ended answers whose original message is kept in memory (for a faithful retry)
SAVE_WAIT = 5.0           # a click that races the answer's own record waits this long for it
STOPS, STOP_NOTES = "answers.stop", "answers.stop.note"   # signal topics: a Stop for another process, its answer
STOP_WAIT = 2.0           # how long a Stop passed on waits for the process writing the answer

NOT_YOURS_STOP = "Only the person who asked or an admin can stop this answer."
NOT_YOURS_RETRY = "Only the person who asked or an admin can ask this again."
NOT_STREAMING = "This answer is not being written any more."
STILL_STREAMING = "This answer is still being written."
ALREADY_STOPPING = "This answer is already stopping."
ALREADY_RETRIED = "This question was asked again already."
UNKNOWN = "This answer's buttons no longer work (it is too old, or from before a reset)."
NOT_ANSWERED = "There is nothing to act on here yet."


@dataclass(frozen=True, slots=True)
class Click:
    """A person pressed one of an answer's controls."""
    action: Action
    answer_id: str
    clicker: Author
    platform: str


@dataclass(frozen=True, slots=True)
class ClickResult:
    """What the platform does next: tell the clicker `note` (only them; "" = nothing to say), and for a retry
    answer `retry` like a message that just arrived. `rating`: the clicker's rating now (+1/-1) after a rating."""
    note: str = ""
    retry: InboundMessage | None = None
    rating: int = 0
    ok: bool = False


def parse_action(value: str) -> Action | None:
    return value if value in ACTIONS else None  # type: ignore[return-value]


class _Live:
    __slots__ = ("msg", "assistant", "lifetime", "message_id", "saved", "conversation_id")

    def __init__(self, msg: InboundMessage, assistant: str, lifetime: ReplyLifetime, conversation_id: str) -> None:
        self.msg = msg
        self.assistant = assistant
        self.lifetime = lifetime
        self.conversation_id = conversation_id
        self.message_id = ""
        self.saved = asyncio.Event()


class AnswerControls:
    """The answers of this process, and what a click on one of their buttons does."""

    def __init__(self, store: Store, config: Callable[[], object], *, clock: Callable[[], float] = time.time,
                 on_rated: Callable[[str, str, int], None] | None = None) -> None:
        self._store = store
        self._config = config
        self._clock = clock
        self._on_rated = on_rated           # (platform, assistant, rating): metrics
        self._live: dict[str, _Live] = {}   # answers begun and not yet recorded
        self._recent: OrderedDict[str, InboundMessage] = OrderedDict()  # ended answers' original messages
        self._listening = False             # to Stop clicks other processes pass on (from the first answer on)
        self._waiting: dict[str, asyncio.Future[str]] = {}   # Stops passed on: request id -> the clicker's note

    # ---- the service's side: an answer's life ------------------------------------------------------------

    def begin(self, msg: InboundMessage, assistant: str, lifetime: ReplyLifetime, *,
              conversation_id: str = "") -> str:
        """A new answer to `msg` opens: its id, set on the reply's lifetime for the platform's buttons.
        `conversation_id`: the backend conversation it is part of (erasing that erases the answer)."""
        answer_id = os.urandom(10).hex()   # 20 hex digits, as uuid4().hex[:20] gave (without its fixed version digit)
        lifetime.answer_id = answer_id
        self._live[answer_id] = _Live(msg, assistant, lifetime, conversation_id)
        self._listen()
        return answer_id

    def link(self, answer_id: str, conversation_id: str) -> None:
        """The answer's conversation became known during it (a first turn sent before its conversation existed)."""
        live = self._live.get(answer_id)
        if live is not None:
            live.conversation_id = conversation_id

    def posted(self, answer_id: str, message_id: str) -> None:
        live = self._live.get(answer_id)
        if live is not None and not live.message_id:
            live.message_id = message_id

    async def end(self, answer_id: str, *, model: str, outcome: str) -> None:
        """The answer has ended (its last words are out): record it, so its buttons work from now on."""
        live = self._live.get(answer_id)
        if live is None:
            return
        msg = live.msg
        try:
            await self._store.save_answer(AnswerRecord(
                id=answer_id, platform=msg.platform, workspace=msg.workspace, channel=msg.channel,
                thread=msg.thread, message_id=live.message_id, assistant=live.assistant, model=model,
                user=msg.author.id, user_name=msg.author.name, question=msg.text, is_direct=msg.is_direct,
                outcome=outcome, at=self._clock(), conversation_id=live.conversation_id))
        except Exception:  # the answer was given; only its buttons will not work
            log.exception("could not record answer %s: its rate and retry buttons will say so", answer_id)
        finally:
            self._live.pop(answer_id, None)
            self._recent[answer_id] = msg
            while len(self._recent) > RECENT:
                self._recent.popitem(last=False)
            live.saved.set()

    def streaming(self, answer_id: str) -> bool:
        live = self._live.get(answer_id)
        return live is not None and live.lifetime.state == "streaming"

    # ---- a click ---------------------------------------------------------------------------------------

    async def click(self, click: Click) -> ClickResult:
        try:
            match click.action:
                case "stop":
                    if click.answer_id in self._live:
                        return self._stop(click)
                    return await self._stop_elsewhere(click)
                case "retry":
                    return await self._retry(click)
                case "up" | "down":
                    return await self._rate(click)
        except Exception:  # a click must never end in a traceback for the person who clicked
            log.exception("%s click on answer %s failed", click.action, click.answer_id)
            return ClickResult("Sorry, that did not work — please try again.")
        return ClickResult(NOT_ANSWERED)  # pragma: no cover - Action is exhaustive

    def _may_steer(self, asker: str, clicker: Author) -> bool:
        return clicker.id == asker or is_admin(self._config(), clicker)

    def _stop(self, click: Click) -> ClickResult:
        live = self._live.get(click.answer_id)
        if live is None or live.lifetime.state != "streaming":
            return ClickResult(NOT_STREAMING)
        if not self._may_steer(live.msg.author.id, click.clicker):
            log.info("stop of answer %s: %s is not the asker nor an admin", click.answer_id, click.clicker.id)
            return ClickResult(NOT_YOURS_STOP)
        if live.lifetime.stop_requested:
            return ClickResult(ALREADY_STOPPING)
        log.info("answer %s stopped by %s", click.answer_id, click.clicker.id)
        live.lifetime.stop()
        return ClickResult(ok=True)

    # ---- a Stop for an answer another process is writing -------------------------------------------------

    def _listen(self) -> None:
        if self._listening:
            return
        self._listening = True
        signals = self._store.signals()
        if signals.shared:
            signals.listen(STOPS, self._heard_stop)
            signals.listen(STOP_NOTES, self._heard_note)

    async def _stop_elsewhere(self, click: Click) -> ClickResult:
        signals = self._store.signals()
        if not signals.shared:
            return ClickResult(NOT_STREAMING)
        self._listen()
        request = uuid.uuid4().hex
        note = self._waiting[request] = asyncio.get_running_loop().create_future()
        who = click.clicker
        try:
            await signals.publish(STOPS, json.dumps({
                "request": request, "answer": click.answer_id, "platform": click.platform,
                "user": who.id, "name": who.name[:100], "roles": list(who.roles)[:50], "admin": who.is_admin}))
            text = await asyncio.wait_for(note, STOP_WAIT)
        except TimeoutError:   # no process is writing that answer
            return ClickResult(NOT_STREAMING)
        except Exception:
            log.exception("could not pass a Stop on to the other processes")
            return ClickResult(NOT_STREAMING)
        finally:
            self._waiting.pop(request, None)
        return ClickResult(text, ok=not text)

    def _heard_stop(self, payload: str) -> None:
        try:
            data = json.loads(payload)
            clicker = Author(str(data["user"]), str(data.get("name", "")),
                             tuple(str(r) for r in data.get("roles", ())), bool(data.get("admin")))
            click = Click("stop", str(data["answer"]), clicker, str(data.get("platform", "")))
            request = str(data["request"])
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("dropped a malformed stop signal")
            return
        if click.answer_id not in self._live:
            return   # another process's answer (or none): that process answers
        note = self._stop(click).note
        asyncio.ensure_future(self._quietly_publish(STOP_NOTES, json.dumps({"request": request, "note": note})))

    def _heard_note(self, payload: str) -> None:
        try:
            data = json.loads(payload)
            waiting = self._waiting.get(str(data["request"]))
            note = str(data.get("note", ""))
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("dropped a malformed stop note signal")
            return
        if waiting is not None and not waiting.done():
            waiting.set_result(note)

    async def _quietly_publish(self, topic: str, payload: str) -> None:
        try:
            await self._store.signals().publish(topic, payload)
        except Exception:
            log.exception("could not send a %s signal", topic)

    # ---- ratings and retries ----------------------------------------------------------------------------

    async def _answer(self, answer_id: str) -> AnswerRecord | None:
        live = self._live.get(answer_id)
        if live is not None:
            if live.lifetime.state == "streaming":
                return None
            try:  # its last words are out, its record is being written: a fast click waits for it
                await asyncio.wait_for(live.saved.wait(), SAVE_WAIT)
            except TimeoutError:
                return None
        return await self._store.get_answer(answer_id)

    async def _rate(self, click: Click) -> ClickResult:
        if self.streaming(click.answer_id):
            return ClickResult(STILL_STREAMING)
        answer = await self._answer(click.answer_id)
        if answer is None:
            return ClickResult(UNKNOWN)
        rating = RATINGS[click.action]
        before = await self._store.rate_answer(answer.id, click.clicker.id, rating)
        if self._on_rated is not None and before != rating:
            self._on_rated(answer.platform, answer.assistant, rating)
        face = "👍" if rating > 0 else "👎"
        if before == rating:
            note = f"You rated this answer {face} already."
        elif before is None:
            note = f"Thanks — you rated this answer {face}."
        else:
            note = f"Changed your rating of this answer to {face}."
        return ClickResult(note, rating=rating, ok=True)

    async def _retry(self, click: Click) -> ClickResult:
        if self.streaming(click.answer_id):
            return ClickResult(STILL_STREAMING)
        answer = await self._answer(click.answer_id)
        if answer is None:
            return ClickResult(UNKNOWN)
        if not self._may_steer(answer.user, click.clicker):
            log.info("retry of answer %s: %s is not the asker nor an admin", answer.id, click.clicker.id)
            return ClickResult(NOT_YOURS_RETRY)
        if not await self._store.claim_event(answer.platform, f"retry:{answer.id}"):
            return ClickResult(ALREADY_RETRIED)
        original = self._recent.get(answer.id)
        if original is not None:
            # as it came (roles, channel parents): only the attachments stay behind (they are in the conversation)
            msg = replace(original, attachments=(), event_id=None, message_id=None, mentions_bot=True,
                          assistant=answer.assistant)
        else:  # answered before a restart, or by another process: rebuilt from the record
            author = click.clicker if click.clicker.id == answer.user else Author(answer.user, answer.user_name)
            msg = InboundMessage(platform=answer.platform, workspace=answer.workspace, channel=answer.channel,
                                 author=author, text=answer.question, thread=answer.thread,
                                 is_direct=answer.is_direct, mentions_bot=True, assistant=answer.assistant)
        log.info("answer %s asked again by %s", answer.id, click.clicker.id)
        return ClickResult(retry=msg, ok=True)
