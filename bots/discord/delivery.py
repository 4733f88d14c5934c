"""Per answer: when its first message goes out, and whether that message is already the whole answer.

Every answer in a channel costs at least one write (its message), and a streamed one at least two (the first
post and the final edit), all from the bot's global budget (~50 requests/s, bots/discord/pacing) and from its
channel's bucket (about 5 writes per 5 s). When many answers run at once, their first messages queue.

An answer takes its place in that queue with its first text (`may_start`), channel slot first, then global, the
same order as any first message: the answer does not wait to be shown any longer than if everything streamed.
When its turn comes, it shows what it has: if the model is still writing, it streams from there (post now,
final edit later); if the model finished while it waited, its message is the whole answer — one write instead
of two or more. So an answer is held exactly when it ended before its first message could have gone out anyway,
decided when the slot is there rather than guessed ahead, per-channel waits included; meanwhile "is typing…"
shows when the budget has a slot to spare. The queue's order is the pacer's: first messages (a held answer's whole text, a stream's
first post) before final edits of answers whose beginning already shows, and those before progress edits.

An answer whose turn comes shortly before its expected end (within three quarters of a window, estimated from how
long recent answers took) keeps the slot and waits on it for its end, then posts its whole text: one write instead
of a post now and a final edit that would queue behind every first message still waiting. Only while that costs the other
answers' first messages little: when the answers not showing yet need more than the window now (C windows of L
slots for U answers, C ≥ 2), the last of those windows has C·L − U slots no first message needs, and at most half
that many slots are kept at a time (a kept slot is used later in its window, so each pushes the last window's
first messages back by one slot; slots are not spread evenly over a window, so not all of the spare ones).
The answer shows what it has on the kept slot, and streams from there, if it has not ended a window after its
turn, or as soon as the model starts a tool or a file of the answer is being fetched or posted (its end is then
anyone's guess).

Progress edits are made only when there is room now: the global budget must keep room for the first messages of
the answers not showing yet (queued, or asked their model and waiting for its first word — a burst's later answers
would otherwise find the window spent; the typing indicator keeps out of it likewise) and for the final writes of
the answers expected to end within its window (estimated from how long recent answers took from their first
text to their end; one already a window past its expected end counts as unpredictable, not as ending) — each
answer once: a kept answer holds the slot of its one remaining write, and an answer holding its first message's
slots is already out of the free ones — and the channel's bucket must keep a slot for the final edit of each
answer streaming in that channel — five writes per five seconds are soon spent by one answer's progress edits
otherwise, and its last words would wait.
"""
from __future__ import annotations

import asyncio
import math
import time
from bisect import bisect_left, bisect_right, insort
from typing import Callable

from bots.discord.pacing import Pacers, Slots

KEEP_WITHIN = 0.75  # an answer expected to end within this share of the global window keeps its slot for the end

