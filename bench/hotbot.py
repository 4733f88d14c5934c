"""`teambridge run` for `python -m bench.hotpath`: the real command, with a CPU window the bench opens and closes.

    BENCH_HOTPATH_OUT=/tmp/window.json python -m bench.hotbot run --config bench.yaml

SIGUSR1 opens a window (SIGRTMIN: a profiled one), SIGUSR2 closes it and writes what the process spent inside it to BENCH_HOTPATH_OUT
(JSON): CPU seconds of the whole process (every thread: the SQLite worker too) and of the event loop's thread
alone, the garbage collector's collections and their CPU (by generation), from the kernel's per-process and per-thread clocks (nanoseconds, unlike /proc's 10 ms ticks). A profiled
window also runs cProfile on the event loop's thread: the Python calls made inside it and where the time went (it slows the code down, so its CPU is reported apart and not used as the measure).

Only the bench's view changes: Discord's "is typing…" indicator waits an hour instead of 0.8 s, because the bench
holds the model's answers until the last request of a burst arrived, and an indicator sent only because of that
hold would be counted as work in front of the model (normally the first words come long before 0.8 s).
"""
from __future__ import annotations

import cProfile
import gc
import io
import json
import os
import pstats
import signal
import sys
import time
from typing import Any

TOP = 40


class _Window:
    def __init__(self, out: str) -> None:
        self._out = out
        self._profile: cProfile.Profile | None = None
        self._cpu0 = self._loop0 = 0.0
        self._open = False
        self._gc = [0, 0.0, 0.0]    # collections in the window, their CPU seconds, start of the one running
        self._gens = [0.0, 0.0, 0.0]
        gc.callbacks.append(self._collecting)

    def _collecting(self, phase: str, info: dict) -> None:
        if not self._open:
            return
        if phase == "start":
            self._gc[2] = time.thread_time()
        else:
            self._gc[0] += 1
            spent = time.thread_time() - self._gc[2]
            self._gc[1] += spent
            self._gens[info["generation"]] += spent

    def open(self, *_: Any) -> None:
        self._profile = None
        _COUNTING[0] = True
        self._start()

    def open_profiled(self, *_: Any) -> None:
        self._profile = cProfile.Profile(time.thread_time)   # CPU of the loop thread, not wall time
        _PROFILING[0] = True
        _COUNTING[0] = True
        self._start()

    def open_stream(self, *_: Any) -> None:
        """A window after the requests (`bench.hotpath --stream`): frames and requests are not timed in it."""
        self.open()
        _COUNTING[0] = False

    def open_stream_profiled(self, *_: Any) -> None:
        self.open_profiled()
        _COUNTING[0] = False

    def _start(self) -> None:
        _SQLITE[:] = [0, 0, 0.0, 0.0, 0.0]
        _IDLE[0] = 0.0
        self._wall0 = time.monotonic()
        _FRAMES.clear()
        _REQUESTS.clear()
        _SLACK_CALLS.clear()
        self._gc[:2] = [0, 0.0]
        self._gens = [0.0, 0.0, 0.0]
        self._open = True
        self._count0 = gc.get_count()   # young objects pending when the burst began (a collection comes at GC_YOUNG)
        self._cpu0, self._loop0 = time.process_time(), time.thread_time()
        if self._profile is not None:
            self._profile.enable()

    def close(self, *_: Any) -> None:
        _PROFILING[0] = False
        if self._profile is not None:
            self._profile.disable()
        cpu, loop = time.process_time() - self._cpu0, time.thread_time() - self._loop0
        self._open = False
        report: dict[str, Any] = {"cpu_s": cpu, "loop_cpu_s": loop, "gc_collections": self._gc[0],
                                  "gc_cpu_s": self._gc[1], "gc_cpu_s_by_generation": self._gens,
                                  "gc_count_at_open": list(self._count0), "gc_count_at_close": list(gc.get_count()),
                                  "sqlite_jobs": _SQLITE[0], "sqlite_statements": _SQLITE[1],
                                  "sqlite_wall_ms": round(_SQLITE[2] * 1000, 1), "sqlite_max_ms": round(_SQLITE[3] * 1000, 1),
                                  "sqlite_cpu_ms": round(_SQLITE[4] * 1000, 1), "loop_idle_ms": round(_IDLE[0] * 1000, 1),
                                  "wall_ms": round((time.monotonic() - self._wall0) * 1000, 1)}
        report.update(_cpu_e2m(self._cpu0))
        report["slack_calls"] = dict(_SLACK_CALLS)
        if self._profile is not None:
            self._profile.dump_stats(self._out + ".pstats")   # for a closer look: python -m pstats FILE
            stats = pstats.Stats(self._profile)
            report["calls"] = stats.total_calls          # type: ignore[attr-defined]
            report["top_self"] = _top(stats, "tottime")
            report["top_inclusive"] = _top(stats, "cumulative")
            report["top_calls"] = _top(stats, "ncalls")
            self._profile = None
        tmp = self._out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(report, f)
        os.replace(tmp, self._out)   # the bench waits for the file: it appears whole


