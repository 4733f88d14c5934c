"""Function calls the model asked for -> our tool registry -> the output text it gets back.

The same for every backend type: the wire formats differ (Responses `function_call` items, Chat Completions
`tool_calls`), the registry and the answer to an unknown name do not.
"""
from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Protocol

from core.model import ToolUpdate

if TYPE_CHECKING:  # pragma: no cover
    from core.config.schema import AssistantConfig
    from core.ports import Turn

log = logging.getLogger(__name__)

PREVIEW = 300            # characters of a tool result shown in the status line


class ToolSpec(Protocol):
    name: str
    description: str
    parameters: dict[str, Any]

    def to_openai(self) -> dict[str, Any]: ...


class ToolRegistryLike(Protocol):
    """What a backend needs of core.tools.registry.ToolRegistry."""

    def specs_for(self, assistant: "AssistantConfig") -> list[ToolSpec]: ...
    # turn: who may approve the call (turn.approver) and who the audit record names
    async def call(self, name: str, arguments_json: str, *, turn: "Turn | None" = None) -> str: ...


def function_specs(tools: ToolRegistryLike, assistant: "AssistantConfig") -> list[ToolSpec]:
    # Python functions and the tools of the assistant's MCP servers
    return list(tools.specs_for(assistant)) if assistant.tool("function") or assistant.tool("mcp") else []


async def call_function(tools: ToolRegistryLike, known: set[str], name: str, arguments: str,
                        conversation_id: str, *, turn: "Turn | None" = None) -> str:
    """The output for one call; never raises (the registry turns failures into text for the model).
    `turn`: passed on, so that a tool under require_approval can be approved and every call is audited."""
    if name in known:
        return await tools.call(name, arguments, turn=turn)
    log.warning("model asked for unknown function %r (conversation %s)", name, conversation_id)
    return json.dumps({"error": f"There is no function named {name!r}. "
                                f"Available: {', '.join(sorted(n for n in known if n)) or 'none'}."})


def done_update(item_id: str, name: str, result: str) -> ToolUpdate:
    return ToolUpdate(item_id, "function", "done", f"Calling {name}", preview(result))


def preview(text: str) -> str:
    return text if len(text) <= PREVIEW else text[:PREVIEW - 1] + "…"


def rounds_exhausted(max_rounds: int) -> str:
    return (f"The assistant kept calling tools for {max_rounds} rounds without answering; "
            "stopped. Please rephrase or ask again.")
