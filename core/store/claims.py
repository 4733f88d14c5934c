"""Event claims decided in this process's memory, for a store one process owns (SQLite).

Every platform event is claimed before it is answered (core.store.protocol.EventClaims). On SQLite the claim
was an INSERT … RETURNING awaited on the connection's thread: in a burst the claims came back in waves (the
thread waits for the GIL while the loop is busy), and the requests to the model left in waves behind them. One
process owns an SQLite database, so it knows every claim made in it: here a claim is decided in memory, and
the row is written behind (core/store/sqlite.py: the same group commit, durable within its few milliseconds;
flushed when the store closes).

What the memory holds, and for how long:
- `recent`: the exact keys claimed in the last WINDOW_SECONDS (an hour), at most RECENT_MAX of them. Platforms
  redeliver within minutes — Slack retries an un-acknowledged event after ~0 s, 1 min and 5 min; Discord's
  resume replays what a reconnect missed — and Slack sends every mention twice (app_mention and message.*,
  one key): these are answered "already claimed" from here. Loaded from the table when the store opens, so a
  restarted process still drops a redelivery.
- `seen`: every key claimed within the database's retention (core.store.sql.EVENT_RETENTION_SECONDS, a week)
  as a Bloom filter (2 × 256 KiB): "certainly never claimed" for a new event, so it is claimed without a
  statement. A key it may have seen (an event redelivered after the window, or a false positive: under 1 % up to
  ~200,000 events a week, more above that) is decided by the database as before (`None`: ask it). Two generations, each
  filled for one retention period and dropped one period after it stopped filling, so memory stays bounded and
  nothing is forgotten before the database forgets it.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterable

WINDOW_SECONDS = 3600.0
RECENT_MAX = 100_000
_BITS = 1 << 21            # per generation: 256 KiB
_HASHES = 7
GENERATION_CAPACITY = 200_000   # claims per generation: false positives stay under 1 %


class _Bloom:
    __slots__ = ("start", "bits", "count")

    def __init__(self, start: float) -> None:
        self.start = start
        self.bits = bytearray(_BITS >> 3)
        self.count = 0

    def add(self, positions: tuple[int, ...]) -> None:
        self.count += 1
        bits = self.bits
        for p in positions:
            bits[p >> 3] |= 1 << (p & 7)

    def has(self, positions: tuple[int, ...]) -> bool:
        bits = self.bits
        for p in positions:
            if not bits[p >> 3] >> (p & 7) & 1:
                return False
        return True


def _positions(key: tuple[str, str]) -> tuple[int, ...]:
    # Python's hash of the key (randomized per process: the filter is rebuilt at each start) split in two for
    # double hashing: position i = h1 + i·h2.
    h = hash(key) & 0xFFFF_FFFF_FFFF_FFFF
    h1, h2 = h & (_BITS - 1), ((h >> 23) | 1) & (_BITS - 1)
    return tuple((h1 + i * h2) & (_BITS - 1) for i in range(_HASHES))


class MemoryClaims:
    """`decide(platform, key, now)`: True (claimed now: write it behind), False (claimed before), None (maybe
    claimed before the window: ask the database). `load(rows, now)` at open; `remember` what the database won."""

    def __init__(self, retention: float, *, window: float = WINDOW_SECONDS, recent_max: int = RECENT_MAX) -> None:
        self._retention = retention
        self._window = window
        self._recent_max = recent_max
        self._recent: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._seen: list[_Bloom] = []

    def load(self, rows: Iterable[tuple[str, str, float]], now: float) -> None:
        """The claims the database holds (all within its retention: pruned at open), oldest first."""
        self._recent.clear()
        self._seen = [_Bloom(now)]
        self.note_all(rows, now)

    def note_all(self, rows: Iterable[tuple[str, str, float]], now: float) -> None:
        """More of the database's claims, oldest first (load() reads them a page at a time)."""
        for platform, key, at in rows:
            self._note((platform, key), at, now)

    def decide(self, platform: str, key: str, now: float) -> bool | None:
        k = (platform, key)
        if k in self._recent:
            return False
        newest, positions = self._generation(now), _positions(k)
        if any(g.has(positions) for g in self._seen):
            return None
        newest.add(positions)
        self._keep_recent(k, now)
        return True

    def remember(self, platform: str, key: str, now: float) -> None:
        """A claim the database decided (and won): known from now on."""
        self._note((platform, key), now, now)

    def forget_before(self, cutoff: float) -> None:
        """The database pruned the claims older than `cutoff`: so does the exact memory (the filter's
        generations expire by themselves)."""
        recent = self._recent
        while recent and next(iter(recent.values())) < cutoff:
            recent.popitem(last=False)

    def _note(self, k: tuple[str, str], at: float, now: float) -> None:
        self._generation(now).add(_positions(k))
        if at >= now - self._window:
            self._keep_recent(k, at)

    def _keep_recent(self, k: tuple[str, str], at: float) -> None:
        recent = self._recent
        recent[k] = at
        recent.move_to_end(k)
        while len(recent) > self._recent_max or (recent and next(iter(recent.values())) < at - self._window):
            recent.popitem(last=False)

    def _generation(self, now: float) -> _Bloom:
        """The generation new claims go into (the first); a new one once it filled for a retention period, and
        the oldest dropped once the database has forgotten everything it holds."""
        seen = self._seen
        if not seen:
            seen.append(_Bloom(now))
        elif now - seen[0].start >= self._retention or seen[0].count >= GENERATION_CAPACITY:
            # full before its period ended (a busy bot): a new one, or false positives would send nearly every
            # event back to the database's INSERT
            seen.insert(0, _Bloom(now))
            # a generation started at s took claims until s + retention: needed until s + 2 × retention
            self._seen = seen = [g for g in seen if now - g.start < 2 * self._retention]
        return seen[0]
