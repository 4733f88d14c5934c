"""What a test scripts for the OpenAI stand-ins (Responses and Chat Completions): one model answer
(`ScriptedResponse`) with the tool items it contains, the usage reported, and the answer given when nothing is
scripted."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True, slots=True)
class FunctionCall:
    name: str
    arguments: str = "{}"          # JSON text, as the model writes it
    call_id: str = ""              # generated when empty


@dataclass(frozen=True, slots=True)
class GeneratedFile:
    """A file the code interpreter writes; served at /v1/containers/{cid}/files/{fid}/content."""
    name: str
    data: bytes


@dataclass(frozen=True, slots=True)
class CodeRun:
    code: str
    logs: str | None = None
    file: GeneratedFile | None = None


@dataclass(frozen=True, slots=True)
class FileSearchHit:
    file_id: str
    filename: str
    text: str = "a matching passage"
    score: float = 0.9
    query: str = ""


@dataclass(frozen=True, slots=True)
class WebSource:
    """A page the web search found and the answer cites: `cites` is the passage of the text it backs."""
    title: str
    url: str
    cites: str = ""


@dataclass(frozen=True, slots=True)
class WebSearch:
    query: str
    sources: tuple[WebSource, ...] = ()


@dataclass(frozen=True, slots=True)
class ScriptedResponse:
    """One model answer. Everything optional; combine tool items with a text answer.

    text is streamed in deltas of `delta_size` characters (or split into `deltas` pieces), `first_delay`
    seconds before the first delta and `delay` between deltas. `hold`: the stream stops before delta number
    `hold_after` (0: before the first) until the test sets that event.
    """
    text: str = ""
    delta_size: int = 8
    deltas: int | None = None
    delay: float = 0.0
    first_delay: float = 0.0
    function_calls: tuple[FunctionCall, ...] = ()
    code: CodeRun | None = None
    file_search: FileSearchHit | None = None
    web_search: WebSearch | None = None          # a web_search_call, and url_citation annotations on the text
    image_png: bytes | None = None
    refusal: str | None = None
    hold: asyncio.Event | None = None            # set by the test: the stream goes on past `hold_after` deltas
    hold_after: int = 1
    # endings
    fail: tuple[str, str] | None = None          # (code, message) -> response.failed
    error: tuple[str, str] | None = None         # (code, message) -> bare `error` event
    incomplete: str | None = None                # reason, e.g. "max_output_tokens" -> response.incomplete
    cut_after: int | None = None                 # close the connection after this many text deltas
    cut_mode: str = "abort"                      # "abort": TCP reset mid-body; "eof": clean end, no terminal event
    garbled: tuple[int, str] | None = None       # (after this many text deltas, a data line that is no event): then ends
    # usage numbers reported for this response (None: fake.usage defaults)
    input_tokens: int | None = None
    cached_tokens: int | None = None
    output_tokens: int | None = None

    def chunks(self, text: str) -> list[str]:
        if not text:
            return []
        if self.deltas:
            n = max(1, -(-len(text) // self.deltas))
        else:
            n = max(1, self.delta_size)
        return [text[i:i + n] for i in range(0, len(text), n)]


@dataclass(frozen=True, slots=True)
class DefaultUsage:
    input_tokens: int = 50
    cached_tokens: int = 0
    output_tokens: int | None = None             # None: one token per delta


Responder = Callable[[dict[str, Any]], ScriptedResponse]


def default_policy(body: dict[str, Any]) -> ScriptedResponse:
    outputs = [i for i in input_items(body) if i.get("type") == "function_call_output"]
    if outputs:
        return ScriptedResponse(text="The tool returned: " + " | ".join(_output_text(o.get("output")) for o in outputs))
    return ScriptedResponse(text="You said: " + last_user_text(body))


def _output_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return " ".join(p.get("text", "") for p in output if isinstance(p, dict))
    return str(output)


def input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A /v1/responses request's input as items (a bare string is one user message)."""
    inp = body.get("input")
    if isinstance(inp, str):
        return [{"type": "message", "role": "user", "content": inp}]
    return [i for i in (inp or []) if isinstance(i, dict)]


def last_user_text(body: dict[str, Any]) -> str:
    """The text of the last user message in a /v1/responses request body (for responders)."""
    for item in reversed(input_items(body)):
        if item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                return content
            return " ".join(p.get("text", "") for p in content or [] if p.get("type") == "input_text")
    return ""
