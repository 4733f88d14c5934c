"""A foreign host for trust tests: any request it gets is recorded (path and Authorization header) and answered
with bytes a careless bot would happily pass on. A test asserts it was never contacted."""
from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True, slots=True)
class Visit:
    method: str
    path: str
    authorization: str | None


class TrapServer:
    def __init__(self) -> None:
        self.visits: list[Visit] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base(self) -> str:
        # "localhost", not 127.0.0.1: another name as well as another port than the stand-ins
        return f"http://localhost:{self.port}"

    def url(self, path: str = "secret.txt") -> str:
        return f"{self.base}/{path}"

    async def start(self) -> "TrapServer":
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._any)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> "TrapServer":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def _any(self, request: web.Request) -> web.Response:
        self.visits.append(Visit(request.method, request.path, request.headers.get("Authorization")))
        return web.Response(body=b"city,temp\nLeaked,99\n", content_type="text/csv")
