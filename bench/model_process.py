"""The stand-in model in a process of its own, as the real one is on machines of its own.

In the bench process the OpenAI stand-in shares one event loop with the platform stand-in: during a burst that
loop sends the mentions, takes the bot's typing and message requests (Discord's rate limits, Slack's methods),
validates every request body with the SDK's types, and streams the answers already started. A request the bot
had sent sat in that loop's queue before its handler noted when it arrived — measured with a tracer in the bot,
330–500 ms at 200 (bench/RESULTS.md, "The first burst of a fresh process"): the bench's own lag, counted as the
bot's event→model. Here the stand-in model runs alone in a child process, so it notes a request when it comes.

Times are time.monotonic() — CLOCK_MONOTONIC, one clock for every process on the machine — so the child's
`model_request`, `first_delta` and `last_delta` compare directly with the parent's `event_sent` and
`first_visible`. The parent reads them at the end (`times`), and for the warm-up answer right after it.

    python -m bench.model_process CHARS DELTA_CHARS INTERVAL FIRST_DELAY   # prints "ready <base_url>"
"""
from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from bench.standins import AnswerShape, AnswerTimes, BenchOpenAI, Ledger

_AUTH = {"Authorization": "Bearer sk-test"}  # the stand-in's key check covers its bench routes too


class _OnDemandLedger(Ledger):
    """Every tag the model is asked about gets its record on first sight (the parent knows the channels)."""

    def __init__(self, shape: AnswerShape) -> None:
        super().__init__()
        self.shape = shape
        self.by_tag = _Records(shape)


class _Records(dict):
    def __init__(self, shape: AnswerShape) -> None:
        super().__init__()
        self.shape = shape

    def get(self, tag: str, default: Any = None) -> AnswerTimes | None:  # type: ignore[override]
        if not tag:
            return default
        if tag not in self:
            self[tag] = AnswerTimes(tag=tag, answer=self.shape.text_for(tag))
        return self[tag]


class _ChildModel(BenchOpenAI):
    """BenchOpenAI plus two routes for the parent: which times to read, and whose CPU to probe."""

    def _app(self) -> web.Application:
        app = super()._app()
        app.router.add_get("/_bench/times", self._times)
        app.router.add_post("/_bench/expect", self._expect)
        app.router.add_post("/_bench/hold_gc", self._hold_gc)
        return app

    async def _hold_gc(self, request: web.Request) -> web.Response:
        """No collection of this process's heap until `more` further requests arrived (bench/quietgc.py)."""
        body = await request.json()
        self.ledger.gc.hold(until=self.ledger.requests_arrived + int(body["more"]))
        return web.json_response({"ok": True})

    async def _times(self, request: web.Request) -> web.Response:
        ledger = self.ledger
        return web.json_response({
            "times": {a.tag: [a.model_request, a.first_delta, a.last_delta] for a in ledger.by_tag.values()},
            "cpu_at_last_request": ledger.cpu_at_last_request,
            "gc": ledger.gc.report(),
        })

    async def _expect(self, request: web.Request) -> web.Response:
        """From now on count POST /v1/responses; at the `expected`-th read the bot's CPU (pid) once."""
        from bench.harness import proc_cpu
        body = await request.json()
        ledger = self.ledger
        ledger.requests_arrived, ledger.requests_expected = 0, int(body["expected"])
        ledger.cpu_at_last_request = None
        pid = body.get("pid")
        ledger.cpu_probe = (lambda: proc_cpu(int(pid))) if pid else None
        return web.json_response({"ok": True})


async def _serve(shape: AnswerShape) -> None:
    async with _ChildModel(_OnDemandLedger(shape), shape) as model:
        print(f"ready {model.base_url}", flush=True)
        # the parent closes our stdin when it is done (or dies): that is the only way out
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)


@dataclass
class RemoteModel:
    """The parent's handle: start it, point the bot at `base_url`, read the times into the parent's Ledger."""

    shape: AnswerShape
    proc: asyncio.subprocess.Process | None = None
    base_url: str = ""
    gc: dict[str, Any] | None = None     # the model process's own collections (GCHold.report), after read_into

    async def __aenter__(self) -> "RemoteModel":
        s = self.shape
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.model_process", str(s.chars), str(s.delta_chars), str(s.interval),
            str(s.first_delay), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert self.proc.stdout is not None
        line = (await asyncio.wait_for(self.proc.stdout.readline(), 30)).decode().split()
        if line[:1] != ["ready"]:
            raise RuntimeError(f"the stand-in model did not start: {line}")
        self.base_url = line[1]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.proc is None:
            return
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    def _url(self, path: str) -> str:
        return self.base_url.removesuffix("/v1") + path

    async def expect(self, expected: int, pid: int | None) -> None:
        async with aiohttp.ClientSession(headers=_AUTH) as s:
            async with s.post(self._url("/_bench/expect"), json={"expected": expected, "pid": pid}) as r:
                r.raise_for_status()

    async def hold_gc(self, more: int) -> None:
        async with aiohttp.ClientSession(headers=_AUTH) as s:
            async with s.post(self._url("/_bench/hold_gc"), json={"more": more}) as r:
                r.raise_for_status()

    async def read_into(self, ledger: Ledger) -> None:
        """Copy the model's times into the parent's records (answers it never saw keep None)."""
        async with aiohttp.ClientSession(headers=_AUTH) as s:
            async with s.get(self._url("/_bench/times")) as r:
                r.raise_for_status()
                data = json.loads(await r.text())
        for tag, (model_request, first_delta, last_delta) in data["times"].items():
            a = ledger.by_tag.get(tag)
            if a is not None:
                a.model_request, a.first_delta, a.last_delta = model_request, first_delta, last_delta
        ledger.cpu_at_last_request = data["cpu_at_last_request"]
        self.gc = data["gc"]


def main() -> None:
    chars, delta, interval, first_delay = sys.argv[1:5]
    shape = AnswerShape(chars=int(chars), delta_chars=int(delta), interval=float(interval),
                        first_delay=float(first_delay))
    asyncio.run(_serve(shape))


if __name__ == "__main__":
    main()
