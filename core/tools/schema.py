"""JSON schemas for tools: built from a Python function's signature and docstring, or taken from an MCP
server's tool list, and OpenAI's strict-mode check of either.

`FunctionToolSpec` is what a backend offers the model, whatever the tool is behind it.
"""
from __future__ import annotations

import inspect
import re
import typing
from dataclasses import dataclass
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, create_model

from core.errors import ConfigError


@dataclass(frozen=True, slots=True)
class FunctionToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]      # JSON schema of the arguments object
    timeout: float                  # seconds

    @property
    def strict(self) -> bool:
        """Whether OpenAI's strict mode accepts this schema (every property required, no extra keys)."""
        return strict_ok(self.parameters)

    def to_openai(self) -> dict[str, Any]:
        """The Responses API function tool declaration."""
        return {"type": "function", "name": self.name, "description": self.description,
                "parameters": self.parameters, "strict": self.strict}


@dataclass(frozen=True, slots=True)
class Doc:
    summary: str
    params: dict[str, str]


_SECTION = re.compile(r"^(Args|Arguments|Parameters|Params|Returns?|Yields?|Raises|Examples?|Notes?|Attributes)"
                      r"\s*:?\s*$")


def parse_docstring(doc: str) -> Doc:
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
    return Doc(summary=" ".join(summary), params={k: v for k, v in params.items() if v})


def arguments_model(function: Callable[..., Any], name: str, descriptions: dict[str, str],
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


def check_explicit_schema(parameters: dict[str, Any], arguments: type[BaseModel], ref: str) -> None:
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


def clean_schema(schema: Any, *, in_properties: bool = False) -> Any:
    """Drop pydantic's generated titles (noise for the model); keep property names called "title"."""
    if isinstance(schema, dict):
        out = {}
        for key, value in schema.items():
            if key == "title" and not in_properties and isinstance(value, str):
                continue
            out[key] = clean_schema(value, in_properties=key in ("properties", "$defs"))
        return out
    if isinstance(schema, list):
        return [clean_schema(v) for v in schema]
    return schema


def strict_ok(schema: Any) -> bool:
    """OpenAI strict mode: every object lists all its properties as required and forbids extra keys."""
    if isinstance(schema, list):
        return all(strict_ok(s) for s in schema)
    if not isinstance(schema, dict):
        return True
    if schema.get("type") == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is not False:
            return False
        if set(schema.get("required", [])) != set(properties):
            return False
        if not all(strict_ok(v) for v in properties.values()):
            return False
    for key in ("items", "anyOf", "allOf", "oneOf", "prefixItems"):
        if key in schema and not strict_ok(schema[key]):
            return False
    for key in ("$defs", "definitions"):
        if key in schema and not all(strict_ok(v) for v in schema[key].values()):
            return False
    return True


def mcp_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The server's input schema for the model: an object schema, without pydantic's generated titles."""
    cleaned = clean_schema(schema) if isinstance(schema, dict) else {}
    if cleaned.get("type") != "object":
        cleaned = {"type": "object", "properties": {}, **{k: v for k, v in cleaned.items() if k != "type"}}
    cleaned.setdefault("properties", {})
    return cleaned
