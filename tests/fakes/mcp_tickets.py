"""A real MCP server (the `mcp` SDK's MCPServer, formerly FastMCP): a small ticket system for the tests.

Run as a script it serves stdio (`python tests/fakes/mcp_tickets.py`), as teambridge starts a `command:`
server; `serve_http()` serves the same tools over streamable HTTP on an ephemeral 127.0.0.1 port, in the
test's own event loop, and records what reached it (tool calls, request headers).

stdio side effects go to the file named by $TICKETS_LOG (one JSON line per call), so a test can see what
the server did after teambridge stopped it.
"""
from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from mcp.server.mcpserver import Context, MCPServer


@dataclass
class Seen:
    """What reached an in-process server."""
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)


def build_server(seen: Seen | None = None, *, name: str = "tickets") -> MCPServer:
    seen = seen if seen is not None else Seen()
    server = MCPServer(name)
    created: list[str] = []

    def note(tool: str, arguments: dict[str, Any], ctx: Context | None = None) -> None:
        seen.calls.append((tool, arguments))
        if ctx is not None and ctx.headers is not None:
            seen.headers.append({k.lower(): v for k, v in ctx.headers.items()})
        path = os.environ.get("TICKETS_LOG")
        if path:
            with open(path, "a", encoding="utf-8") as log:
                log.write(json.dumps({"tool": tool, "arguments": arguments, "pid": os.getpid()}) + "\n")

    @server.tool()
    async def search_tickets(query: str, ctx: Context) -> str:
        """Search the ticket system for tickets matching a query."""
        note("search_tickets", {"query": query}, ctx)
        return f"2 tickets match {query!r}: #101 VPN drops every hour (open), #102 VPN client will not install (closed)"

    @server.tool()
    async def create_ticket(title: str, ctx: Context, body: str = "") -> str:
        """Create a new ticket."""
        note("create_ticket", {"title": title, "body": body}, ctx)
        created.append(title)
        return f"Created ticket #{200 + len(created)}: {title}"

    @server.tool()
    async def delete_ticket(number: int, ctx: Context) -> str:
        """Delete a ticket for good."""
        note("delete_ticket", {"number": number}, ctx)
        return f"Deleted ticket #{number}"

    @server.tool()
    async def slow_report(ctx: Context, seconds: float = 3600) -> str:
        """Build a report (takes long)."""
        note("slow_report", {"seconds": seconds}, ctx)
        await asyncio.sleep(seconds)
        return "report ready"

    @server.tool()
    async def crash(ctx: Context) -> str:
        """Make the server exit mid-call (stdio)."""
        note("crash", {}, ctx)
        os._exit(3)

    @server.tool()
    async def environment(ctx: Context) -> str:
        """Which TICKETS_* variables the server received (names only)."""
        note("environment", {}, ctx)
        return ", ".join(sorted(k for k in os.environ if k.startswith("TICKETS_"))) or "none"

    return server


class HttpServer:
    """One MCP server on streamable HTTP at `url`; `stop()` and `start()` take it down and bring it back on the
    same port (the port stays reserved in between: connections are refused, nobody else can take it)."""

    def __init__(self, server: MCPServer) -> None:
        self._server = server
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self._uvicorn: Any = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        import uvicorn

        if self._sock.fileno() == -1:  # closed by a previous stop(): bind the same port again
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind(("127.0.0.1", self.port))
        self._sock.listen(64)
        config = uvicorn.Config(self._server.streamable_http_app(), log_level="warning", lifespan="on")
        self._uvicorn = uvicorn.Server(config)
        self._task = asyncio.create_task(self._uvicorn.serve(sockets=[self._sock]))
        while not self._uvicorn.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
            await self._task
            self._uvicorn = None
        # uvicorn closed the listening socket: take the port back at once, not listening (connections refused)
        if self._sock.fileno() == -1:
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind(("127.0.0.1", self.port))

    def close(self) -> None:
        self._sock.close()


@asynccontextmanager
async def serve_http(server: MCPServer, *, started: bool = True) -> AsyncIterator[HttpServer]:
    http = HttpServer(server)
    try:
        if started:
            await http.start()
        yield http
    finally:
        await http.stop()
        http.close()


if __name__ == "__main__":
    build_server(name=sys.argv[1] if len(sys.argv) > 1 else "tickets").run()
