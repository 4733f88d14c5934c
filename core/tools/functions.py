"""Python functions as tools: importing one named in config.yaml (`package.module:function`) and calling it
with the model's arguments — validated against its signature, under its timeout, its result turned into text.

Nothing here raises to the caller at call time: whatever goes wrong becomes an {"error": ...} text for the
model (and one log line).
"""
from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pydantic_core
from pydantic import BaseModel, ValidationError

from core.errors import ConfigError
from core.tools.schema import FunctionToolSpec

log = logging.getLogger("teambridge.tools")


@dataclass(frozen=True, slots=True)
class FunctionEntry:
    """A registered Python function: its spec, how to validate and pass the model's arguments."""

    spec: FunctionToolSpec
    function: Callable[..., Any]
    arguments: type[BaseModel]      # validates the model's arguments against the signature
    positional: tuple[str, ...]     # positional-only parameters, passed by position
    is_async: bool
    ref: str                        # where it came from, for messages


def failure(name: str, message: str, *, logged: bool = False) -> str:
    if not logged:
        log.warning("tool %s: %s", name, message)
    return json.dumps({"error": message}, ensure_ascii=False)


def validation_text(exc: ValidationError) -> str:
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


def is_async(function: Callable[..., Any]) -> bool:
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


# ---- calling --------------------------------------------------------------------------------------


async def call_function(entry: FunctionEntry, name: str, arguments: str) -> tuple[str, bool]:
    """Run the function registered as tool `name` with the model's JSON `arguments`: the result text, and
    whether the function ran and returned a value."""
    try:
        raw = json.loads(arguments) if arguments and arguments.strip() else {}
    except json.JSONDecodeError as exc:
        return failure(name, f"arguments for tool {name} are not valid JSON: {exc.msg} at position {exc.pos}"), False
    if not isinstance(raw, dict):
        return failure(name, f"arguments for tool {name} must be a JSON object, not {type(raw).__name__}"), False
    try:
        validated = entry.arguments.model_validate(raw)
    except ValidationError as exc:
        return failure(name, f"invalid arguments for tool {name}: {validation_text(exc)}"), False

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
            return failure(name, f"tool {name} timed out after {entry.spec.timeout:g}s"), False
        log.exception("tool %s raised", name)
        return failure(name, f"tool {name} failed: TimeoutError", logged=True), False
    except Exception as exc:
        log.exception("tool %s raised", name)
        return failure(name, f"tool {name} failed: {type(exc).__name__}: {exc}", logged=True), False

    if isinstance(result, str):
        return result, True
    try:
        return json.dumps(result, ensure_ascii=False, default=pydantic_core.to_jsonable_python), True
    except (TypeError, ValueError, pydantic_core.PydanticSerializationError) as exc:
        log.exception("tool %s returned a value that is not JSON", name)
        return failure(name, f"tool {name} returned a {type(result).__name__} that cannot be turned into "
                              f"JSON: {exc}", logged=True), False
