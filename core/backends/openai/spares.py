"""Spare conversations: made ahead of time, so a new chat thread does not wait for POST /v1/conversations.

Every @mention that starts a Slack thread or a Discord conversation needs a new OpenAI Conversation before the
model can start; that is one more round trip in front of the first word. A few empty conversations are kept
ready instead: one is taken at once and labelled with its real metadata (conversations.update) while the first
answer streams (once a burst of new threads is over: until then the event loop sends the burst's requests).
`teambridge run` fills the pool at start (`prepare`), so that the first new threads after a start find spares too;
elsewhere (a chat, a one-off command) it fills once the first conversation was needed. It refills in the
background; when it is empty, a conversation is created the ordinary way.

How many are kept follows demand: at least `spare_conversations`, and after a burst of new threads as many as
were started in the last minute (at most MAX_SPARES), so the next burst of that size finds a spare for each
thread instead of waiting for `POST /v1/conversations` in front of every first answer. The part above the
configured number is made only once the burst is over (no take for QUIET_SECONDS): while it lasts, the event
loop serves the burst, not the pool. That burst's size is also written to the ledger (`save_spare_demand`), and
`teambridge run` fills to it at its next start: a clean stop deletes the unused spares (below), so without it the
first burst after a restart would make a conversation per new thread again.

Nothing is left behind at OpenAI (the Conversations API has no list call, so a forgotten spare could never be
found again): each spare is written to a ledger (the store) as it is made, and a spare is taken by removing it
from the ledger, atomically, so processes sharing a database never hand one spare to two chats. A clean
shutdown deletes the spares still in the pool; the ones a crash left behind are in the ledger and the next
start uses them first.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Callable, Protocol
from urllib.parse import quote

import openai
from openai import AsyncOpenAI

from core.backends.direct import DirectJSON

log = logging.getLogger(__name__)

SPARE_LABEL = {"teambridge": "spare"}
SHUTDOWN_SECONDS = 10.0  # deleting the pool at shutdown never holds the exit up longer than this
DEMAND_SECONDS = 60.0    # the pool is sized by the new threads started within this long
MAX_SPARES = 500         # never more made ahead than this, whatever the demand
# The part above the configured size is made once no spare was taken for this long. A burst's takes come in
# waves with pauses between them (on Slack ~0.2 s, while the event loop reads the next envelopes and the
# turns of the first wave go on): at 0.1 s the pool topped itself up — and labelled the spares taken —
# in those pauses, in the middle of the burst, in front of its remaining requests to the model.
QUIET_SECONDS = 0.5
FILL_AT_ONCE = 8         # creates in flight while the pool fills
LABEL_WAIT_SECONDS = 1.0  # a taken spare's label waits for a burst to pass at most this long
UNANSWERED_SECONDS = 1.0  # at shutdown, a server that never answered a create gets this long, not SHUTDOWN_SECONDS


class SpareLedger(Protocol):
    """Where spares are recorded (core.store: the `spare_conversations` table). `pool` names the server."""

    async def add_spare(self, pool: str, conversation_id: str) -> None: ...
    async def take_spare(self, pool: str) -> str | None: ...   # removes one spare (oldest first), atomically
    async def count_spares(self, pool: str) -> int: ...
    async def save_spare_demand(self, pool: str, demand: int) -> None: ...   # the last burst's size
    async def spare_demand(self, pool: str) -> int: ...                        # 0: none known


class MemoryLedger:
    """A ledger of this process only (tests, and backends built without a store)."""

    def __init__(self) -> None:
        self._pools: dict[str, deque[str]] = {}
        self._demand: dict[str, int] = {}

    async def add_spare(self, pool: str, conversation_id: str) -> None:
        self._pools.setdefault(pool, deque()).append(conversation_id)

    async def take_spare(self, pool: str) -> str | None:
        spares = self._pools.get(pool)
        return spares.popleft() if spares else None

    async def count_spares(self, pool: str) -> int:
        return len(self._pools.get(pool, ()))

    async def save_spare_demand(self, pool: str, demand: int) -> None:
        self._demand[pool] = demand

    async def spare_demand(self, pool: str) -> int:
        return self._demand.get(pool, 0)


class SpareConversations:
    def __init__(self, client: AsyncOpenAI, size: int, *, ledger: SpareLedger | None = None,
                 pool: str | None = None, direct: DirectJSON | None = None) -> None:
        self._client = client
        # Creating and labelling go out directly (core.backends.direct): a new thread's first answer waits for
        # the create when no spare is left, and a burst of new threads makes hundreds at once. `direct`: the
        # backend's, shared with its POST /v1/responses (a create's connection then serves the answer's request).
        self._direct = direct if direct is not None else DirectJSON.for_client(client)
        self._size = size
        self._ledger = ledger or MemoryLedger()
        # Spares belong to one server (and account): OPENAI_BASE_URL switched, the old ones are not used here.
        self._pool = pool or str(client.base_url).rstrip("/")
        self._filling: asyncio.Task | None = None
        self._labels: dict[str, asyncio.Task] = {}
        self._unlabelled: dict[str, dict[str, str]] = {}   # taken, their label waiting for the burst to pass
        self._labelling: asyncio.Task | None = None
        self._closing = False
        self._answered = False   # the server has answered a create since start (else, at shutdown, it is down)
        self._taken = 0          # spares taken since start: a fill waiting for quiet sees the pool drain
        # The last take found the ledger empty, and no spare was recorded or counted since: the next new threads
        # don't ask (a write statement each, in front of their first request) until one is. Another process's
        # spares are noticed at this pool's next count (every fill round counts).
        self._empty = False
        self._takes: deque[float] = deque()   # when conversations were asked for (monotonic), DEMAND_SECONDS back
        self._restore = False    # `teambridge run`: the first fill reads the last burst's size from the ledger
        self._demand = 0         # the last burst's size (new threads within DEMAND_SECONDS), when above _size

    async def take(self, metadata: dict[str, str]) -> str:
        """A conversation for `metadata`: a spare (labelled in the background) or a new one. Raises openai.APIError."""
        conversation_id = await self.take_ready(metadata)
        return conversation_id if conversation_id is not None else await self._create(metadata)

    async def take_ready(self, metadata: dict[str, str]) -> str | None:
        """A spare for `metadata` (labelled in the background), or None when none is ready: then the caller makes
        one, or (core/backends/openai/first_turn.py) sends the thread's first turn without one. Either way the
        take counts towards the demand the pool is sized by."""
        if self._size:
            self._takes.append(time.monotonic())
        conversation_id = await self._take_spare() if self._size and not self._empty else None
        if conversation_id is not None:
            self._taken += 1
        elif self._size:
            self._empty = True
        self._refill()
        if conversation_id is None:
            return None
        # Labelled once a burst of new threads is over (or LABEL_WAIT_SECONDS at the latest): meanwhile the
        # event loop sends the burst's requests to the model; the labels are for admins and can wait.
        self._unlabelled[conversation_id] = metadata
        if self._labelling is None or self._labelling.done():
            self._labelling = asyncio.ensure_future(self._label_pending())
        return conversation_id

    def prepare(self) -> None:
        """`teambridge run` at start (in a running loop): the pool fills to its configured size now, so the first
        new threads after a start don't wait for POST /v1/conversations; and the HTTP session is opened."""
        if self._direct is not None:
            self._direct.prepare()
        self._restore = True   # ... and to the size of the last burst before the stop (only here: a one-off
        self._refill()         # command's spares would only be deleted again at its exit)

    async def labelled(self, conversation_id: str) -> None:
        """Wait until a spare taken for this conversation carries its metadata (no-op otherwise)."""
        metadata = self._unlabelled.pop(conversation_id, None)
        if metadata is not None:   # its answer ended before the burst did: labelled now
            await self._label(conversation_id, metadata)
            return
        task = self._labels.pop(conversation_id, None)
        if task is not None:
            await task

    async def _label_pending(self) -> None:
        await self._quiet(LABEL_WAIT_SECONDS)
        pending, self._unlabelled = self._unlabelled, {}
        for conversation_id, metadata in pending.items():
            self._labels[conversation_id] = asyncio.ensure_future(self._label(conversation_id, metadata))

    async def aclose(self) -> None:
        """Stop filling, finish labelling, and delete the spares still in the pool at OpenAI."""
        self._closing = True  # a create in flight finishes and is recorded: cancelling it could lose it at OpenAI
        if self._filling is not None:
            # ... unless the server never answered one since start (down, or not answering at all): a start that
            # fails, or a SIGTERM, then does not wait SHUTDOWN_SECONDS for a create that will not come back
            await asyncio.wait([self._filling], timeout=SHUTDOWN_SECONDS if self._answered else UNANSWERED_SECONDS)
            if not self._filling.done():
                self._filling.cancel()
                log.warning("spare conversations: %s did not answer; stopped making spares", self._pool)
                if self._direct is not None:
                    await self._direct.aclose()
                return   # nothing to delete there now: the ledger keeps what is left for the next start
        if self._labelling is not None:   # closing: what waits for its label is labelled now
            await asyncio.wait([self._labelling], timeout=5)
        if self._labels:
            await asyncio.wait(list(self._labels.values()), timeout=5)
        try:
            async with asyncio.timeout(SHUTDOWN_SECONDS):
                deleted = await self._delete_pool()
        except TimeoutError:
            log.warning("spare conversations: not all deleted within %.0f s; the next start uses the rest",
                        SHUTDOWN_SECONDS)
            return
        if deleted:
            log.info("deleted %d unused spare conversation(s) at OpenAI", deleted)
        if self._direct is not None:
            await self._direct.aclose()

    @property
    def pool(self) -> str:
        return self._pool

    async def _take_spare(self) -> str | None:
        try:
            return await self._ledger.take_spare(self._pool)
        except Exception:  # the ordinary path still works
            log.exception("spare conversations: the ledger failed; creating a conversation directly")
            return None

    async def _delete_pool(self) -> int:
        deleted = 0
        while True:   # FILL_AT_ONCE at a time: a pool sized for a burst is deleted within SHUTDOWN_SECONDS too
            batch = []
            while len(batch) < FILL_AT_ONCE and (conversation_id := await self._ledger.take_spare(self._pool)):
                batch.append(conversation_id)
            done = await asyncio.gather(*(self._delete(c) for c in batch))
            deleted += sum(done)
            if not batch or not all(done):
                return deleted

    async def _delete(self, conversation_id: str) -> bool:
        try:
            await self._client.conversations.delete(conversation_id)
        except openai.NotFoundError:
            pass  # gone already: what we wanted
        except Exception as exc:  # put it back: the next start uses it (or deletes it)
            log.warning("could not delete spare conversation %s: %r", conversation_id, exc)
            await self._ledger.add_spare(self._pool, conversation_id)
            return False
        return True

    def _refill(self) -> None:
        if self._size and not self._closing and (self._filling is None or self._filling.done()):
            self._filling = asyncio.ensure_future(self._fill())

    def target(self) -> int:
        """How many spares to keep now: the configured number, or the recent demand if that is higher."""
        takes, since = self._takes, time.monotonic() - DEMAND_SECONDS
        while takes and takes[0] < since:
            takes.popleft()
        return min(MAX_SPARES, max(self._size, len(takes), self._demand))

    async def _fill(self) -> None:
        try:
            if self._restore:
                self._restore = False
                self._demand = await self._ledger.spare_demand(self._pool)
            while not self._closing:
                have = await self._ledger.count_spares(self._pool)
                if have:
                    self._empty = False
                missing = self.target() - have
                if missing <= 0:
                    return
                at_once = 1   # up to the configured size one at a time, each recorded before the next is made
                if have >= self._size:
                    # the part above the configured size waits for a burst to pass; the configured size does not:
                    # takes that bring the pool under it while this waits send the fill back to the top
                    taken = self._taken
                    if not await self._quiet(drained=lambda: have - (self._taken - taken) < self._size):
                        return
                    if have - (self._taken - taken) < self._size:
                        continue
                    await self._remember_demand()
                    at_once = min(missing, FILL_AT_ONCE)
                made = await asyncio.gather(*(self._spare() for _ in range(at_once)))
                if not all(made):   # the ordinary path still works; try again on the next demand
                    return
        except Exception:
            log.exception("spare conversations: the ledger failed; no spares for now")

    async def _remember_demand(self) -> None:
        """A burst is over: its size (new threads in the last minute), when above the configured number, is the
        pool's size from now on, and at the next start (the last burst's, not the largest ever)."""
        self.target()   # (drops takes older than DEMAND_SECONDS)
        burst = min(MAX_SPARES, len(self._takes))
        if burst <= self._size or burst == self._demand:
            return
        self._demand = burst
        try:
            await self._ledger.save_spare_demand(self._pool, burst)
        except Exception:  # the pool still fills; only the next start would not know the size
            log.exception("spare conversations: could not record the demand of %d", burst)

    async def _quiet(self, limit: float | None = None, drained: Callable[[], bool] | None = None) -> bool:
        """Waits until no spare was taken for QUIET_SECONDS (or `limit` seconds passed, or `drained()`); False
        when closing."""
        deadline = None if limit is None else time.monotonic() + limit
        while not self._closing:
            now = time.monotonic()
            quiet = now - (self._takes[-1] if self._takes else 0.0)
            if quiet >= QUIET_SECONDS or (deadline is not None and now >= deadline) or (drained and drained()):
                return True
            await asyncio.sleep(min(QUIET_SECONDS - quiet, 0.05) if drained else QUIET_SECONDS - quiet)
        return False

    async def _spare(self) -> bool:
        try:
            conversation_id = await self._create(SPARE_LABEL)
        except openai.APIError as exc:
            log.warning("could not prepare a spare conversation: %s", exc)
            return False
        # recorded at once: a crash from here on leaves it in the ledger, not lost at OpenAI
        await asyncio.shield(self._ledger.add_spare(self._pool, conversation_id))
        self._empty = False
        return True

    async def _create(self, metadata: dict[str, str]) -> str:
        """POST /v1/conversations: the new conversation's id. Raises openai.APIError."""
        if self._direct is None:
            conversation_id = (await self._client.conversations.create(metadata=metadata)).id
        else:
            data = await self._direct.post_json("conversations", {"metadata": metadata})
            if not isinstance(data, dict) or not isinstance(data.get("id"), str):
                raise openai.APIError("The server's answer to creating a conversation has no id", request=None,
                                      body=data)  # type: ignore[arg-type]
            conversation_id = data["id"]
        self._answered = True
        return conversation_id

    async def _label(self, conversation_id: str, metadata: dict[str, str]) -> None:
        try:
            if self._direct is None:
                await self._client.conversations.update(conversation_id, metadata=metadata)
            else:
                await self._direct.post_json(f"conversations/{quote(conversation_id, safe='')}",
                                             {"metadata": metadata})
        except openai.APIError as exc:  # the answer does not depend on it; the label is for admins
            log.warning("could not label conversation %s with its metadata: %s", conversation_id, exc)