_SQLITE = [0, 0, 0.0, 0.0, 0.0]   # jobs handed to the SQLite thread in the window, statements in them, wall s, max wall s, thread CPU s
_IDLE = [0.0]    # wall seconds the event loop waited in select() in the window


def _count_sqlite_jobs() -> None:
    """How many hand-offs to the SQLite thread a burst makes (each one a thread wake-up, and a commit when it
    writes), and how many statements they carry."""
    from core.store.sqlite_worker import SqliteWorker
    execute = SqliteWorker._execute

    def counted(self, job):
        _SQLITE[0] += 1
        _SQLITE[1] += len(job)
        t0, c0 = time.monotonic(), time.thread_time()
        try:
            return execute(self, job)
        finally:
            wall = time.monotonic() - t0
            _SQLITE[2] += wall
            _SQLITE[3] = max(_SQLITE[3], wall)
            _SQLITE[4] += time.thread_time() - c0
    SqliteWorker._execute = counted
    import selectors
    select = selectors.EpollSelector.select

    def timed_select(self, timeout=None):
        t0 = time.monotonic()
        try:
            return select(self, timeout)
        finally:
            _IDLE[0] += time.monotonic() - t0
    selectors.EpollSelector.select = timed_select


_PROFILING = [False]   # a profiled window is open
_COUNTING = [True]     # frames and requests are timed (not in a window after the requests: its frames are the
                       # bot's own messages coming back, and each timing is a clock call)


def _spares_wait_for_profiled_windows() -> None:
    """Spare conversations are labelled and the pool grown once a burst is over (≤ 1 s after its last take):
    inside a window slowed down by cProfile that moment comes before the window closes, and the labels' requests
    were counted as the burst's calls (more or fewer of them by the load of the moment). In a profiled window
    that work waits until the window closes, so its Python calls per message count only the way to the model."""
    import asyncio
    from core.backends.openai.spares import SpareConversations
    quiet = SpareConversations._quiet

    async def after_profiled_window(self, *args, **kwargs):
        while _PROFILING[0]:
            await asyncio.sleep(0.02)
        return await quiet(self, *args, **kwargs)
    SpareConversations._quiet = after_profiled_window


_FRAMES: list[float] = []     # process CPU seconds when each MESSAGE_CREATE was parsed, in the window
_REQUESTS: list[float] = []   # process CPU seconds when each POST /v1/responses was handed to aiohttp
_SLACK_CALLS: dict[str, int] = {}   # Slack Web API calls in the window, by method