class Delivery:
    """The answers in progress on one bot's budgets, and how long answers take."""

    def __init__(self, pacers: Pacers, *, clock: Callable[[], float] = time.monotonic,
                 smoothing: float = 0.2) -> None:
        self._pacers = pacers
        self._clock = clock
        self._smoothing = smoothing
        self._starts: list[float] = []       # first-text times of the answers in progress, sorted
        self._streaming: dict[int, int] = {}  # channel -> answers showing there whose final write is still due
        self.duration: float | None = None   # typical first text -> end of an answer (seconds), once known
        self.unshown = 0                     # answers opened whose first message has not gone out yet
        self.holding = 0                     # of those, answers holding their first message's slots already
        self.held = 0                        # answers posted whole so far (for tests and logs)
        self.streamed = 0                    # answers that showed before they were done
        self.keeping = 0                     # slots kept right now for answers about to end
        self.kept = 0                        # answers that kept their slot for their end so far

    def open(self, channel_id: int) -> "AnswerPlan":
        self.unshown += 1
        return AnswerPlan(self, channel_id)

    def spare(self) -> bool:
        """The global budget has a slot no answer waiting to show needs — also none whose model is still about to
        say its first word: what a cosmetic request (the typing indicator) may take without delaying an answer."""
        return self._pacers.global_.free_now() - self._needing_slots() >= 1

    def room(self, channel_id: int) -> bool:
        """A progress edit in this channel now leaves enough for the first messages of the answers not showing yet
        and the final writes about to be needed."""
        free = self._pacers.global_.free_now()
        if free <= 0 or free - self._needing_slots() - self._ending_soon() < 1:
            return False
        return self._pacers.channel(channel_id).free_now() - self._streaming.get(channel_id, 0) >= 1

    def keep_for(self, start: float) -> float:
        """Seconds an answer whose first text came at `start` may keep the slot its turn brought, waiting for its
        end (0: it shows what it has now): a window, when its expected end is within 3/4 of one and the answers
        not showing yet leave a slot of their last window to spare (see the module's docstring)."""
        if self.duration is None:
            return 0.0
        budget = self._pacers.global_
        left = start + self.duration - self._clock()
        if not 0 < left <= KEEP_WITHIN * budget.period or budget.limit <= 0:
            return 0.0
        windows = math.ceil(self.unshown / budget.limit)
        # The cap counts the slots kept now, not slot-seconds kept since nothing waited to show. Over a long burst
        # the kept slots do add up, but they cannot starve first messages: an answer keeps only when its turn comes
        # before its expected end, and once kept slots push the turns later, the answers end before their turns and
        # go out whole instead (each one write). Replayed (bench/replay.py long:1,000 / long:3,000, every window at
        # the keep rule's edge): first visible p95 1,109 -> 1,568 / 1,216 -> 1,736 ms, bounded at about half a
        # window however long the burst; a cap on slot-seconds kept (`keep-cumulative`) saved ~0.1 s of that and
        # gave back the final edits queued behind every first message (last visible p50 40 ms -> 21 s).
        if windows < 2 or self.keeping >= (windows * budget.limit - self.unshown) // 2:
            return 0.0
        return budget.period

    def _needing_slots(self) -> int:
        # An answer holding its first message's slots (a kept one waiting for its end, or one whose turn just came)
        # is already out of the budget's free slots: counted again here, a kept answer would stand for two writes.
        return self.unshown - self.holding

    def _ending_soon(self) -> int:
        # `_starts` holds no kept answer: its last write is the slot it keeps (see AnswerPlan._keep_slot).
        if self.duration is None or not self._starts:
            return 0
        # An answer that began at s is expected to end at s + duration: count those whose expected end is within
        # the window from now. One already more than a window past it is no longer predictable (the model is
        # slower today, or this answer is long): it does not hold the others back.
        now, window = self._clock(), self._pacers.global_.period
        return (bisect_right(self._starts, now + window - self.duration)
                - bisect_left(self._starts, now - window - self.duration))

    def _started(self) -> float:
        now = self._clock()
        insort(self._starts, now)
        return now

    def _forget_start(self, start: float) -> None:
        i = bisect_left(self._starts, start)
        if i < len(self._starts) and self._starts[i] == start:
            del self._starts[i]

    def _shows(self, channel_id: int, change: int) -> None:
        count = self._streaming.get(channel_id, 0) + change
        if count > 0:
            self._streaming[channel_id] = count
        else:
            self._streaming.pop(channel_id, None)

    def _ended(self, start: float, *, counted: bool = True) -> None:
        if counted:
            self._forget_start(start)
        took = self._clock() - start
        self.duration = took if self.duration is None else self.duration + self._smoothing * (took - self.duration)


