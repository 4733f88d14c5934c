"""History items <-> Responses API input items (what a stateless server gets resent every turn)."""
from __future__ import annotations

from typing import Any, Iterable

from openai.types.conversations import ConversationItem, Message, TextContent
from openai.types.responses import (ResponseFunctionToolCallItem, ResponseFunctionToolCallOutputItem,
                                    ResponseInputText, ResponseOutputText)

from core.model import AssistantItem, FunctionCallItem, FunctionOutputItem, HistoryItem, SummaryItem, UserItem
from core.ports import InputImage, Turn


def user_message(turn: Turn, *, vision: bool) -> dict[str, Any]:
    """This turn's user message: its text, the documents' extracted text and, where the model sees, its images."""
    content: list[dict[str, Any]] = [{"type": "input_text", "text": turn.text}]
    for doc in turn.documents:
        content.append({"type": "input_text", "text": document_text(doc.name, doc.text)})
    if vision:
        for img in turn.images:
            content.append(image_part(img))
    return {"type": "message", "role": "user", "content": content}


def document_text(name: str, text: str) -> str:
    return f"Attached file {name}:\n{text}"


def image_part(img: InputImage) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "input_image", "detail": "auto"}
    if img.file_id:
        part["file_id"] = img.file_id
    else:
        part["image_url"] = img.data_url
    return part


def to_input(items: Iterable[HistoryItem]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in items:
        match item:
            case UserItem(text=text, images=images):
                if images:
                    text += "\n" + " ".join(f"[image: {n}]" for n in images)
                out.append({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
            case AssistantItem(text=text):
                # The "easy" message form: an output message item would need the id and status of a response
                # that a stateless server never kept.
                out.append({"type": "message", "role": "assistant", "content": text})
            case FunctionCallItem(call_id=call_id, name=name, arguments=arguments):
                out.append({"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments})
            case FunctionOutputItem(call_id=call_id, output=output):
                out.append({"type": "function_call_output", "call_id": call_id, "output": output})
            case SummaryItem():
                pass  # goes into the instructions (core.backends.history.with_summary)
    return out


def from_conversation_item(item: ConversationItem) -> HistoryItem | None:
    """One Conversations API item as a history item; None for kinds we do not show (tool runs, reasoning)."""
    match item:
        case Message(role="assistant", content=parts):
            return AssistantItem("\n".join(p.text for p in parts if isinstance(p, (ResponseOutputText, TextContent))))
        case Message(content=parts):
            return UserItem("\n".join(p.text for p in parts if isinstance(p, (ResponseInputText, TextContent))))
        case ResponseFunctionToolCallItem(call_id=call_id, name=name, arguments=arguments):
            return FunctionCallItem(call_id, name, arguments)
        case ResponseFunctionToolCallOutputItem(call_id=call_id, output=output):
            return FunctionOutputItem(call_id, output if isinstance(output, str) else
                                      " ".join(getattr(p, "text", "") for p in output))
    return None
