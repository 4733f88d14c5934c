"""History items and the turn -> Chat Completions `messages` (system, user, assistant with tool_calls, tool)."""
from __future__ import annotations

from typing import Any, Iterable

from core.model import AssistantItem, FunctionCallItem, FunctionOutputItem, HistoryItem, SummaryItem, UserItem
from core.ports import Turn


def system(instructions: str) -> list[dict[str, Any]]:
    return [{"role": "system", "content": instructions}] if instructions else []


def user(turn: Turn, *, vision: bool) -> dict[str, Any]:
    text = "\n".join((turn.text, *(f"Attached file {d.name}:\n{d.text}" for d in turn.documents)))
    if not (vision and turn.images):
        return {"role": "user", "content": text}
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    for img in turn.images:
        # Chat Completions has no file ids: an image is always inline (the router makes data URLs here).
        parts.append({"type": "image_url", "image_url": {"url": img.data_url}})
    return {"role": "user", "content": parts}


def to_messages(items: Iterable[HistoryItem]) -> list[dict[str, Any]]:
    """Consecutive function calls become one assistant message with several tool_calls, as the API expects
    (an assistant text right before them is that message's content)."""
    out: list[dict[str, Any]] = []
    for item in items:
        match item:
            case UserItem(text=text, images=images):
                if images:
                    text += "\n" + " ".join(f"[{n}]" for n in images)
                out.append({"role": "user", "content": text})
            case AssistantItem(text=text):
                out.append({"role": "assistant", "content": text})
            case FunctionCallItem(call_id=call_id, name=name, arguments=arguments):
                call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
                if out and out[-1]["role"] == "assistant":
                    out[-1].setdefault("tool_calls", []).append(call)
                else:
                    out.append({"role": "assistant", "content": None, "tool_calls": [call]})
            case FunctionOutputItem(call_id=call_id, output=output):
                out.append({"role": "tool", "tool_call_id": call_id, "content": output})
            case SummaryItem():
                pass  # goes into the system message (core.backends.history.SUMMARY_PREFIX)
    return out


def tool(spec: Any) -> dict[str, Any]:
    """A registry function tool in Chat Completions' shape (nested under `function`)."""
    # No `strict`: several compatible servers do not know it, and the registry validates arguments anyway.
    return {"type": "function", "function": {"name": spec.name, "description": spec.description,
                                             "parameters": spec.parameters}}
