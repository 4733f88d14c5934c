"""Pydantic's validation errors as messages an admin understands, located by the schema's own types."""
from __future__ import annotations

import difflib
import types
import typing
from typing import Annotated, Any

from pydantic import BaseModel

from core.config.schema import AssistantConfig, Config

Loc = tuple[Any, ...]


def explain(err: dict[str, Any]) -> tuple[Loc, str]:
    """A pydantic error -> (loc, message an admin understands)."""
    loc: Loc = tuple(err["loc"])
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    if kind == "extra_forbidden":
        key = loc[-1]
        message = f"unknown key {key!r}"
        known = _fields_at(loc[:-1])
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.7)
        if close:
            message += f" (did you mean {close[0]!r}?)"
        elif known:
            message += f"; allowed here: {', '.join(sorted(known))}"
        return loc, message
    if kind == "missing":
        return loc, f"required key {loc[-1]!r} is missing"
    if kind == "union_tag_invalid":
        what = "backend" if loc[:1] == ("backends",) else "tool"
        return loc + ("type",), f"unknown {what} type {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        return loc + ("type",), "every tool needs a type: code_interpreter, file_search, function or image_generation"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        hint = ""
        if len(loc) >= 2 and loc[-2] == "tools" and isinstance(value, str):
            hint = f" (write `- type: {value}`)"
        return loc, f"must be a mapping of keys to values, not {_kind_of(value)}{hint}"
    if kind == "list_type":
        return loc, f"must be a list, not {_kind_of(value)}"
    message = str(err.get("msg", "invalid value"))
    if message.startswith("Value error, "):
        return loc, message[len("Value error, "):]
    message = message.replace("Input should be", "must be")
    if isinstance(value, (str, int, float, bool)) and not isinstance(value, dict):
        message += f" (got {value!r})"
    elif value is None:
        message += " (got nothing)"
    return loc, message


def _kind_of(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"{type(value).__name__} {value!r}"


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return tp
            tp = members[0]
        else:
            return tp


def _type_at(loc: Loc) -> Any:
    """The schema type at `loc` (discriminator tags in the loc pick the union member), or None."""
    tp: Any = Config
    for comp in loc:
        tp = _unwrap(tp)
        origin = typing.get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(comp))
            if field is None:
                return None
            tp = field.annotation
        elif origin is dict:
            tp = typing.get_args(tp)[1]
        elif origin is list:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            tp = next((m for m in typing.get_args(tp) if _tag_of(m) == comp), None)
            if tp is None:
                return None
        else:
            return None
    return _unwrap(tp)


def is_tag(loc: Loc, comp: Any) -> bool:
    tp = _type_at(loc)
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and any(
        _tag_of(m) == comp for m in typing.get_args(tp))


def _fields_at(loc: Loc) -> list[str]:
    """Field names an admin may write at `loc`."""
    tp = _type_at(loc)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        hidden = {"name"} if tp is AssistantConfig else {"base_dir"} if tp is Config else set()
        return [f for f in tp.model_fields if f not in hidden]
    return []


def _tag_of(tp: Any) -> Any:
    while typing.get_origin(tp) is Annotated:     # a union member tagged with pydantic's Tag
        tp = typing.get_args(tp)[0]
    if isinstance(tp, type) and issubclass(tp, BaseModel) and "type" in tp.model_fields:
        args = typing.get_args(tp.model_fields["type"].annotation)
        return args[0] if args else None
    return None
