"""Function tools: Python functions named in config.yaml and the tools of MCP servers, offered to the model
and called on its behalf.

The schema the model sees comes from the function's type hints and docstring (or from an explicit
`parameters` in YAML), or — for MCP tools — from the server's tool list; to a backend both look the same
(`FunctionToolSpec`). The arguments the model sends are validated against the function's signature
before the call (an MCP server validates its own). `ToolRegistry.call` never raises: whatever goes wrong
becomes an error text for the model, which can then correct itself or tell the user.

With the turn passed to `call`, a tool under `require_approval` runs only after the turn's Approver said yes,
and every call is written to the audit trail.

This module is the catalogue and the dispatch (function or MCP tool, approval, audit); how a Python function
becomes a tool and is called is core/tools/functions.py, the schemas core/tools/schema.py.
"""
from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
import time
import typing
from dataclasses import dataclass
from typing import Any, Callable

from core.config.schema import ApprovalsConfig, AssistantConfig, Config, FunctionTool, McpTool
from core.errors import ConfigError
from core.tools.approval import (APPROVED, UNAVAILABLE, ApprovalRequest, Decision, decision_text,
                                 readable_arguments)
from core.tools.audit import ToolAudit, ToolCallRecord, digest
from core.tools.functions import FunctionEntry, call_function, failure, import_function, is_async
from core.tools.schema import (FunctionToolSpec, arguments_model, check_explicit_schema, clean_schema, mcp_schema,
                               parse_docstring)

if typing.TYPE_CHECKING:  # pragma: no cover
    from core.ports import Turn
    from core.tools.mcp import McpServers

log = logging.getLogger("teambridge.tools")


@dataclass(frozen=True, slots=True)
class _McpRoute:
    server: str
    tool: str                       # the server's name for it
    spec: FunctionToolSpec          # as offered to the model (name made safe and unique)
    needs_approval: bool


