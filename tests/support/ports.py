"""Small fakes of our own ports (not of any SDK): a scripted backend and a recording reply target."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from core.backends.capabilities import BY_TYPE
from core.model import BackendEvent, Completed, OutboundFile, TextDelta, Usage
from core.ports import Limits, OnPosted, Turn


class ScriptedBackend:
    """Answers each turn with the next script (a list of events), or echoes the text. Records every turn."""

    capabilities = BY_TYPE["openai"]   # declares everything, so the service's routing is what a test exercises

    def __init__(self, *scripts: list[BackendEvent]) -> None:
        self.scripts = list(scripts)
        self.turns: list[Turn] = []
        self.conversations: list[dict[str, str]] = []
        self.gate: asyncio.Event | None = None     # when set, answers wait for it before the last event

    async def create_conversation(self, metadata: dict[str, str]) -> str:
        self.conversations.append(metadata)
        return f"conv_{len(self.conversations)}"

    async def ready_conversation(self, metadata: dict[str, str]) -> str | None:
        return await self.create_conversation(metadata)   # always ready: its first turns never go without one

    async def make_conversation(self, pending: str, metadata: dict[str, str]) -> str:
        return await self.create_conversation(metadata)

    async def run(self, turn: Turn):
        self.turns.append(turn)
        events = self.scripts.pop(0) if self.scripts else [TextDelta(f"You said: {turn.text}"),
                                                             Completed(Usage(10, 0, 5))]
        for event in events:
            if isinstance(event, Exception):
                raise event
            if self.gate is not None and isinstance(event, Completed):
                await self.gate.wait()
            yield event

    def prepare(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


class PausingBackend(ScriptedBackend):
    """A ScriptedBackend whose scripts may also hold floats (pause that many seconds), asyncio.Events (wait
    until the test sets them) and exceptions (raised there)."""

    async def run(self, turn):
        self.turns.append(turn)
        for item in self.scripts.pop(0):
            if isinstance(item, float):
                await asyncio.sleep(item)
            elif isinstance(item, asyncio.Event):
                await item.wait()
            elif isinstance(item, Exception):
                raise item
            else:
                yield item


@dataclass
class Message:
    id: str
    text: str
    edits: int = 0


@dataclass
class RecordingTarget:
    """A chat location: keeps each message's latest text, the notices and the uploads, as a user would see them."""
    limits: Limits = field(default_factory=lambda: Limits(max_chars=500, edit_interval=0.0))
    messages: list[Message] = field(default_factory=list)
    notices: list[tuple[str, bool]] = field(default_factory=list)
    uploads: list[OutboundFile] = field(default_factory=list)
    typing_calls: int = 0

    async def post(self, text: str) -> str:
        message = Message(id=f"m{len(self.messages) + 1}", text=text)
        self.messages.append(message)
        return message.id

    async def edit(self, message_id: str, text: str, *, final: bool = False) -> bool:
        message = next(m for m in self.messages if m.id == message_id)
        message.text = text
        message.edits += 1
        return True

    async def upload(self, file: OutboundFile) -> None:
        self.uploads.append(file)

    async def notice(self, text: str, *, ephemeral: bool = False) -> None:
        self.notices.append((text, ephemeral))

    async def typing(self) -> None:
        self.typing_calls += 1

    def open_stream(self, on_posted: OnPosted):
        return None

    @property
    def shown(self) -> str:
        return "".join(m.text for m in self.messages)


class RecordingAdapter:
    name = "slack"

    def __init__(self) -> None:
        self.marked: list[tuple[str, str, str | None]] = []

    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    async def mark_interrupted(self, channel: str, message_id: str, thread: str | None) -> None:
        self.marked.append((channel, message_id, thread))