class AnswerPlan:
    """One answer's side: `may_start()` with each change before it shows, `first_slots()` for its first message,
    `progress()` before each progress edit, `end()` when its final text is ready, `close()` once it has ended.
    `on_ready` is called when its turn comes while it waits (the stream shows what it has then); `busy` says
    whether the model is running a tool or a file is being posted (its slot is then not kept for its end)."""

    __slots__ = ("_delivery", "_channel", "_start", "_counted", "streaming", "_ended", "_closed", "_slots",
                 "_waiter", "_unshown", "_keep", "on_ready", "busy")

    def __init__(self, delivery: Delivery, channel_id: int) -> None:
        self._delivery = delivery
        self._channel = channel_id
        self._start: float | None = None     # when its first text came
        self._counted = False                # its start is in delivery._starts (a write still due at its end)
        self.streaming = False
        self._ended = False
        self._closed = False
        self._slots: Slots | None = None     # its first message's slots, once its turn came
        self._waiter: asyncio.Task[None] | None = None
        self._unshown = True                 # counted in delivery.unshown until its first message goes out
        self._keep: asyncio.TimerHandle | None = None   # its slot is kept for its end until this fires
        self.on_ready: Callable[[], None] | None = None
        self.busy: Callable[[], bool] = lambda: False

    def may_start(self) -> bool:
        """True once the answer's first message may go out now. The first call queues it for a slot."""
        if self.streaming:
            return True
        if self._start is None:
            self._start = self._delivery._started()
            self._counted = True
            self._queue()
        if self._keep is not None:
            if not self.busy():
                return False   # kept for its end, which is near
            self._unkeep()     # a tool started: its end is anyone's guess, and the slot shows what it has now
        if self._slots is None or self._ended:
            return False
        self.streaming = True
        self._delivery.streamed += 1
        self._delivery._shows(self._channel, 1)
        self._shown()
        return True

    def _shown(self) -> None:
        if self._unshown:
            self._unshown = False
            self._delivery.unshown -= 1
            if self._slots is not None:   # `holding` counts answers not showing yet: this one is, from now on
                self._delivery.holding -= 1

    def _queue(self) -> None:
        pacers = self._delivery._pacers
        self._hold(pacers.take_now(self._channel))
        if self._slots is None:
            self._waiter = asyncio.get_running_loop().create_task(self._wait(pacers), name="discord-first-slot")

    async def _wait(self, pacers: Pacers) -> None:
        slots = await pacers.take(self._channel, first=True)
        if self._closed or slots is None:   # ended meanwhile without a message (close() could not cancel us)
            if slots is not None:
                slots.give_back()
            return
        self._hold(slots)
        if self.on_ready is None or self._ended:
            return
        keep = self._delivery.keep_for(self._start) if self._start is not None and not self.busy() else 0.0
        if keep > 0:   # about to end: wait for it on this slot (one write), or show what it has after `keep` s
            self._keep_slot(keep)
            return
        self.on_ready()

    # `holding` counts the answers that hold their first message's slots and do not show yet: it is subtracted
    # from `unshown`, so an answer that shows (may_start) leaves it then, not when its first write takes the
    # slots — in between (the stream lock, a typing request still on its way) it would be subtracted twice.
    def _hold(self, slots: Slots | None) -> None:
        self._slots = slots
        if slots is not None and self._unshown:
            self._delivery.holding += 1

    def _unhold(self) -> Slots | None:
        slots, self._slots = self._slots, None
        if slots is not None and self._unshown:
            self._delivery.holding -= 1
        return slots

    def _keep_slot(self, seconds: float) -> None:
        delivery = self._delivery
        delivery.keeping += 1
        delivery.kept += 1
        # The slot it keeps is its last write: it no longer counts among the answers whose final write falls due.
        if self._counted and self._start is not None:
            delivery._forget_start(self._start)
            self._counted = False
        self._keep = asyncio.get_running_loop().call_later(seconds, self._kept_too_long)

    def posting_file(self) -> None:
        """A file of this answer is being posted: like a tool starting, its end is anyone's guess (the upload may
        queue behind every first message), so a kept slot shows what the answer has now instead of idling."""
        if self._keep is not None:
            self._kept_too_long()

    def _kept_too_long(self) -> None:
        self._unkeep()
        if self.on_ready is not None and not self._ended and not self._closed:
            self.on_ready()

    def _unkeep(self) -> None:
        if self._keep is not None:
            self._keep.cancel()
            self._keep = None
            self._delivery.keeping -= 1
            if not self._ended and self._start is not None:   # it streams from here: a final edit falls due
                insort(self._delivery._starts, self._start)
                self._counted = True

    async def first_slots(self) -> Slots | None:
        """The slots queued for the answer's first message — waiting for its turn if that has not come — or None
        when it queued for none (the caller then queues as usual). The caller releases them after the request."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            await asyncio.wait([waiter])   # never cancels the waiter: the place in the queue stays the answer's
        slots = self._unhold()
        if slots is not None:
            self._shown()
        return slots

    def progress(self) -> bool:
        """A progress edit now? (The final edit never asks.)"""
        return self._delivery.room(self._channel)

    def end(self) -> None:
        """The answer's final text is ready (its last write may still queue)."""
        if self._ended:
            return
        self._ended = True
        self._unkeep()   # its whole text goes out on the kept slot
        if self._start is not None:
            if not self.streaming:
                self._delivery.held += 1
            self._delivery._ended(self._start, counted=self._counted)
            self._counted = False

    def close(self) -> None:
        """The reply has ended (its final write was made): slots queued for a first message it never made go
        back."""
        self.end()
        if self._closed:
            return
        self._closed = True
        self._shown()
        if self.streaming:
            self._delivery._shows(self._channel, -1)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.cancel()
        if (slots := self._unhold()) is not None:
            slots.give_back()
