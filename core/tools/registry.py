"""Function tools: Python functions named in config.yaml and the tools of MCP servers, offered to the model
and called on its behalf.

The schema the model sees comes from the function's type hints and docstring (or from an explicit
`parameters` in YAML), or — for MCP tools — from the server's tool list; to a backend both look the same
(`FunctionToolSpec`). The arguments the model sends are validated against the function's signature
before the call (an MCP server validates its own). `ToolRegistry.call` never raises: whatever goes wrong
becomes an error text for the model, which can then correct itself or tell the user.

With the turn passed to `call`, a tool under `require_approval` runs only after the turn's Approver said yes,
and every call is written to the audit trail.
"""
from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import logging
import re
import sys
import time
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from core.config.schema import ApprovalsConfig, AssistantConfig, Config, FunctionTool, McpTool
from core.errors import ConfigError
from core.tools.approval import (APPROVED, UNAVAILABLE, ApprovalRequest, Decision, decision_text,
                                 readable_arguments)
from core.tools.audit import ToolAudit, ToolCallRecord, digest

if typing.TYPE_CHECKING:  # pragma: no cover
    from core.ports import Turn
    from core.tools.mcp import McpServers

log = logging.getLogger("teambridge.tools")


@dataclass(frozen=True, slots=True)
class FunctionToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]      # JSON schema of the arguments object
    timeout: float                  # seconds

    @property
    def strict(self) -> bool:
        """Whether OpenAI's strict mode accepts this schema (every property required, no extra keys)."""
        return _strict_ok(self.parameters)

    def to_openai(self) -> dict[str, Any]:
        """The Responses API function tool declaration."""
        return {"type": "function", "name": self.name, "description": self.description,
                "parameters": self.parameters, "strict": self.strict}


