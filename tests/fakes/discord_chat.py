"""A small fake of our own ChatService port for Discord adapter tests (not of any SDK).

It records what the adapter hands it and answers like the real service would from the outside:
addressed messages only, once per event id, attachments read through Attachment.read(), the reply
streamed into the target with post + edits, files via upload, refusals via notice.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from core.admin.observe import NullObserver, Observer
from core.config.schema import AssistantConfig, Config, DiscordConfig
from core.model import InboundMessage, OutboundFile, UserFacingError
from core.ports import Limits
from core.chat.commands import CommandSurface
from core.chat.routing import is_addressed


def discord_config(**discord) -> Config:
    assistants = {
        "food": AssistantConfig(name="food", model="gpt-test", description="food expert"),
        "math": AssistantConfig(name="math", model="gpt-test", tools=[{"type": "code_interpreter"}]),
    }
    return Config(default_assistant="food", assistants=assistants, discord=DiscordConfig(**discord))


@dataclass
class FakeChatService:
    config: Config = field(default_factory=discord_config)
    answers: list[str] = field(default_factory=list)          # scripted replies, else "You said: <text>"
    files: list[OutboundFile] = field(default_factory=list)   # uploaded after the next answer
    handled: list[InboundMessage] = field(default_factory=list)
    read_files: list[tuple[str, bytes]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    gate: asyncio.Event | None = None
    store: None = None                                         # no persistence: reply chains stay in memory
    observer: Observer = field(default_factory=NullObserver)   # what every service has: logs and metrics
    commands: CommandSurface = field(init=False)               # core's real command surface over this fake

    def __post_init__(self) -> None:
        self.commands = CommandSurface(self)

        async def usage(msg: InboundMessage, rest: str) -> str:
            self.handled.append(msg)
            return "usage: 0 tokens"

        self.commands.add("usage", usage)

    async def handle(self, msg: InboundMessage, target, *, approver=None) -> None:
        if not is_addressed(self.config, msg, bot_owns_thread=False):
            return
        if msg.event_id in self.seen:
            return
        self.seen.add(msg.event_id)
        self.handled.append(msg)
        for att in msg.attachments:
            try:
                self.read_files.append((att.name, await att.read()))
            except UserFacingError as err:  # the file is left out; the text is still answered
                await target.notice(err.message)
        await target.typing()
        if self.gate is not None:
            await self.gate.wait()
        answer = self.answers.pop(0) if self.answers else f"You said: {msg.text}"
        first = answer[: max(1, len(answer) // 2)]
        message_id = await target.post(first)
        await target.edit(message_id, answer)
        while self.files:
            await target.upload(self.files.pop(0))

    async def claim(self, platform: str, event_key: str) -> bool:
        if event_key in self.seen:
            return False
        self.seen.add(event_key)
        return True

    async def reset(self, msg: InboundMessage, *, user: str | None = None) -> str:
        self.handled.append(msg)
        return "Started a new conversation with food."

    async def choose_assistant(self, msg: InboundMessage, name: str) -> str:
        self.handled.append(msg)
        return f"You are now talking to {name}."


class StreamingService(FakeChatService):
    """Hands each question's reply stream (the target's own, as the real service uses it) to the test,
    which plays the model; the reply ends when the test closes the stream."""

    def __init__(self) -> None:
        super().__init__()
        self.streams: dict[str, asyncio.Future] = {}
        self.closed: set[str] = set()

    def stream_for(self, question: str) -> asyncio.Future:
        return self.streams.setdefault(question, asyncio.get_running_loop().create_future())

    async def handle(self, msg, target, *, approver=None) -> None:
        # Edits of a streaming reply at most every 20 ms here instead of every second: keeps the test short.
        target.limits = Limits(max_chars=target.limits.max_chars, edit_interval=0.02)
        stream = target.open_stream(self._posted)
        closed = asyncio.Event()
        close = stream.close

        async def close_and_finish(footer: str = "") -> None:
            self.closed.add(msg.text)
            try:
                await close(footer)
            finally:
                closed.set()
        stream.close = close_and_finish
        self.stream_for(msg.text).set_result(stream)
        await closed.wait()

    async def _posted(self, message_id: str) -> None:
        return None