class ToolRegistry:
    """Function and MCP tools by name, with one async `call` for the backend's function-call loop."""

    def __init__(self, *, mcp: "McpServers | None" = None, audit: ToolAudit | None = None,
                 approvals: ApprovalsConfig | None = None, clock: Callable[[], float] | None = None) -> None:
        self._tools: dict[str, FunctionEntry] = {}
        self._by_assistant: dict[str, list[FunctionToolSpec]] = {}
        self._mcp = mcp
        self._audit = audit
        self._approvals = approvals or ApprovalsConfig()
        self._mcp_timeouts: dict[str, float] = {}
        self._assistants: dict[str, AssistantConfig] = {}
        self._clock = clock or time.time

    @classmethod
    def from_config(cls, config: Config, *, mcp: "McpServers | None" = None,
                    audit: ToolAudit | None = None) -> ToolRegistry:
        """Import every assistant's function tools. Raises ConfigError naming the tools that cannot be used.

        `mcp`: the connected MCP servers (their tools join each assistant's specs while connected);
        `audit`: where every call is recorded."""
        registry = cls(mcp=mcp, audit=audit, approvals=config.approvals)
        registry._mcp_timeouts = {name: server.timeout for name, server in config.mcp_servers.items()}
        registry._assistants = dict(config.assistants)
        errors: list[str] = []
        for name, assistant in config.assistants.items():
            specs: list[FunctionToolSpec] = []
            for tool in assistant.tools:
                if not isinstance(tool, FunctionTool):
                    continue
                try:
                    function = import_function(tool.function, config.base_dir)
                    specs.append(registry.register(function, name=tool.name, description=tool.description,
                                                   parameters=tool.parameters, timeout=tool.timeout,
                                                   ref=tool.function))
                except ConfigError as exc:
                    errors.extend(f"assistants.{name}: {e}" for e in exc.errors)
            registry._by_assistant[name] = specs
        if errors:
            raise ConfigError(errors)
        return registry

    def register(self, function: Callable[..., Any], *, name: str | None = None, description: str | None = None,
                 parameters: dict[str, Any] | None = None, timeout: float = 30.0,
                 ref: str | None = None) -> FunctionToolSpec:
        """Add one function. Registering the same function under the same name again is a no-op."""
        ref = ref or f"{getattr(function, '__module__', '?')}:{getattr(function, '__qualname__', function)}"
        if not callable(function):
            raise ConfigError([f"{ref!r} is not callable"])
        spec_name = name or getattr(function, "__name__", "")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", spec_name):
            raise ConfigError([f"{ref!r}: tool name {spec_name!r} must be 1-64 letters, digits, '_' or '-'"])
        doc = parse_docstring(inspect.getdoc(function) or "")
        arguments, positional = arguments_model(function, spec_name, doc.params, ref)
        if parameters is not None:
            check_explicit_schema(parameters, arguments, ref)
        schema = parameters if parameters is not None else clean_schema(arguments.model_json_schema())
        spec = FunctionToolSpec(name=spec_name, description=description if description is not None else doc.summary,
                                parameters=schema, timeout=float(timeout))
        entry = FunctionEntry(spec=spec, function=function, arguments=arguments, positional=positional,
                       is_async=is_async(function), ref=ref)
        old = self._tools.get(spec_name)
        if old is not None:
            if old.function is not function:
                raise ConfigError([f"tool name {spec_name!r} is used for two functions ({old.ref} and {ref}); "
                                   "give one of them another name"])
            if old.spec.timeout != spec.timeout:
                raise ConfigError([f"tool {spec_name!r} is declared with two timeouts ({old.spec.timeout:g}s and "
                                   f"{spec.timeout:g}s); use one"])
            return spec  # each assistant keeps its own description/schema in specs_for
        self._tools[spec_name] = entry
        return spec

    def specs_for(self, assistant: AssistantConfig) -> list[FunctionToolSpec]:
        """The function tools of one assistant, in config order, then the tools of its connected MCP servers
        (hosted tools are the backend's business)."""
        try:
            functions = list(self._by_assistant[assistant.name])
        except KeyError:
            raise KeyError(f"assistant {assistant.name!r} was not in the config this tool registry was built "
                           "from") from None
        return functions + [route.spec for route in self._mcp_routes(assistant).values()]

    async def unavailable(self, assistant: AssistantConfig) -> list[tuple[str, str]]:
        """(server, why) for each of the assistant's MCP servers that is not connected right now.

        Right after start a server still connecting is waited for (at most its connect_timeout), so the first
        question does not go out without the tools."""
        servers = [t.server for t in assistant.tools if isinstance(t, McpTool)]
        if not servers:
            return []
        if self._mcp is not None:
            await self._mcp.first_attempts(servers)
        out = []
        for tool in assistant.tools:
            if isinstance(tool, McpTool):
                why = self._mcp.problem(tool.server) if self._mcp is not None else "MCP is not set up"
                if why is not None:
                    out.append((tool.server, why))
        return out

    def _mcp_routes(self, assistant: AssistantConfig) -> dict[str, _McpRoute]:
        """Offered name -> server tool, for the assistant's MCP servers that are connected."""
        routes: dict[str, _McpRoute] = {}
        if self._mcp is None:
            return routes
        taken = {spec.name for spec in self._by_assistant.get(assistant.name, ())}
        for tool in assistant.tools:
            if not isinstance(tool, McpTool):
                continue
            listed = self._mcp.tools(tool.server)
            if not listed:
                continue
            allowed = set(tool.allowed_tools) if tool.allowed_tools is not None else None
            for info in listed:
                if allowed is not None and info.name not in allowed:
                    continue
                name = _offered_name(info.name, tool.server, taken)
                taken.add(name)
                spec = FunctionToolSpec(name=name, description=info.description,
                                        parameters=mcp_schema(info.input_schema),
                                        timeout=self._mcp_timeouts.get(tool.server, 30.0))
                routes[name] = _McpRoute(server=tool.server, tool=info.name, spec=spec,
                                         needs_approval=tool.needs_approval(info.name))
        return routes

    def names(self) -> list[str]:
        return sorted(self._tools)

    async def call(self, name: str, arguments: str, *, turn: "Turn | None" = None) -> str:
        """Run tool `name` with the model's JSON `arguments`. Returns the result text, or {"error": ...} text.

        `turn`: the turn the call belongs to — which assistant's MCP tools `name` may be, who can approve it
        (turn.approver), and who the audit record names. Without it a tool that needs approval is not run."""
        assistant = turn.assistant if turn is not None else None
        if assistant is not None and assistant.name in self._assistants:
            assistant = self._assistants[assistant.name]
        route = self._mcp_routes(assistant).get(name) if assistant is not None else None
        if route is None and name not in self._tools and assistant is not None:
            # the server went away since the tools were offered: say so rather than "unknown tool"
            for tool in assistant.tools:
                if isinstance(tool, McpTool) and self._mcp is not None \
                        and self._mcp.problem(tool.server) is not None:
                    why = self._mcp.problem(tool.server)
                    text = failure(name, f"tool {name} is not available right now: the tool server "
                                          f"{tool.server} is unavailable ({why})")
                    await self._record(turn, name, tool.server, arguments, "not_needed", Decision(False, ""),
                                       "not_run", 0.0)
                    return text
        if route is not None:
            return await self._call_mcp(route, arguments, turn)
        started = self._clock()
        result, ok = await self._call_function(name, arguments)
        outcome = "ok" if ok else "error"
        await self._record(turn, name, "", arguments, "not_needed", Decision(True, ""), outcome,
                           self._clock() - started)
        return result

    async def _call_mcp(self, route: _McpRoute, arguments: str, turn: "Turn | None") -> str:
        from core.tools.mcp import McpUnavailable

        name = route.spec.name
        try:
            raw = json.loads(arguments) if arguments and arguments.strip() else {}
        except json.JSONDecodeError as exc:
            return failure(name, f"arguments for tool {name} are not valid JSON: {exc.msg} at position {exc.pos}")
        if not isinstance(raw, dict):
            return failure(name, f"arguments for tool {name} must be a JSON object, not {type(raw).__name__}")
        approval = "not_needed"
        decision = Decision(True, "")
        if route.needs_approval:
            decision = await self._approve(route, raw, turn)
            approval = decision.outcome
            if not decision.approved:
                log.info("tool %s/%s not run: %s", route.server, route.tool, decision.outcome)
                await self._record(turn, route.tool, route.server, arguments, approval, decision, "not_run", 0.0)
                return decision_text(name, decision)
        started = self._clock()
        try:
            result = await self._mcp.call(route.server, route.tool, raw, timeout=route.spec.timeout)
        except McpUnavailable as exc:
            await self._record(turn, route.tool, route.server, arguments, approval, decision, "not_run", 0.0)
            return failure(name, f"tool {name} was not run: {exc}")
        duration = self._clock() - started
        await self._record(turn, route.tool, route.server, arguments, approval, decision,
                           "error" if result.is_error else "ok", duration)
        if result.is_error:
            return failure(name, result.text)
        return result.text

    async def _approve(self, route: _McpRoute, arguments: dict[str, Any], turn: "Turn | None") -> Decision:
        approver = turn.approver if turn is not None else None
        if approver is None:
            return Decision(False, UNAVAILABLE)
        request = ApprovalRequest(tool=route.tool, server=route.server, arguments=readable_arguments(arguments),
                                  asker_id=turn.user_id, asker_name=turn.metadata.get("user_name", ""),
                                  timeout=self._approvals.timeout_seconds)
        try:
            # the platform's own wait is bounded by request.timeout; this one is a backstop
            async with asyncio.timeout(request.timeout + 30):
                return await approver.decide(request)
        except TimeoutError:
            return Decision(False, "timeout")
        except Exception:
            log.exception("asking for approval of %s/%s failed", route.server, route.tool)
            return Decision(False, UNAVAILABLE)

    async def _record(self, turn: "Turn | None", tool: str, server: str, arguments: str, approval: str,
                      decision: Decision, outcome: str, duration: float) -> None:
        if self._audit is None:
            return
        meta = turn.metadata if turn is not None else {}
        record = ToolCallRecord(
            at=self._clock(), conversation=turn.conversation_id if turn is not None else "",
            platform=meta.get("platform", ""), channel=meta.get("channel", ""),
            user=turn.user_id if turn is not None else "",
            assistant=turn.assistant.name if turn is not None else "", tool=tool, server=server,
            arguments_sha256=digest(arguments), approval=approval,
            approved_by=decision.by if approval != "not_needed" else "",
            outcome=outcome, duration_ms=int(round(max(0.0, duration) * 1000)))
        try:
            await self._audit.record_tool_call(record)
        except Exception:
            log.exception("could not write the audit record of a %s call", tool)

    async def _call_function(self, name: str, arguments: str) -> tuple[str, bool]:
        """The result text, and whether the function ran and returned a value."""
        entry = self._tools.get(name)
        if entry is None:
            known = ", ".join(self.names()) or "none"
            return failure(name, f"unknown tool {name!r}; available tools: {known}"), False
        return await call_function(entry, name, arguments)


def _offered_name(tool: str, server: str, taken: set[str]) -> str:
    """A name the Responses API accepts (1-64 of [A-Za-z0-9_-]), unique among the assistant's tools."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", tool)[:64] or "tool"
    if safe not in taken:
        return safe
    prefixed = re.sub(r"[^A-Za-z0-9_-]", "_", f"{server}_{tool}")[:64]
    n = 2
    candidate = prefixed
    while candidate in taken:
        candidate = f"{prefixed[:60]}_{n}"
        n += 1
    return candidate
