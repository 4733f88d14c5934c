"""Cross-checks of a config beyond its schema: names that must refer to something, function tools that must
import (through the tool registry, exactly as it will load them), knowledge files that must exist. And the
one-line-per-assistant summary `teambridge check` prints."""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from core.backends.capabilities import BY_TYPE
from core.config.files import matching_files
from core.config.messages import Loc
from core.config.schema import FUNCTION_REF, TOOL_NAME, Config, FileSearchTool, FunctionTool, McpTool
from core.config.yamldoc import Doc
from core.errors import ConfigError
from core.model import HOSTED_TOOLS
from core.tools.registry import ToolRegistry, import_function


def check_summary(config: Config) -> list[str]:
    """One line per assistant for `teambridge check`, e.g. `math: gpt-4.1-mini, tools: code_interpreter, scope thread`."""
    lines = []
    for name, a in config.assistants.items():
        tools = ", ".join(_tool_label(t) for t in a.tools) or "none"
        lines.append(f"{name}: {a.model}, tools: {tools}, scope {a.scope}")
    for name, server in config.mcp_servers.items():
        where = server.url if server.url else "stdio: " + " ".join(server.command or ())
        lines.append(f"mcp server {name}: {where}")
    return lines


def _tool_label(tool: Any) -> str:
    if isinstance(tool, FunctionTool):
        return f"function {tool.name or tool.function.rsplit(':', 1)[1].rsplit('.', 1)[-1]}"
    if isinstance(tool, FileSearchTool):
        return f"file_search ({len(tool.files)} file pattern{'s' if len(tool.files) != 1 else ''})"
    if isinstance(tool, McpTool):
        return f"mcp {tool.server}"
    return tool.type


def cross_check(data: dict[str, Any], base_dir: Path, doc: Doc) -> list[str]:
    """Names that must refer to something, tools that must import, files that must exist.

    Works on the raw YAML data, defensively, so these problems are reported together with schema errors
    instead of one round of fixes later.
    """
    errors: list[str] = []
    assistants = data.get("assistants")
    assistants = assistants if isinstance(assistants, dict) else {}
    names = sorted(str(k) for k in assistants)
    backends = data.get("backends", {"openai": {}})
    backend_names = sorted(str(k) for k in backends) if isinstance(backends, dict) else []
    mcp_servers = data.get("mcp_servers")
    mcp_names = sorted(str(k) for k in mcp_servers) if isinstance(mcp_servers, dict) else []

    def assistant_ref(loc: Loc, value: Any) -> None:
        if isinstance(value, (str, int)) and str(value) not in names:
            close = difflib.get_close_matches(str(value), names, n=1, cutoff=0.75)
            hint = f"did you mean {close[0]!r}? " if close else ""
            errors.append(doc.error(loc, f"unknown assistant {str(value)!r}; {hint}assistants: "
                                         f"{', '.join(names) or 'none'}"))

    if isinstance(data.get("assistants"), dict) and not assistants:
        errors.append(doc.error(("assistants",), "define at least one assistant"))
    if assistants:
        assistant_ref(("default_assistant",), data.get("default_assistant"))
        for section in ("slack", "discord"):
            platform = data.get(section)
            if not isinstance(platform, dict):
                continue
            assistant_ref((section, "default_assistant"), platform.get("default_assistant"))
            assistant_ref((section, "dm_assistant"), platform.get("dm_assistant"))
            channels = platform.get("channels")
            for channel, route in (channels.items() if isinstance(channels, dict) else ()):
                if isinstance(route, dict):
                    assistant_ref((section, "channels", channel, "assistant"), route.get("assistant"))
        console = data.get("console")
        if isinstance(console, dict):
            assistant_ref(("console", "assistant"), console.get("assistant"))

    for name, assistant in assistants.items():
        if not isinstance(assistant, dict):
            continue
        base = ("assistants", name)
        backend = assistant.get("backend", "openai")
        if isinstance(backend, str) and isinstance(backends, dict) and backend not in backend_names:
            errors.append(doc.error(base + ("backend",) if "backend" in assistant else base,
                                    f"unknown backend {backend!r}; backends: {', '.join(backend_names) or 'none'}"))
        tools = assistant.get("tools")
        hosted = _hosted_tools(backends, backend)
        seen: dict[str, int] = {}
        for i, tool in enumerate(tools if isinstance(tools, list) else ()):
            if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
                continue
            loc = base + ("tools", i)
            tool_name = tool["type"]
            if hosted is not None and tool_name in HOSTED_TOOLS and tool_name not in hosted[1]:
                errors.append(doc.error(loc, f"{tool_name} is a hosted tool, and backend “{backend}” "
                                             f"(type {hosted[0]}) does not offer it; only function tools work there "
                                             f"(hosted tools need a backend of type openai)"))
            ref = tool.get("function")
            if tool_name == "function" and isinstance(ref, str) and FUNCTION_REF.fullmatch(ref):
                tool_name = str(tool.get("name") or ref.rsplit(":", 1)[1].rsplit(".", 1)[-1])
                problem = _function_problem(ref, base_dir, tool)
                if problem:
                    # Located like pydantic's locs, which carry the union tag: tools.0.function.function.
                    errors.append(doc.error(loc + ("function", "function"), problem))
            elif tool_name == "mcp":
                server = tool.get("server")
                tool_name = f"mcp {server}"
                if isinstance(server, (str, int)) and str(server) not in mcp_names:
                    close = difflib.get_close_matches(str(server), mcp_names, n=1, cutoff=0.75)
                    hint = f"did you mean {close[0]!r}? " if close else ""
                    errors.append(doc.error(loc + ("mcp", "server"),
                                            f"unknown MCP server {str(server)!r}; {hint}mcp_servers: "
                                            f"{', '.join(mcp_names) or 'none'}"))
            elif tool_name == "file_search" and isinstance(tool.get("files"), list):
                for j, pattern in enumerate(tool["files"]):
                    if isinstance(pattern, str) and not matching_files(pattern, base_dir):
                        errors.append(doc.error(loc + ("file_search", "files", j),
                                                f"no file matches {pattern!r} (relative to {base_dir})"))
            if tool_name in seen:
                errors.append(doc.error(loc, f"duplicate tool name {tool_name!r} (also tools.{seen[tool_name]}); "
                                             "give one of them another name"))
            else:
                seen[tool_name] = i
    return errors


def _hosted_tools(backends: Any, name: Any) -> tuple[str, frozenset[str]] | None:
    """(type, hosted tools) of the backend called `name`, from the raw YAML; None when it is not known."""
    if not isinstance(backends, dict) or not isinstance(name, str) or not isinstance(backends.get(name), dict):
        return None
    kind = backends[name].get("type", "openai")
    caps = BY_TYPE.get(kind) if isinstance(kind, str) else None
    return None if caps is None else (kind, caps.hosted_tools)


def _function_problem(ref: str, base_dir: Path, tool: dict[str, Any]) -> str | None:
    """Import the function and build its declaration as the registry will: any failure, as one message."""
    try:
        function = import_function(ref, base_dir)
        name = tool.get("name") if isinstance(tool.get("name"), str) and TOOL_NAME.fullmatch(tool["name"]) else None
        parameters = tool.get("parameters")
        ToolRegistry().register(function, name=name, ref=ref,
                                parameters=parameters if isinstance(parameters, dict) and parameters.get("type") == "object"
                                else None)
    except ConfigError as exc:
        return "; ".join(exc.errors)
    return None
