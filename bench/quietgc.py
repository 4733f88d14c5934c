"""No collection of the bench's own heap while a burst is being measured.

The bench process holds the stand-ins, the ledger and everything they stored: a generation-2 collection of that
heap took 77–79 ms on this machine and came, more often than not, right inside a burst of 50 or 200 mentions
(seen with gc.callbacks). During it the bench's event loop stands still: no mention is sent, no POST
/v1/responses is timestamped, and the bot's requests wait in the socket — counted as the bot's event→model.

    hold = GCHold()
    hold.hold(until=ledger.requests_arrived + n)   # before the burst: collect, freeze, disable
    ...                                            # Ledger.model_requested calls hold.arrived(count)
    hold.end()                                     # the scenario is over: enable, unfreeze

BENCH_GC_HOLD=0 in the environment turns the hold off: to measure what it changes (bench/RESULTS.md).

Before the burst everything alive is collected once and frozen (gc.freeze(): moved to the permanent generation, so
no later collection walks it again), and the collector is off until the burst's last request reached the model.
Then it is on again for the young generations; the frozen heap stays out of its way while the answers stream (a
full collection afterwards walks only what the run allocated since). `end()` unfreezes, so the next scenario of
the same `python -m bench` starts from a normal heap. Collections after the hold are counted (`report()`): they
still pause the loop that timestamps first/last visible.
"""
from __future__ import annotations

import gc
import os
import time
from typing import Any


class GCHold:
    def __init__(self) -> None:
        self.until: int | None = None      # re-enable once this many requests arrived (the ledger's count)
        self.held = False
        self._started = 0.0
        self._counting = False
        self.collections: list[tuple[int, float]] = []   # (generation, ms) after the hold was released
        self.hold_ms = 0.0                 # what collect() + freeze() took before the burst (not measured)
        self._was_enabled = True           # a caller that runs with the collector off keeps it off

    def hold(self, *, until: int) -> None:
        if os.environ.get("BENCH_GC_HOLD") == "0":
            return
        if not self.held:
            self._was_enabled = gc.isenabled()
        t = time.perf_counter()
        gc.collect()
        gc.freeze()
        gc.disable()
        self.hold_ms = (time.perf_counter() - t) * 1000
        self.until, self.held = until, True
        if self._collecting not in gc.callbacks:
            gc.callbacks.append(self._collecting)

    def arrived(self, count: int) -> None:
        """The ledger saw its `count`-th request: the burst is over once it reaches `until`."""
        if self.until is not None and count >= self.until:
            self.release()

    def release(self) -> None:
        self.until = None
        if self.held:
            self.held = False
            if self._was_enabled:
                gc.enable()
            self._counting = True

    def end(self) -> None:
        self.release()
        self._counting = False
        if self._collecting in gc.callbacks:
            gc.callbacks.remove(self._collecting)
        gc.unfreeze()

    def _collecting(self, phase: str, info: dict[str, Any]) -> None:
        if not self._counting:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.collections.append((info["generation"], (time.perf_counter() - self._started) * 1000))

    def report(self) -> dict[str, Any]:
        """The bench's own collections after the hold (while answers streamed), for the result JSON."""
        full = [m for g, m in self.collections if g == 2]
        return {"collect_freeze_ms": round(self.hold_ms, 1), "collections_after": len(self.collections),
                "ms_after": round(sum(m for _, m in self.collections), 1),
                "gen2_after": len(full), "gen2_max_ms": round(max(full, default=0.0), 1)}
