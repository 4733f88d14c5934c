"""The running process collects young garbage while nothing is being answered, not in the middle of a burst."""
from __future__ import annotations

import asyncio
import gc
import weakref

from bots.runner import collect_when_quiet


class _Service:
    def __init__(self) -> None:
        self.turns_in_flight = 1


class _Cycle:
    def __init__(self) -> None:
        self.me = self


async def test_garbage_left_by_answers_is_collected_once_nothing_is_answered():
    service = _Service()
    was_enabled = gc.isenabled()
    gc.disable()   # only the collector under test collects
    try:
        cycles = [_Cycle() for _ in range(2_000)]
        left = weakref.ref(cycles[0])
        del cycles   # unreachable now, but cycles: only a collection frees them
        collector = asyncio.create_task(collect_when_quiet(service, every=0.01, young=1_000))
        try:
            await asyncio.sleep(0.1)          # answers in flight: nothing collected under them
            assert left() is not None
            service.turns_in_flight = 0       # the last answer ended
            for _ in range(3_000):
                if left() is None:
                    break
                await asyncio.sleep(0.01)
            assert left() is None
        finally:
            collector.cancel()
    finally:
        if was_enabled:
            gc.enable()
