"""Client-side pacing so normal load never provokes a 429.

Discord publishes no per-route numbers; sends and edits in one channel are observed to allow about 5 per
5 s (shared by every reply in that channel), and a bot may make 50 requests/s overall. discord.py only
reacts to the headers of responses it already got (and retries 429s), so many concurrent replies would
still burst; these sliding-window pacers keep us under both limits up front.

Waiters queue as futures and a freed slot is handed to exactly one of them (no thundering herd: with a
thousand replies queued, a completion wakes one coroutine, not a thousand). Three queues: `first` requests
(the first message of a reply: nothing of it is visible yet) go before other `urgent` ones (final edits, the
rest of a reply whose beginning shows), and those before ordinary ones (intermediate edits of a reply still
streaming, which the reply's final edit makes moot anyway). An ordinary request may hold
a `Ticket`: withdrawing it takes the request out of the queue if it is still waiting (latest text wins).

Ordinary requests also share a smaller budget of their own (a third of the global one by default): every
request sent in the last second is one a final edit arriving now can't have, so when many replies stream
at once their progress edits come less often, and their first and last words still go out at once.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from contextlib import asynccontextmanager, contextmanager, nullcontext
from contextvars import ContextVar
from typing import AsyncIterator, Callable, Iterator

from core.store.shares import RateShares


# True while the running task holds a global slot for the request it is making: discord.py's own requests that
# reach the HTTP client without one are paced there (bots/discord/paced_http.py), these go straight through.
HOLDING: ContextVar[bool] = ContextVar("discord_slot_held", default=False)


@contextmanager
def holding() -> Iterator[None]:
    token = HOLDING.set(True)
    try:
        yield
    finally:
        HOLDING.reset(token)


class Ticket:
    """A request's place in the pacers' queues that its owner may give up while it still waits."""

    __slots__ = ("withdrawn", "_pacer", "_future")

    def __init__(self) -> None:
        self.withdrawn = False
        self._pacer: Pacer | None = None
        self._future: asyncio.Future[bool] | None = None

    def withdraw(self) -> None:
        """The request is not needed any more: if it is still queued it leaves the queue (its slot() yields
        False); if it already holds its slot it goes ahead as usual."""
        self.withdrawn = True
        if self._pacer is not None and self._future is not None:
            self._pacer.withdraw(self._future)


class Slots:
    """Slots one request holds on several pacers (a channel's, then the global one), taken ahead of the request:
    release() once it was made, give_back() if it never was (then it does not count against the windows)."""

    __slots__ = ("_pacers",)

    def __init__(self, pacers: list["Pacer"]) -> None:
        self._pacers = pacers

    @contextmanager
    def use(self) -> Iterator[None]:
        """Around the request: released after it (counted against the windows from when it finished)."""
        try:
            with holding():
                yield
        finally:
            self.release()

    def release(self) -> None:
        pacers, self._pacers = self._pacers, []
        for pacer in reversed(pacers):
            pacer.release()

    def give_back(self) -> None:
        pacers, self._pacers = self._pacers, []
        for pacer in reversed(pacers):
            pacer.give_back()


class Pacer:
    """At most `limit` requests per `period` seconds, counted by when they *finish*, in-flight ones included.

    Counting at completion (not at start) matters: discord.py may hold a request in its own bucket queue
    after we let it go, so start times say little about when Discord sees it. A request arrives somewhere
    between its start and its finish, so if every request, when it starts, sees fewer than `limit` others
    in flight or finished within the period, no window of `period` seconds at Discord ever holds more.
    """

    __slots__ = ("limit", "full", "period", "global_budget", "_clock", "_done", "_inflight", "_first", "_urgent",
                 "_normal", "_timer")

    def __init__(self, limit: int, period: float, *, clock: Callable[[], float] = time.monotonic,
                 margin: float = 0.05, global_budget: bool = False) -> None:
        self.limit = self.full = limit   # limit: this process's share of `full` (see Pacers.share_with)
        self.period = period * (1 + margin) + 0.01  # a little slack for clock and network jitter
        # the bot's global budget: a request made inside one of its slots is not paced again by paced_http
        # (any other pacer — a channel's, an interaction's — does not stand for a global slot)
        self.global_budget = global_budget
        self._clock = clock
        self._done: deque[float] = deque()           # finish times within the period, oldest first
        self._inflight = 0                           # slots handed out and not released yet
        self._first: deque[asyncio.Future[bool]] = deque()   # urgent, and nothing of that reply shows yet
        self._urgent: deque[asyncio.Future[bool]] = deque()
        self._normal: deque[asyncio.Future[bool]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    # ---- the usual way in ---------------------------------------------------------------------

    @asynccontextmanager
    async def slot(self, *, urgent: bool = False, first: bool = False) -> AsyncIterator[None]:
        await self.acquire(urgent=urgent, first=first)
        try:
            with holding() if self.global_budget else nullcontext():
                yield
        finally:
            self.release()

    @asynccontextmanager
    async def slot_if_free(self) -> AsyncIterator[bool]:
        """Like slot(), but yields False at once (holding nothing) when the budget is used up right now or
        others are waiting. For cosmetic requests (the typing indicator) that must never delay an answer."""
        acquired = self.try_acquire()
        try:
            if acquired:
                with holding() if self.global_budget else nullcontext():
                    yield True
            else:
                yield False
        finally:
            if acquired:
                self.release()

    async def acquire(self, *, urgent: bool = False, ticket: Ticket | None = None, first: bool = False) -> bool:
        """Wait for a slot: True once it is ours (release() it after the request), False when the ticket
        was withdrawn first (nothing held)."""
        if ticket is not None and ticket.withdrawn:
            return False
        fut = self.request(urgent=urgent, first=first)
        if fut.done():
            return fut.result()
        if ticket is not None:
            ticket._pacer, ticket._future = self, fut
        try:
            return await fut
        except asyncio.CancelledError:
            self._abandon(fut)
            raise
        finally:
            if ticket is not None:
                ticket._pacer = ticket._future = None

    def release(self) -> None:
        """The request that held a slot has finished."""
        self._inflight -= 1
        self._done.append(self._clock())
        if self._first or self._urgent or self._normal:
            self._pump()

    def give_back(self) -> None:
        """Return a slot that was never used for a request (it does not count against the window)."""
        self._inflight -= 1
        if self._first or self._urgent or self._normal:
            self._pump()

    # ---- lower level --------------------------------------------------------------------------

    def try_acquire(self, *, first: bool = False) -> bool:
        """A slot now if one is free and nobody it would overtake waits (`first`: only other first messages)."""
        if self._first or (not first and (self._urgent or self._normal)):
            return False  # never ahead of someone already waiting
        self._expire(self._clock())
        if self._inflight + len(self._done) < self.limit:
            self._inflight += 1
            return True
        return False

    def request(self, *, urgent: bool = False, first: bool = False) -> asyncio.Future[bool]:
        """A future that becomes True when a slot is handed to its owner (already True when one is free
        now), or False when withdrawn. A `first` request waits only behind other first ones, an urgent one
        behind first and urgent ones."""
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if first:
            ahead, queue = bool(self._first), self._first
        elif urgent:
            ahead, queue = bool(self._first or self._urgent), self._urgent
        else:
            ahead, queue = bool(self._first or self._urgent or self._normal), self._normal
        if not ahead:
            self._expire(self._clock())
            if self._inflight + len(self._done) < self.limit:
                self._inflight += 1
                fut.set_result(True)
                return fut
        queue.append(fut)
        self._arm()
        return fut

    def withdraw(self, fut: asyncio.Future[bool]) -> None:
        if fut.done():
            return  # it holds its slot already (or gave up): nothing to take back
        for queue in (self._normal, self._urgent, self._first):
            try:
                queue.remove(fut)
                break
            except ValueError:
                continue
        fut.set_result(False)

    def used(self) -> int:
        """Requests in flight or finished within the period: what another process must leave us."""
        self._expire(self._clock())
        return self._inflight + len(self._done)

    def set_limit(self, limit: int) -> None:
        """A new share of the budget (other processes took or gave back some): waiters get what is free now."""
        self.limit = limit
        if self._first or self._urgent or self._normal:
            self._pump()

    @property
    def waiting(self) -> int:
        return len(self._first) + len(self._urgent) + len(self._normal)

    @property
    def waiting_urgent(self) -> int:
        return len(self._first) + len(self._urgent)

    def free_now(self) -> int:
        """Slots a request could have at once: none while anyone waits."""
        if self._first or self._urgent or self._normal:
            return 0
        self._expire(self._clock())
        return max(0, self.limit - self._inflight - len(self._done))

    @property
    def idle(self) -> bool:
        """Nothing queued, nothing in flight, nothing in the window: forgetting this pacer changes nothing."""
        if self._inflight or self._first or self._urgent or self._normal:
            return False
        self._expire(self._clock())
        return not self._done

    # ---- internals ----------------------------------------------------------------------------

    def _expire(self, now: float) -> None:
        cutoff = now - self.period
        done = self._done
        while done and done[0] <= cutoff:
            done.popleft()

    def _pump(self) -> None:
        """Hand every slot that is free now to the next waiters, urgent ones first; one wake-up per slot."""
        self._expire(self._clock())
        while self._inflight + len(self._done) < self.limit:
            queue = self._first or self._urgent or self._normal
            if not queue:
                break
            fut = queue.popleft()
            if fut.done():      # cancelled while it waited
                continue
            self._inflight += 1
            fut.set_result(True)
        self._arm()

    def _arm(self) -> None:
        """With someone waiting, wake up when the oldest finish leaves the window. When the slots are all
        in flight instead, the next release() pumps."""
        if self._timer is not None or not (self._first or self._urgent or self._normal) or not self._done:
            return
        delay = max(0.0, self._done[0] + self.period - self._clock())
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._pump()

    def _abandon(self, fut: asyncio.Future[bool]) -> None:
        """The waiting task was cancelled: leave the queue, or pass on a slot it was handed already."""
        if fut.cancelled():
            for queue in (self._first, self._urgent, self._normal):
                try:
                    queue.remove(fut)
                    break
                except ValueError:
                    continue
        elif fut.result():
            self.give_back()


class Pacers:
    """One global pacer plus one per channel (a Discord thread is a channel of its own).

    Per-channel pacers are forgotten once idle (nothing queued or in flight, window empty), so a bot that
    has answered in a hundred thousand channels keeps pacers only for the ones busy right now.
    """

    def __init__(self, *, channel_limit: int = 5, channel_period: float = 5.0,
                 global_limit: int = 45, global_period: float = 1.0, progress_limit: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._channel_args = (channel_limit, channel_period)
        self._clock = clock
        self.clock = clock   # the pacers' time: what else decides by these budgets reads the same (delivery)
        # The global budget keeps its margin in the limit (45 of Discord's 50 a second), not also in the window:
        # counted by finish time, no request in a window of `global_period` at Discord can be one the pacer missed
        # (see Pacer), so a 5 % longer window only slowed every burst's later windows (4 windows at 200 answers).
        self.global_ = Pacer(global_limit, global_period, clock=clock, margin=0.0, global_budget=True)
        # Progress (non-urgent) requests: at most this many of the global budget per period.
        self.progress = Pacer(progress_limit or max(1, global_limit // 3), global_period, clock=clock)
        self._channels: dict[int, Pacer] = {}
        self._sweep_every = channel_period
        self._next_sweep = clock() + channel_period
        self.on_wait: Callable[[float], None] | None = None  # told the seconds a request waited for its slots

    async def share_with(self, shares: RateShares) -> None:
        """Other processes run the same bot: the global budget is per bot, so from now on this process uses
        its share of it (core/store/shares.py); progress requests keep a third of that share."""
        pacer = self.global_
        share = shares.track("global", pacer.full, pacer.used,
                             on_change=lambda: self._reshare(share()))  # noqa: F821 (bound before it is called)
        await shares.start()
        self._reshare(share())

    def _reshare(self, limit: int) -> None:
        self.global_.set_limit(limit)
        self.progress.set_limit(min(self.progress.full, max(1, limit // 3)) if limit else 0)

    def channel(self, channel_id: int) -> Pacer:
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        pacer = self._channels.get(channel_id)
        if pacer is None:
            pacer = self._channels[channel_id] = Pacer(*self._channel_args, clock=self._clock)
        return pacer

    def _sweep(self, now: float) -> None:
        # O(channels busy in the last couple of periods), once per period. Safe: a pacer in use (queued,
        # in flight, or with finishes in its window) is never idle, and taking a pacer from channel() and
        # queueing on it happen without an await in between.
        self._next_sweep = now + self._sweep_every
        idle = [cid for cid, pacer in self._channels.items() if pacer.idle]
        for cid in idle:
            del self._channels[cid]

    @property
    def channel_count(self) -> int:
        return len(self._channels)

    async def take(self, channel_id: int, *, urgent: bool = False, ticket: Ticket | None = None,
                   first: bool = False) -> "Slots | None":
        """A send/edit slot in this channel, then (not urgent) a progress slot, then a global slot (always in
        this order: no deadlock), held until the returned Slots are released or given back. None, holding
        nothing, when `ticket` was withdrawn first. `first`: the first message of a reply (urgent, and ahead
        of the other urgent requests)."""
        urgent = urgent or first
        pacers = (self.channel(channel_id), self.global_) if urgent else \
            (self.channel(channel_id), self.progress, self.global_)
        held: list[Pacer] = []
        asked = self._clock()
        try:
            for pacer in pacers:
                if not await pacer.acquire(urgent=urgent, ticket=ticket, first=first):
                    break
                held.append(pacer)
        except BaseException:
            for pacer in held:
                pacer.give_back()
            raise
        if len(held) < len(pacers):
            for pacer in held:
                pacer.give_back()
            return None
        waited = self._clock() - asked
        if waited > 0.001 and self.on_wait is not None:
            self.on_wait(waited)
        return Slots(held)

    def take_now(self, channel_id: int) -> "Slots | None":
        """A first message's slots (channel, then global) if both are free this moment, else None at once."""
        channel = self.channel(channel_id)
        if not channel.try_acquire(first=True):
            return None
        if not self.global_.try_acquire(first=True):
            channel.give_back()
            return None
        return Slots([channel, self.global_])

    @asynccontextmanager
    async def for_channel(self, channel_id: int, *, urgent: bool = False, ticket: Ticket | None = None,
                          first: bool = False) -> AsyncIterator[bool]:
        """take()'s slots around a request: yields False, holding nothing, when `ticket` was withdrawn first."""
        slots = await self.take(channel_id, urgent=urgent, ticket=ticket, first=first)
        if slots is None:
            yield False
            return
        with slots.use():
            yield True

    def for_global(self, *, urgent: bool = False):
        return self.global_.slot(urgent=urgent)