@dataclass(frozen=True, slots=True)
class _Entry:
    spec: FunctionToolSpec
    function: Callable[..., Any]
    arguments: type[BaseModel]      # validates the model's arguments against the signature
    positional: tuple[str, ...]     # positional-only parameters, passed by position
    is_async: bool
    ref: str                        # where it came from, for messages


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
        self._tools: dict[str, _Entry] = {}
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
        doc = _parse_docstring(inspect.getdoc(function) or "")
        arguments, positional = _arguments_model(function, spec_name, doc.params, ref)
        if parameters is not None:
            _check_explicit_schema(parameters, arguments, ref)
        schema = parameters if parameters is not None else _clean_schema(arguments.model_json_schema())
        spec = FunctionToolSpec(name=spec_name, description=description if description is not None else doc.summary,
                                parameters=schema, timeout=float(timeout))
        entry = _Entry(spec=spec, function=function, arguments=arguments, positional=positional,
                       is_async=_is_async(function), ref=ref)
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
                                        parameters=_mcp_schema(info.input_schema),
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
                    text = _failure(name, f"tool {name} is not available right now: the tool server "
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
            return _failure(name, f"arguments for tool {name} are not valid JSON: {exc.msg} at position {exc.pos}")
        if not isinstance(raw, dict):
            return _failure(name, f"arguments for tool {name} must be a JSON object, not {type(raw).__name__}")
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
            return _failure(name, f"tool {name} was not run: {exc}")
        duration = self._clock() - started
        await self._record(turn, route.tool, route.server, arguments, approval, decision,
                           "error" if result.is_error else "ok", duration)
        if result.is_error:
            return _failure(name, result.text)
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
            return _failure(name, f"unknown tool {name!r}; available tools: {known}"), False
        try:
            raw = json.loads(arguments) if arguments and arguments.strip() else {}
        except json.JSONDecodeError as exc:
            return _failure(name, f"arguments for tool {name} are not valid JSON: {exc.msg} at position {exc.pos}"), False
        if not isinstance(raw, dict):
            return _failure(name, f"arguments for tool {name} must be a JSON object, not {type(raw).__name__}"), False
        try:
            validated = entry.arguments.model_validate(raw)
        except ValidationError as exc:
            return _failure(name, f"invalid arguments for tool {name}: {_validation_text(exc)}"), False

        values = {field: getattr(validated, field) for field in type(validated).model_fields}
        args = [values.pop(p) for p in entry.positional]
        try:
            # asyncio.timeout rather than wait_for: its expired() tells our deadline apart from a TimeoutError
            # the tool raised itself (say, its own HTTP client timing out).
            async with asyncio.timeout(entry.spec.timeout) as deadline:
                if entry.is_async:
                    result = await entry.function(*args, **values)
                else:
                    # A thread cannot be killed: after a timeout a hung sync tool keeps its worker thread.
                    result = await asyncio.to_thread(entry.function, *args, **values)
                if inspect.isawaitable(result):  # a sync callable that returned a coroutine
                    result = await result
        except TimeoutError:
            if deadline.expired():
                return _failure(name, f"tool {name} timed out after {entry.spec.timeout:g}s"), False
            log.exception("tool %s raised", name)
            return _failure(name, f"tool {name} failed: TimeoutError", logged=True), False
        except Exception as exc:
            log.exception("tool %s raised", name)
            return _failure(name, f"tool {name} failed: {type(exc).__name__}: {exc}", logged=True), False

        if isinstance(result, str):
            return result, True
        try:
            return json.dumps(result, ensure_ascii=False, default=pydantic_core.to_jsonable_python), True
        except (TypeError, ValueError, pydantic_core.PydanticSerializationError) as exc:
            log.exception("tool %s returned a value that is not JSON", name)
            return _failure(name, f"tool {name} returned a {type(result).__name__} that cannot be turned into "
                                  f"JSON: {exc}", logged=True), False, False


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


def _mcp_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The server's input schema for the model: an object schema, without pydantic's generated titles."""
    cleaned = _clean_schema(schema) if isinstance(schema, dict) else {}
    if cleaned.get("type") != "object":
        cleaned = {"type": "object", "properties": {}, **{k: v for k, v in cleaned.items() if k != "type"}}
    cleaned.setdefault("properties", {})
    return cleaned


def _failure(name: str, message: str, *, logged: bool = False) -> str:
    if not logged:
        log.warning("tool %s: %s", name, message)
    return json.dumps({"error": message}, ensure_ascii=False)


def _validation_text(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(c) for c in err["loc"]) or "arguments"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unexpected argument"
        elif err["type"] == "missing":
            message = "missing required argument"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def _is_async(function: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(getattr(function, "__call__", None))


# ---- importing ------------------------------------------------------------------------------------


def import_function(ref: str, base_dir: str | Path | None = None) -> Callable[..., Any]:
    """Import `package.module:function` (attribute paths like `module:Class.method` work too).

    The config's directory and the working directory are searched first, so a tool module can live next
    to config.yaml. Raises ConfigError with a readable message.
    """
    module_name, sep, attr_path = ref.partition(":")
    if not sep or not module_name or not attr_path:
        raise ConfigError([f"{ref!r} must look like 'package.module:function'"])
    extra = [str(Path(p).resolve()) for p in (base_dir, Path.cwd()) if p is not None]
    added = [p for p in dict.fromkeys(extra) if p not in sys.path]
    sys.path[:0] = added
    try:
        importlib.invalidate_caches()
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise ConfigError([f"cannot import {ref!r}: no module named {exc.name!r} (searched the config's "
                               "directory, the working directory and installed packages)"]) from None
        raise ConfigError([f"cannot import {ref!r}: {type(exc).__name__}: {exc}"]) from None
    except Exception as exc:  # the module itself is broken: say so rather than crash the loader
        raise ConfigError([f"cannot import {ref!r}: {type(exc).__name__}: {exc}"]) from None
    finally:
        # Only for this import: the module stays in sys.modules, sys.path goes back to what it was.
        for p in added:
            try:
                sys.path.remove(p)
            except ValueError:
                pass
    target: Any = module
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigError([f"cannot import {ref!r}: module {module_name!r} has no attribute "
                               f"{attr_path!r}"]) from None
    if not callable(target):
        kind = type(target).__name__
        raise ConfigError([f"{ref!r} is {'an' if kind[:1] in 'aeiou' else 'a'} {kind}, not a function"])
    return target


# ---- schema from the signature --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Doc:
    summary: str
    params: dict[str, str]


_SECTION = re.compile(r"^(Args|Arguments|Parameters|Params|Returns?|Yields?|Raises|Examples?|Notes?|Attributes)"
                      r"\s*:?\s*$")


def _parse_docstring(doc: str) -> _Doc:
    """First paragraph + per-parameter text from a Google (`Args:`), Sphinx (`:param x:`) or NumPy section."""
    lines = doc.splitlines()
    summary: list[str] = []
    for line in lines:
        stripped = line.strip()
        if not stripped or _SECTION.match(stripped) or stripped.startswith(":"):
            break
        summary.append(stripped)
    params: dict[str, str] = {}

    # Sphinx: ":param name: text" or ":param type name: text", continued on indented lines.
    current: str | None = None
    for line in lines:
        m = re.match(r"^\s*:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$", line)
        if m:
            current = m.group(1)
            params[current] = m.group(2).strip()
        elif current and line.startswith((" ", "\t")) and line.strip() and not line.strip().startswith(":"):
            params[current] = f"{params[current]} {line.strip()}".strip()
        else:
            current = None

    # Google: "Args:" then "name (type): text" lines, deeper-indented continuation lines.
    # NumPy: "Parameters" / "----------" then "name : type" and indented text.
    i = 0
    while i < len(lines):
        header = lines[i].strip()
        numpy = header in ("Parameters", "Arguments") and i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}
        if header in ("Args:", "Arguments:", "Parameters:", "Params:") or numpy:
            base = len(lines[i]) - len(lines[i].lstrip())
            i += 2 if numpy else 1
            item_indent: int | None = None
            current = None
            while i < len(lines):
                line = lines[i]
                if not line.strip():
                    i += 1
                    continue
                indent = len(line) - len(line.lstrip())
                if numpy:
                    if i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}:
                        break  # the next NumPy section ("Returns" / "-------")
                elif indent <= base:
                    break
                if item_indent is None:
                    item_indent = indent
                if indent == item_indent:
                    if numpy:
                        m = re.match(r"^\s*(\*{0,2}\w+)\s*(?::.*)?$", line)
                        current = m.group(1).lstrip("*") if m else None
                        if current:
                            params.setdefault(current, "")
                    else:
                        m = re.match(r"^\s*(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$", line)
                        current = m.group(1).lstrip("*") if m else None
                        if current:
                            params[current] = m.group(2).strip()
                elif current:
                    params[current] = f"{params[current]} {line.strip()}".strip()
                i += 1
            continue
        i += 1
    return _Doc(summary=" ".join(summary), params={k: v for k, v in params.items() if v})


def _arguments_model(function: Callable[..., Any], name: str, descriptions: dict[str, str],
                     ref: str) -> tuple[type[BaseModel], tuple[str, ...]]:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError) as exc:
        raise ConfigError([f"{ref!r}: cannot read its signature: {exc}"]) from None
    try:
        hints = _type_hints(function)
    except Exception as exc:  # a hint naming something that does not exist
        raise ConfigError([f"{ref!r}: cannot resolve its type hints: {type(exc).__name__}: {exc}"]) from None
    fields: dict[str, Any] = {}
    positional: list[str] = []
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ConfigError([f"{ref!r}: *{param.name} / **{param.name} cannot be described to the model; "
                               "name every parameter"])
        if param.name.startswith("_"):
            raise ConfigError([f"{ref!r}: parameter {param.name!r} starts with '_', which a tool argument cannot"])
        annotation = hints.get(param.name, Any)
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (annotation, Field(default, description=descriptions.get(param.name)))
        if param.kind is param.POSITIONAL_ONLY:
            positional.append(param.name)
    try:
        model = create_model(f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
        model.model_json_schema()  # fail now, not at the first call, for hints pydantic cannot describe
    except Exception as exc:
        raise ConfigError([f"{ref!r}: cannot build an argument schema from its type hints: "
                           f"{type(exc).__name__}: {exc}"]) from None
    return model, tuple(positional)


def _check_explicit_schema(parameters: dict[str, Any], arguments: type[BaseModel], ref: str) -> None:
    # The model is told the YAML schema but its arguments are validated against the signature: when the
    # two disagree every call would fail, so say it at load time.
    taken = set(arguments.model_fields)
    needed = {n for n, f in arguments.model_fields.items() if f.is_required()}
    properties = parameters.get("properties") or {}
    problems = []
    unknown = sorted(set(properties) - taken)
    if unknown:
        problems.append(f"parameters names {', '.join(map(repr, unknown))}, which the function does not take")
    missing = sorted(needed - set(properties))
    if missing:
        problems.append(f"parameters leaves out {', '.join(map(repr, missing))}, which the function requires")
    if problems:
        raise ConfigError([f"{ref!r}: {'; '.join(problems)}"])


def _type_hints(function: Callable[..., Any]) -> dict[str, Any]:
    target = function if inspect.isfunction(function) or inspect.ismethod(function) else getattr(
        function, "__call__", function)
    return typing.get_type_hints(target, include_extras=True)


def _clean_schema(schema: Any, *, in_properties: bool = False) -> Any:
    """Drop pydantic's generated titles (noise for the model); keep property names called "title"."""
    if isinstance(schema, dict):
        out = {}
        for key, value in schema.items():
            if key == "title" and not in_properties and isinstance(value, str):
                continue
            out[key] = _clean_schema(value, in_properties=key in ("properties", "$defs"))
        return out
    if isinstance(schema, list):
        return [_clean_schema(v) for v in schema]
    return schema


def _strict_ok(schema: Any) -> bool:
    """OpenAI strict mode: every object lists all its properties as required and forbids extra keys."""
    if isinstance(schema, list):
        return all(_strict_ok(s) for s in schema)
    if not isinstance(schema, dict):
        return True
    if schema.get("type") == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is not False:
            return False
        if set(schema.get("required", [])) != set(properties):
            return False
        if not all(_strict_ok(v) for v in properties.values()):
            return False
    for key in ("items", "anyOf", "allOf", "oneOf", "prefixItems"):
        if key in schema and not _strict_ok(schema[key]):
            return False
    for key in ("$defs", "definitions"):
        if key in schema and not all(_strict_ok(v) for v in schema[key].values()):
            return False
    return True
