"""The bot's side of event→model, for checking the bench: when each POST /v1/responses body was written.

The bench timestamps a request when the stand-in model's handler sees it — after the bench's own event loop got
round to it. How late that is ("bench lag") is only known from the other end: in the bot process, an aiohttp
TraceConfig on the session of core.backends.direct.DirectJSON notes when each request body was handed to the
socket (`on_request_chunk_sent`), by the answer's tag ("q00042", in the user's text the body carries).
time.monotonic() is CLOCK_MONOTONIC, one clock for every process on the machine, so the bot's "written" compares
directly with the bench's `event_sent` and `model_request`.

    install(path)       # in the bot process (bench.botproc, bench.hotbot), before the bot starts
    read(path)          # in the bench, after the bot exited: {tag: written}

Nothing the bot does changes: the trace is added to the session DirectJSON opens (through a stand-in for the
`aiohttp` name in that one module, so no other session of the process is traced) and the times are written
to `path` when the process exits. The trace's own cost is a few microseconds per request of that session.
"""
from __future__ import annotations

import atexit
import json
import re
import time
import types
from pathlib import Path
from typing import Any

_TAG = re.compile(rb"q\d{5}")


class _Written:
    def __init__(self, path: str) -> None:
        self.path = path
        self.times: dict[str, float] = {}   # tag -> first time a body carrying it was written

    async def chunk_sent(self, session: Any, ctx: Any, params: Any) -> None:
        t = time.monotonic()
        chunk = params.chunk
        if b'"input"' not in chunk:      # a request body of /responses carries the user's text; headers do not
            return
        m = _TAG.search(chunk)
        if m is not None:
            self.times.setdefault(m.group().decode(), t)

    def dump(self) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.times, f)
        Path(tmp).replace(self.path)


def install(path: str) -> None:
    """Trace DirectJSON's session in this process; write {tag: written} to `path` at exit."""
    import aiohttp

    try:
        from core.backends import direct
    except ImportError:   # a bot from before DirectJSON (issue 17's "before"): the bench notes no written times
        return

    written = _Written(path)
    trace = aiohttp.TraceConfig()
    trace.on_request_chunk_sent.append(written.chunk_sent)
    trace.freeze()

    def traced_session(*args: Any, **kwargs: Any) -> aiohttp.ClientSession:
        kwargs["trace_configs"] = [*(kwargs.get("trace_configs") or ()), trace]
        return aiohttp.ClientSession(*args, **kwargs)

    # `aiohttp` as core.backends.direct sees it: the real module but for ClientSession
    shim = types.ModuleType("aiohttp")
    shim.__dict__.update(aiohttp.__dict__)
    shim.ClientSession = traced_session   # type: ignore[attr-defined]
    direct.aiohttp = shim                 # type: ignore[attr-defined]
    atexit.register(written.dump)


def read(path: Path) -> dict[str, float]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
