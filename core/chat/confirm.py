"""Commands that ask before they act: a yes/no question answered with a button (Slack, Discord).

A command's reply may carry a `Confirmation`; the platform shows it as Confirm / Cancel buttons whose value is the
token, and hands a click back to `CommandSurface.confirm(msg, token, accepted)`, `msg.author` being who clicked.
`Questions` keeps what was asked: who may answer (only the person who asked), until when, and — so a double click
or a click on a stale message gets a clear answer instead of acting twice — how each question ended.

The questions live in the process that asked; a click that reaches another process is passed to it
(core/chat/confirm_relay.py).
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Callable, Protocol

from core.model import InboundMessage


@dataclass(frozen=True, slots=True)
class Confirmation:
    """Buttons under a command's reply. `token` goes back in the click (≤ 100 characters: Discord's custom_id)."""
    token: str
    confirm_label: str = "Confirm"
    cancel_label: str = "Cancel"


@dataclass(frozen=True, slots=True)
class ConfirmReply:
    """What a click answers. `settled`: the question is over (answered, expired, gone), so the buttons go and
    the text replaces the question; otherwise the text goes to the clicker alone and the buttons stay."""
    text: str
    settled: bool = True


class Confirmer(Protocol):
    """What answers the clicks on a command's questions (core/admin/forget.py's ForgetCommand)."""

    def knows(self, key: str) -> bool:
        """The question `key` was asked in this process (open, or answered or expired lately)."""
        ...

    async def confirm(self, msg: InboundMessage, key: str, accepted: bool) -> ConfirmReply:
        """A click on Confirm (`accepted`) or Cancel; `msg.author` clicked."""
        ...


# ---- what became of a question, for the command that asked it -------------------------------------------------

@dataclass(frozen=True, slots=True)
class Answered:
    subject: str
    accepted: bool


@dataclass(frozen=True, slots=True)
class NotYours:
    pass


@dataclass(frozen=True, slots=True)
class Closed:
    """Answered before (a double click), expired, or never asked here: `how` says which, for the reply."""
    how: str


Outcome = Answered | NotYours | Closed

EXPIRED = "expired"
UNKNOWN = "unknown"


@dataclass(slots=True)
class _Open:
    asker: str
    subject: str
    expires: float


class Questions:
    """Open questions by key. `ttl`: how long one may be answered."""

    KEEP_CLOSED = 600.0   # how long an answered question is remembered (double clicks, stale messages)

    def __init__(self, *, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._open: dict[str, _Open] = {}
        self._closed: dict[str, tuple[str, float]] = {}   # key -> (how it ended, when to forget it)

    def ask(self, asker: str, subject: str) -> str:
        self._expire()
        key = uuid.uuid4().hex
        self._open[key] = _Open(asker, subject, self._clock() + self._ttl)
        return key

    def pending(self, asker: str, subject: str) -> str | None:
        """The open question this person asked about `subject`, if any."""
        self._expire()
        return next((k for k, q in self._open.items() if q.asker == asker and q.subject == subject), None)

    def knows(self, key: str) -> bool:
        self._expire()
        return key in self._open or key in self._closed

    def answer(self, key: str, clicker: str, accepted: bool) -> Outcome:
        self._expire()
        question = self._open.get(key)
        if question is None:
            how, _ = self._closed.get(key, (UNKNOWN, 0.0))
            return Closed(how)
        if question.asker != clicker:
            return NotYours()
        del self._open[key]   # before anything is awaited: a second click finds it closed
        self._closed[key] = ("confirmed" if accepted else "cancelled", self._clock() + self.KEEP_CLOSED)
        return Answered(question.subject, accepted)

    def _expire(self) -> None:
        now = self._clock()
        for key in [k for k, q in self._open.items() if q.expires <= now]:
            del self._open[key]
            self._closed[key] = (EXPIRED, now + self.KEEP_CLOSED)
        for key in [k for k, (_, until) in self._closed.items() if until <= now]:
            del self._closed[key]


def closed_text(how: str, *, again: str) -> str:
    """The reply to a click on a question that is over. `again`: how to ask anew (the command, as typed here)."""
    match how:
        case "confirmed":
            return "This was already confirmed."
        case "cancelled":
            return "This was already cancelled."
        case "expired":
            return f"This confirmation has expired — nothing was done. {again}"
        case _:
            return f"This question is no longer open — nothing was done. {again}"
