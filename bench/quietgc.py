"""No collection of the bench's own heap while a burst is being measured.

The bench process holds the stand-ins, the ledger and everything they stored: a generation-2 collection of that
heap took 77–79 ms on this machine and was seen (with gc.callbacks) right inside bursts of 50 and of 200
mentions. During it the bench's event loop stands still: no mention is sent, no POST
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
        # the bench's own collections from the first hold on: (generation, ms, inside a burst?)
        self.collections: list[tuple[int, float, bool]] = []
        self.hold_ms = 0.0                 # what collect() + freeze() took before the burst (not measured)
        self._was_enabled = True           # a caller that runs with the collector off keeps it off
        # per burst, from the hold to its last request: this thread's CPU ms (what the stand-ins cost the loop
        # that timestamps) and the wall ms — their difference the loop waited (for the bot, or for a core)
        self.bursts: list[tuple[float, float]] = []
        self._burst0: tuple[float, float] | None = None

    def hold(self, *, until: int) -> None:
        if self._collecting not in gc.callbacks:
            gc.callbacks.append(self._collecting)
        if os.environ.get("BENCH_GC_HOLD") == "0":
            self._counting = True
            self.until = until
            self._burst0 = (time.thread_time(), time.monotonic())
            return
        self._counting = False      # the collection asked for here is not one of the bench's own
        if not self.held:
            self._was_enabled = gc.isenabled()
        t = time.perf_counter()
        gc.collect()
        gc.freeze()
        gc.disable()
        self.hold_ms = (time.perf_counter() - t) * 1000
        self.until, self.held = until, True
        self._burst0 = (time.thread_time(), time.monotonic())
        self._counting = True

    def arrived(self, count: int) -> None:
        """The ledger saw its `count`-th request: the burst is over once it reaches `until`."""
        if self.until is not None and count >= self.until:
            if self._burst0 is not None:
                cpu0, wall0 = self._burst0
                self.bursts.append(((time.thread_time() - cpu0) * 1000, (time.monotonic() - wall0) * 1000))
                self._burst0 = None
            self.release()

    def release(self) -> None:
        self.until, self._burst0 = None, None
        if self.held:
            self.held = False
            if self._was_enabled:
                gc.enable()

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
            self.collections.append((info["generation"], (time.perf_counter() - self._started) * 1000,
                                     self._burst0 is not None))

    def report(self) -> dict[str, Any]:
        """The bench's own collections inside the bursts (none unless BENCH_GC_HOLD=0) and after them (while the
        answers streamed), and the bursts' CPU and wall time, for the result JSON."""
        inside = [(g, m) for g, m, b in self.collections if b]
        after = [(g, m) for g, m, b in self.collections if not b]
        full = [m for g, m in after if g == 2]
        return {"burst_loop_cpu_ms": [round(c, 1) for c, _ in self.bursts],
                "burst_wall_ms": [round(w, 1) for _, w in self.bursts],
                "collect_freeze_ms": round(self.hold_ms, 1),
                "in_burst": [[g, round(m, 1)] for g, m in inside],
                "collections_after": len(after), "ms_after": round(sum(m for _, m in after), 1),
                "gen2_after": len(full), "gen2_max_ms": round(max(full, default=0.0), 1)}
