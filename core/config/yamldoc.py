"""The composed YAML node tree of a config file: where each key is (its line), duplicate keys, keys that look
like secrets. Everything here reports `PATH:LINE: key.path: message` lines."""
from __future__ import annotations

import re
from typing import Any

import yaml

from core.config.messages import Loc, is_tag

# Keys that look like credentials. `max_output_tokens` and friends end in "tokens" and do not match.
SECRET_KEY = re.compile(r"(?:^|[_-])(?:api[_-]?key|apikey|token|secret|password|passwd)$", re.IGNORECASE)
# Mappings whose keys are names chosen by the admin (or JSON schema properties), not settings.
NAME_MAPS = {"assistants", "backends", "channels", "properties", "parameters", "mcp_servers", "headers", "env"}


class Doc:
    """The composed YAML tree of one file: turns a pydantic-style loc into `PATH:LINE: key.path`."""

    def __init__(self, shown: str, root: yaml.Node) -> None:
        self.shown = shown
        self.root = root

    def locate(self, loc: Loc) -> tuple[int, str]:
        node: yaml.Node | None = self.root
        line = self.root.start_mark.line + 1
        parts: list[str] = []
        for i, comp in enumerate(loc):
            if comp == "[key]":       # pydantic's marker for "the dict key itself is wrong"
                continue
            if isinstance(comp, str) and is_tag(loc[:i], comp):
                continue              # a discriminated union's tag ('function'): in the loc, not in the YAML
            if isinstance(node, yaml.MappingNode):
                hit = _lookup(node, comp)
                if hit is None:
                    node = None       # a missing key: stay on the parent mapping's line
                    parts.append(str(comp))
                    continue
                key_node, node = hit
                # The key's line, for values too: a block mapping's value starts on the next line.
                line = key_node.start_mark.line + 1
            elif isinstance(node, yaml.SequenceNode) and isinstance(comp, int) and 0 <= comp < len(node.value):
                node = node.value[comp]
                line = node.start_mark.line + 1
            else:
                node = None
            parts.append(str(comp))
        return line, ".".join(parts) or "<root>"

    def error(self, loc: Loc, message: str) -> str:
        line, dotted = self.locate(loc)
        return f"{self.shown}:{line}: {dotted}: {message}"


def _scalar(node: yaml.Node | None) -> str | None:
    return node.value if isinstance(node, yaml.ScalarNode) else None


def _lookup(node: yaml.MappingNode, comp: Any) -> tuple[yaml.Node, yaml.Node] | None:
    want = str(comp)
    found = None
    for key_node, value_node in node.value:  # the last duplicate wins, as in yaml.safe_load
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == want:
            found = (key_node, value_node)
    return found


def dotted(loc: Loc) -> str:
    return ".".join(str(c) for c in loc)


def check_duplicates(doc: Doc, node: yaml.Node, loc: Loc, errors: list[str]) -> None:
    # PyYAML silently keeps the last of two equal keys; an admin editing the first one would wonder why
    # nothing changes.
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            if key is None:
                continue
            if key in seen:
                errors.append(f"{doc.shown}:{key_node.start_mark.line + 1}: {dotted(loc + (key,))}: "
                              f"duplicate key (first set on line {seen[key]}); the last one wins, remove one")
            else:
                seen[key] = key_node.start_mark.line + 1
            check_duplicates(doc, value_node, loc + (key,), errors)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            check_duplicates(doc, item, loc + (i,), errors)


def secret_keys(node: yaml.Node, loc: Loc) -> list[Loc]:
    found: list[Loc] = []
    if isinstance(node, yaml.MappingNode):
        names_only = bool(loc) and loc[-1] in NAME_MAPS
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            if key is None:
                continue
            if not names_only and SECRET_KEY.search(key):
                found.append(loc + (key,))
                continue
            if key == "parameters":   # a JSON schema may well have a property called "token"
                continue
            found.extend(secret_keys(value_node, loc + (key,)))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found.extend(secret_keys(item, loc + (i,)))
    return found


def env_var_for(loc: Loc) -> str:
    key = str(loc[-1]).lower()
    if loc[0] == "slack":
        if "app" in key:
            return "SLACK_APP_TOKEN"
        if "sign" in key or "secret" in key:
            return "SLACK_SIGNING_SECRET"
        return "SLACK_BOT_TOKEN"
    if loc[0] == "discord":
        return "DISCORD_BOT_TOKEN"
    return "OPENAI_API_KEY"


def drop(data: Any, loc: Loc) -> None:
    for comp in loc[:-1]:
        try:
            data = data[comp]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(data, dict):
        data.pop(loc[-1], None)
