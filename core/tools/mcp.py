"""MCP servers from config.yaml: connected, supervised and called through the official `mcp` SDK.

One supervisor task per server owns its `mcp.Client` (the SDK's transports live in anyio task groups, so the
task that enters a client must be the one that leaves it). The supervisor connects, lists the tools, then
checks the connection every `health_interval` seconds by listing them again (which also picks up a changed
tool list); when the connection is lost — a stdio server that exits, an HTTP server that stops answering, a
call that finds the connection closed — it reconnects with exponential backoff. A server that is down does
not stop anything else: its tools are simply not offered, and a call to one says the server is unavailable.

Secrets: header values and stdio environment values are read from the environment variables the config
names, handed to the SDK, and never logged or put in an error text.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from core.config.schema import McpServerConfig

log = logging.getLogger("teambridge.mcp")

_BACKOFF_START = 0.5
_BACKOFF_MAX = 60.0


@dataclass(frozen=True, slots=True)
class McpToolInfo:
    """One tool as the server lists it."""
    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True, slots=True)
class McpResult:
    text: str          # what the model reads
    is_error: bool


class McpUnavailable(Exception):
    """The server is not connected (down, restarting, or never reached): the message says why, without secrets."""


class _Server:
    """The live state of one server, written only by its supervisor (and by calls noticing a lost connection)."""

    def __init__(self, name: str, config: McpServerConfig) -> None:
        self.name = name
        self.config = config
        self.client: Any = None                  # mcp.Client while connected
        self.tools: tuple[McpToolInfo, ...] | None = None
        self.problem: str | None = "not connected yet"
        self.connected = asyncio.Event()
        self.tried = asyncio.Event()             # set after the first attempt, success or not
        self.lost = asyncio.Event()              # a call found the connection closed: reconnect now
        self.task: asyncio.Task | None = None


class McpServers:
    """Every configured MCP server, kept connected."""

    def __init__(self, servers: Mapping[str, McpServerConfig], env: Mapping[str, str], *,
                 base_dir: str | Path = ".", health_interval: float = 15.0,
                 backoff: tuple[float, float] = (_BACKOFF_START, _BACKOFF_MAX)) -> None:
        self._env = dict(env)
        self._base_dir = Path(base_dir)
        self._health_interval = health_interval
        self._backoff = backoff
        self._servers: dict[str, _Server] = {name: _Server(name, cfg) for name, cfg in servers.items()}
        self._started = False

    # ---- lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._started = True
        if self._servers:
            _load_sdk()
        for server in self._servers.values():
            self._spawn(server)

    def _spawn(self, server: _Server) -> None:
        server.task = asyncio.create_task(self._supervise(server), name=f"mcp:{server.name}")

    async def wait_ready(self, timeout: float) -> None:
        """Wait until every server was tried once (connected or failed), at most `timeout` seconds."""
        waits = [asyncio.ensure_future(s.tried.wait()) for s in self._servers.values()]
        if not waits:
            return
        done, pending = await asyncio.wait(waits, timeout=timeout)
        for w in pending:
            w.cancel()

    async def first_attempts(self, names: list[str]) -> None:
        """Wait until each of these servers was tried once since start (bounded by its connect_timeout)."""
        for name in names:
            server = self._servers.get(name)
            if server is None or server.tried.is_set() or server.task is None:
                continue
            try:
                await asyncio.wait_for(server.tried.wait(), timeout=server.config.connect_timeout + 1)
            except TimeoutError:
                pass

    async def update(self, servers: Mapping[str, McpServerConfig], env: Mapping[str, str] | None = None) -> None:
        """Hot reload: servers whose config changed are restarted, removed ones stopped, new ones started."""
        if env is not None:
            self._env = dict(env)
        for name in list(self._servers):
            old = self._servers[name]
            if servers.get(name) != old.config:
                await self._stop(old)
                del self._servers[name]
        for name, cfg in servers.items():
            if name not in self._servers:
                _load_sdk()
                server = _Server(name, cfg)
                self._servers[name] = server
                if self._started:
                    self._spawn(server)

    async def aclose(self) -> None:
        for server in list(self._servers.values()):
            await self._stop(server)
        self._started = False

    @staticmethod
    async def _stop(server: _Server) -> None:
        if server.task is not None:
            server.task.cancel()
            try:
                await server.task
            except BaseException:  # the supervisor's own end; a stdio child is stopped by the SDK on the way out
                pass
            server.task = None

    # ---- what the registry reads -------------------------------------------------------------------------

    def names(self) -> list[str]:
        return list(self._servers)

    def tools(self, name: str) -> tuple[McpToolInfo, ...] | None:
        """The server's tools, or None while it is not connected."""
        server = self._servers.get(name)
        return server.tools if server is not None and server.connected.is_set() else None

    def problem(self, name: str) -> str | None:
        """Why the server is unavailable (None when connected)."""
        server = self._servers.get(name)
        if server is None:
            return "not configured"
        return None if server.connected.is_set() else server.problem

    async def call(self, name: str, tool: str, arguments: dict[str, Any], *, timeout: float) -> McpResult:
        """Call one tool. Raises McpUnavailable when the server is not connected; a timeout or a lost connection
        comes back as an error result for the model."""
        from mcp.shared.exceptions import MCPError
        from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT

        server = self._servers.get(name)
        if server is None:
            raise McpUnavailable(f"the tool server {name!r} is not configured")
        if not server.connected.is_set() and not server.tried.is_set():
            # Starting up: give the first connection a moment rather than failing the first question.
            try:
                await asyncio.wait_for(server.connected.wait(), timeout=min(timeout, server.config.connect_timeout))
            except TimeoutError:
                pass
        client = server.client
        if client is None or not server.connected.is_set():
            raise McpUnavailable(f"the tool server {name!r} is unavailable ({server.problem or 'not connected'})")
        try:
            # the SDK's own read timeout answers first; this one is the backstop for a transport that hangs
            async with asyncio.timeout(timeout + 5) as deadline:
                result = await client.call_tool(tool, arguments, read_timeout_seconds=timeout)
        except TimeoutError:
            if deadline.expired():
                return McpResult(f"tool {tool} on {name} did not answer within {timeout:g}s", True)
            raise
        except MCPError as exc:
            if exc.code == REQUEST_TIMEOUT:
                return McpResult(f"tool {tool} on {name} did not answer within {timeout:g}s", True)
            if exc.code == CONNECTION_CLOSED:
                self._lose(server, "the connection closed during a call")
                return McpResult(f"the tool server {name} went away during the call to {tool} "
                                 "(it is being restarted); the tool may or may not have run", True)
            return McpResult(f"tool {tool} on {name} failed: {exc.message}", True)
        except Exception as exc:  # a transport error surfacing here: the connection is unusable
            self._lose(server, _reason(exc))
            return McpResult(f"the tool server {name} failed during the call to {tool}: {_reason(exc)}", True)
        return McpResult(_result_text(result), bool(result.is_error))

    def _lose(self, server: _Server, why: str) -> None:
        if server.connected.is_set():
            log.warning("MCP server %s: %s; reconnecting", server.name, why)
        server.connected.clear()
        server.problem = why
        server.lost.set()

    # ---- the supervisor ----------------------------------------------------------------------------------

    async def _supervise(self, server: _Server) -> None:
        delay = self._backoff[0]
        while True:
            started = time.monotonic()
            # Each connection lives in a task of its own: the SDK's anyio cancel scopes are entered and left in
            # that one task, and a connection that hangs is cancelled from outside, cleanly.
            session = asyncio.create_task(self._session(server), name=f"mcp:{server.name}:session")
            ready = asyncio.create_task(server.connected.wait())
            try:
                done, _ = await asyncio.wait({session, ready}, timeout=server.config.connect_timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    raise TimeoutError
                await session  # connected: runs until the connection is lost (raises), or fails to connect
            except asyncio.CancelledError:
                session.cancel()
                await asyncio.gather(session, return_exceptions=True)
                raise
            except BaseException as exc:  # ExceptionGroups from the SDK's task groups included
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise
                session.cancel()
                [ended] = await asyncio.gather(session, return_exceptions=True)
                why = _reason(exc)
                if isinstance(exc, TimeoutError) and server.client is None:
                    # the HTTP transport keeps a refused connection to itself until the attempt is cancelled
                    why = _reason(ended) if isinstance(ended, Exception) and not isinstance(ended, TimeoutError) \
                        else f"no answer within {server.config.connect_timeout:g}s"
                if server.connected.is_set() or server.problem != why:
                    log.warning("MCP server %s unavailable: %s", server.name, why)
                server.problem = why
            finally:
                ready.cancel()
                server.client = None
                server.connected.clear()
                server.tried.set()
            if time.monotonic() - started > 30:
                delay = self._backoff[0]  # it ran a good while: start the backoff over
            # a call noticing the loss does not shorten the wait: a crashing server must not be hammered
            await asyncio.sleep(delay)
            server.lost.clear()
            delay = min(self._backoff[1], delay * 2)

    async def _session(self, server: _Server) -> None:
        """Connect, list the tools, then check the connection every health_interval until it is lost."""
        from mcp import Client

        async with AsyncExitStack() as stack:
            transport = await self._transport(server, stack)
            # read_timeout_seconds bounds every request of this client (tools/list included)
            client = await stack.enter_async_context(Client(transport, read_timeout_seconds=server.config.timeout))
            server.tools = await _list_tools(client)
            server.client = client
            server.problem = None
            server.lost.clear()
            server.connected.set()
            server.tried.set()
            log.info("MCP server %s connected: %d tools", server.name, len(server.tools))
            while True:
                try:
                    await asyncio.wait_for(server.lost.wait(), timeout=self._health_interval)
                except TimeoutError:
                    pass
                if server.lost.is_set():
                    raise ConnectionError(server.problem or "connection lost")
                server.tools = await _list_tools(client)

    async def _transport(self, server: _Server, stack: AsyncExitStack) -> Any:
        cfg = server.config
        if cfg.url:
            from mcp.client.streamable_http import streamable_http_client
            from mcp.shared._httpx_utils import create_mcp_http_client

            headers = {header: self._secret(server.name, variable) for header, variable in cfg.headers.items()}
            http = create_mcp_http_client(headers=headers or None)
            await stack.enter_async_context(http)
            return streamable_http_client(cfg.url, http_client=http)
        from mcp import StdioServerParameters

        assert cfg.command
        env = {name: self._secret(server.name, variable) for name, variable in cfg.env.items()}
        cwd = Path(cfg.cwd) if cfg.cwd else self._base_dir
        if not cwd.is_absolute():
            cwd = self._base_dir / cwd
        return StdioServerParameters(command=cfg.command[0], args=list(cfg.command[1:]), env=env or None,
                                     cwd=str(cwd))

    def _secret(self, server: str, variable: str) -> str:
        value = self._env.get(variable)
        if not value:
            raise McpUnavailable(f"environment variable {variable} is not set")
        return value


def _load_sdk() -> None:
    """Import the SDK up front (about a second of CPU): not inside a connection attempt's connect_timeout, and
    not at all for a config without MCP servers."""
    import mcp  # noqa: F401
    import mcp.client.streamable_http  # noqa: F401


async def _list_tools(client: Any) -> tuple[McpToolInfo, ...]:
    tools: list[McpToolInfo] = []
    cursor: str | None = None
    for _ in range(100):  # a paginator that never ends must not hang us
        page = await client.list_tools(cursor=cursor, cache_mode="refresh")
        for tool in page.tools:
            tools.append(McpToolInfo(name=tool.name, description=tool.description or tool.title or "",
                                     input_schema=dict(tool.input_schema or {"type": "object", "properties": {}})))
        cursor = page.next_cursor
        if not cursor:
            break
    return tuple(tools)


def _result_text(result: Any) -> str:
    """A CallToolResult as text for the model: its text parts; structured content when there is no text."""
    parts: list[str] = []
    for block in result.content or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind == "resource":
            resource = block.resource
            parts.append(getattr(resource, "text", None) or f"[resource {getattr(resource, 'uri', '')}]")
        elif kind == "resource_link":
            parts.append(f"[{getattr(block, 'name', '') or 'link'}: {getattr(block, 'uri', '')}]")
        else:
            parts.append(f"[{kind or 'content'} omitted]")
    if not parts and result.structured_content is not None:
        return json.dumps(result.structured_content, ensure_ascii=False)
    return "\n".join(parts)


def _reason(exc: BaseException) -> str:
    """One readable line for an error, digging into ExceptionGroups for the first real cause."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, McpUnavailable):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, FileNotFoundError):
        return f"command not found: {exc.filename or exc}"
    message = str(exc) or type(exc).__name__
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in message:
        message = f"{message}: {cause}"
    return f"{type(exc).__name__}: {message}" if type(exc).__name__ not in message else message


def mcp_listing(config: Any, servers: McpServers) -> tuple[str, bool]:
    """`teambridge mcp list`: each server, its tools (name, description, which assistants offer it and whether
    a call needs approval) or why it is unreachable. Returns (text, every server reachable)."""
    from core.config.schema import McpTool

    lines: list[str] = []
    all_up = True
    for name, cfg in config.mcp_servers.items():
        where = cfg.url if cfg.url else "stdio: " + " ".join(cfg.command or ())
        uses = [(assistant, tool) for assistant, a in config.assistants.items() for tool in a.tools
                if isinstance(tool, McpTool) and tool.server == name]
        listed = servers.tools(name)
        if listed is None:
            all_up = False
            lines.append(f"{name} ({where}): unreachable — {servers.problem(name) or 'not connected'}")
            continue
        lines.append(f"{name} ({where}): {len(listed)} tool{'s' if len(listed) != 1 else ''}")
        for info in listed:
            offered = []
            for assistant, tool in uses:
                if tool.allowed_tools is not None and info.name not in tool.allowed_tools:
                    continue
                offered.append(f"{assistant}: {'approval needed' if tool.needs_approval(info.name) else 'no approval'}")
            description = " ".join(info.description.split())
            if len(description) > 100:
                description = description[:99] + "…"
            lines.append(f"  {info.name} — {description or '(no description)'}"
                         f"  [{'; '.join(offered) or 'not offered to any assistant'}]")
        if not uses:
            lines.append("  (no assistant uses this server)")
    return "\n".join(lines), all_up
