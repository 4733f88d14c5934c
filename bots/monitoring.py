"""`monitoring: {port, host}`: /healthz, /readyz and /metrics for `teambridge run`, on a small aiohttp server.

- /healthz: 200 while the process and its database work (a load balancer's liveness probe).
- /readyz: 200 once every enabled platform is connected and the database answers; else 503 — a dead Discord
  gateway or a dropped Slack socket shows here. The body names each part's state.
- /metrics: Prometheus text format (core.admin.metrics), names prefixed `teambridge_`.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Awaitable, Callable

from aiohttp import web

from core.admin.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger("teambridge")

DATABASE_TIMEOUT = 3.0  # seconds a health probe waits for the database


@dataclass(frozen=True, slots=True)
class PartState:
    name: str
    ok: bool
    detail: str


class Readiness:
    """What /readyz and /healthz look at. The runner fills in the platforms as it starts them."""

    def __init__(self, database: Callable[[], Awaitable[object]]) -> None:
        self._database = database
        self._platforms: dict[str, Callable[[], bool] | str] = {}  # name -> is-connected probe, or why not started

    def expect(self, name: str, reason: str = "starting") -> None:
        """An enabled platform not (yet) running: /readyz says 503 with this reason until `running`."""
        self._platforms[name] = reason

    def running(self, name: str, connected: Callable[[], bool]) -> None:
        self._platforms[name] = connected

    async def database(self) -> PartState:
        try:
            await asyncio.wait_for(self._database(), DATABASE_TIMEOUT)
        except Exception as exc:  # any failure of the probe is the answer, not an error of ours
            return PartState("database", False, f"unreachable: {type(exc).__name__}: {exc}")
        return PartState("database", True, "ok")

    def platforms(self) -> list[PartState]:
        out = []
        for name, probe in self._platforms.items():
            if isinstance(probe, str):
                out.append(PartState(name, False, probe))
                continue
            try:
                ok = bool(probe())
            except Exception as exc:
                ok = False
                log.debug("readiness probe of %s failed: %r", name, exc)
            out.append(PartState(name, ok, "connected" if ok else "disconnected"))
        return out


class MonitoringServer:
    def __init__(self, readiness: Readiness, metrics: Metrics, *, host: str, port: int) -> None:
        self._readiness = readiness
        self._metrics = metrics
        self._host, self._port = host, port
        self._runner: web.AppRunner | None = None
        self.url: str | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics_page)
        self._runner = web.AppRunner(app, access_log=None)  # a scrape every 15 s is not worth a log line
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  (port 0: the one we got)
        self.url = f"http://{self._host}:{port}"
        log.info("monitoring on %s (/healthz, /readyz, /metrics)", self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        db = await self._readiness.database()
        return web.Response(status=200 if db.ok else 503, text=f"database: {db.detail}\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        parts = [*self._readiness.platforms(), await self._readiness.database()]
        ready = all(p.ok for p in parts)
        return web.Response(status=200 if ready else 503, text="".join(f"{p.name}: {p.detail}\n" for p in parts))

    async def _metrics_page(self, request: web.Request) -> web.Response:
        for part in self._readiness.platforms():
            self._metrics.connected.labels(part.name).set(1 if part.ok else 0)
        return web.Response(body=self._metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})