def _count_progress() -> None:
    """Event -> request measured in the process's own CPU seconds instead of wall time: how much of the burst's
    work came before each request, the same on a loaded machine as on an idle one (the wall-clock e→m counts
    the time other processes had the core). Counted from when discord.py parsed the event's frame: a frame
    that waited in the socket before (the gateway reader takes turns, bots/discord/gateway_turns.py) is not
    counted (Slack: from when the adapter took the message, its first envelope read and checked) — compare those with the bench's wall-clock e→m and its `p50 / last request` instead."""
    from discord.state import ConnectionState
    from core.backends.direct import DirectJSON
    parse = ConnectionState.parse_message_create
    post = DirectJSON.post

    read_first: list[Any] = [None]   # the payload the plain reader (bots/discord/plain.py) last looked at

    def parse_counted(self, data):
        if _COUNTING[0] and data is not read_first[0]:   # (counted already when the plain reader looked at it first)
            _FRAMES.append(time.process_time())
        return parse(self, data)
    try:
        from bots.discord import plain
    except ImportError:   # code from before the plain reader: every message goes through discord.py's parser
        plain = None
    if plain is not None:
        read_plain = plain.read_plain

        def read_counted(data, state):
            read_first[0] = data
            if _COUNTING[0]:
                _FRAMES.append(time.process_time())
            return read_plain(data, state)
        plain.read_plain = read_counted

    def post_counted(self, path, body):
        if path == "responses" and _COUNTING[0]:
            _REQUESTS.append(time.process_time())
        return post(self, path, body)
    ConnectionState.parse_message_create = parse_counted
    DirectJSON.post = post_counted
    # Slack: when a message was handed on (its first envelope read, checked and not a copy), the fast path or bolt's
    from bots.slack.arrivals import RecentMessages
    first_sight = RecentMessages.first_sight

    def first_sight_counted(self, team, channel, ts):
        fresh = first_sight(self, team, channel, ts)
        if fresh and _COUNTING[0]:
            _FRAMES.append(time.process_time())
        return fresh
    RecentMessages.first_sight = first_sight_counted
    # Slack Web API calls the bot makes in the window, by method (users.info, setStatus, ...)
    from bots.slack.ratelimit import BudgetedWebClient
    api_call = BudgetedWebClient.api_call

    def api_call_counted(self, api_method, **kwargs):
        _SLACK_CALLS[api_method] = _SLACK_CALLS.get(api_method, 0) + 1
        return api_call(self, api_method, **kwargs)
    BudgetedWebClient.api_call = api_call_counted


def _cpu_e2m(cpu0: float) -> dict[str, Any]:
    """The n-th request against the n-th event (requests leave in arrival order in both the old and the new
    code: the bench's `in_order`), in CPU milliseconds; and each request's place in the window's CPU."""
    n = min(len(_FRAMES), len(_REQUESTS))
    if not n:
        return {}
    e2m = sorted(r - f for f, r in zip(_FRAMES[:n], _REQUESTS[:n]))
    at = sorted(r - cpu0 for r in _REQUESTS[:n])

    def q(values: list[float], p: float) -> float:
        return round(values[min(len(values) - 1, int(p / 100 * len(values)))] * 1000, 1)
    return {"cpu_frames_ms": [round((f - cpu0) * 1000, 2) for f in _FRAMES],
            "cpu_requests_ms": [round((r - cpu0) * 1000, 2) for r in _REQUESTS],
            "cpu_e2m_ms_p10": q(e2m, 10), "cpu_e2m_ms_p50": q(e2m, 50), "cpu_e2m_ms_p90": q(e2m, 90),
            "cpu_first_request_ms": q(at, 0), "cpu_last_request_ms": q(at, 100)}


def _top(stats: pstats.Stats, key: str) -> list[str]:
    buf = io.StringIO()
    stats.stream = buf                                     # type: ignore[attr-defined]
    stats.sort_stats(key).print_stats(TOP)
    lines = buf.getvalue().splitlines()
    start = next((i for i, l in enumerate(lines) if l.lstrip().startswith("ncalls")), 0)
    return [l for l in lines[start:] if l.strip()]


def main() -> int:
    out = os.environ["BENCH_HOTPATH_OUT"]
    window = _Window(out)
    signal.signal(signal.SIGUSR1, window.open)
    signal.signal(signal.SIGRTMIN, window.open_profiled)
    signal.signal(signal.SIGUSR2, window.close)
    signal.signal(signal.SIGRTMIN + 1, window.open_stream)
    signal.signal(signal.SIGRTMIN + 2, window.open_stream_profiled)
    if os.environ.get("BENCH_WRITTEN_OUT"):   # when each request body was written (bench/written.py)
        from bench.written import install
        install(os.environ["BENCH_WRITTEN_OUT"])
    _count_sqlite_jobs()
    _count_progress()
    _spares_wait_for_profiled_windows()
    from bots.discord.client import DiscordAdapter
    defaults = dict(DiscordAdapter.__init__.__kwdefaults__ or {})
    defaults["typing_delay"] = 3600.0
    DiscordAdapter.__init__.__kwdefaults__ = defaults
    minute = os.environ.get("BENCH_SLACK_MINUTE")
    if minute:
        from bots.slack.app import SlackAdapter
        kw = dict(SlackAdapter.__init__.__kwdefaults__ or {})
        kw["rate_minute"] = float(minute)
        SlackAdapter.__init__.__kwdefaults__ = kw
    if os.environ.get("BENCH_UVLOOP") == "1":   # to compare event loops (python -m bench.hotpath --uvloop)
        import asyncio
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    from bots.app import main as app_main
    return app_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
