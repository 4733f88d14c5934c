"""Per answer: stream it now, or hold it and post it whole when it is done.

Every answer in a channel costs at least one write (its message), and a streamed one at least two (the first
post and the final edit), all from the bot's global budget (~50 requests/s, bots/discord/pacing). When many
answers run at once, the writes readers wait for are the ones that show an answer finished; a first post or a
progress edit made within the budget's window before many answers end takes a slot that one of their final
writes needed. So an answer starts streaming only when the budget has room for it now *and* for the final
writes of the answers expected to end within that window. Otherwise it is held (the typing indicator shows)
and posted whole when done — one write instead of two or more — unless room appears earlier, when it starts
streaming from there. Progress edits follow the same rule.

When answers end is estimated from how long recent answers took from their first text to their end (an answer
already a window past its expected end counts as unpredictable, not as ending); with nothing to go by yet (a
fresh process), an answer streams whenever the budget has room.

How the budget counts (this process's share of it, its window) stays with the pacer: this module only reads
`free_now()` and `period` from it. The order of the queue is the pacer's too: the first message of a reply (a
held answer's whole text, or a stream's first post) goes before final edits of answers whose beginning already
shows, and those before progress edits — so an answer nobody has seen yet is shown first.
"""
from __future__ import annotations

import time
from bisect import bisect_left, bisect_right, insort
from typing import Callable, Protocol


class Budget(Protocol):
    """What the decision reads from the global pacer (bots.discord.pacing.Pacer)."""

    period: float

    def free_now(self) -> int: ...


class Delivery:
    """The answers in progress on one bot's global budget, and how long answers take."""

    def __init__(self, budget: Budget, *, clock: Callable[[], float] = time.monotonic,
                 smoothing: float = 0.2) -> None:
        self._budget = budget
        self._clock = clock
        self._smoothing = smoothing
        self._starts: list[float] = []       # first-text times of the answers in progress, sorted
        self.duration: float | None = None   # typical first text -> end of an answer (seconds), once known
        self.held = 0                        # answers posted whole so far (for tests and logs)

    def open(self) -> "AnswerPlan":
        return AnswerPlan(self)

    def room(self) -> bool:
        """A write now leaves enough of the window for the answers about to end."""
        free = self._budget.free_now()
        if free <= 0:
            return False
        return free - self._ending_soon() >= 1

    def _ending_soon(self) -> int:
        if self.duration is None or not self._starts:
            return 0
        # An answer that began at s is expected to end at s + duration: count those whose expected end is within
        # the window from now. One already more than a window past it is no longer predictable (the model is
        # slower today, or this answer is long): it does not hold the others back.
        now, window = self._clock(), self._budget.period
        return (bisect_right(self._starts, now + window - self.duration)
                - bisect_left(self._starts, now - window - self.duration))

    def _started(self) -> float:
        now = self._clock()
        insort(self._starts, now)
        return now

    def _ended(self, start: float) -> None:
        i = bisect_left(self._starts, start)
        if i < len(self._starts) and self._starts[i] == start:
            del self._starts[i]
        took = self._clock() - start
        self.duration = took if self.duration is None else self.duration + self._smoothing * (took - self.duration)


class AnswerPlan:
    """One answer's side of the decision: ask before the first post and before each progress edit; end()."""

    __slots__ = ("_delivery", "_start", "streaming", "_ended")

    def __init__(self, delivery: Delivery) -> None:
        self._delivery = delivery
        self._start: float | None = None     # when its first text came
        self.streaming = False
        self._ended = False

    def may_start(self) -> bool:
        """Asked with each change before the answer shows: True once it may post its beginning now."""
        if self._start is None:
            self._start = self._delivery._started()
        if self._delivery.room():
            self.streaming = True
        return self.streaming

    def progress(self) -> bool:
        """A progress edit now? (The final edit never asks.)"""
        return self._delivery.room()

    def end(self) -> None:
        if self._ended:
            return
        self._ended = True
        if self._start is not None:
            if not self.streaming:
                self._delivery.held += 1
            self._delivery._ended(self._start)
