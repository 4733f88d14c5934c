"""The same conversations against every backend type: what a user sees must not depend on where history lives.

Each backend type runs against its stand-in server through the real openai SDK; `world.seen(body)` is what the
model read for one request (stored conversation items plus the request's input), so "the model remembers"
is asserted the same way whether the server keeps the history or teambridge resends it.
"""
from __future__ import annotations

import asyncio

import json
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest
from openai import AsyncOpenAI

from core.backends.chat_completions.backend import ChatCompletionsBackend
from core.backends.client import make_server_client, who
from core.backends.history import LocalSessions
from core.backends.openai.backend import OpenAIBackend
from core.backends.responses.backend import ResponsesBackend
from core.config.schema import AssistantConfig
from core.errors import BackendError
from core.model import AssistantItem, Completed, FunctionCallItem, FunctionOutputItem, TextDelta, UserItem
from core.ports import Turn
from core.store.sqlite import SqliteStore
from tests.backends.test_openai_backend import StubRegistry
from bots.standins.chat_completions_server import FakeChatCompletions
from bots.standins.openai_server import FakeOpenAI, FunctionCall, ScriptedResponse

FOOD = AssistantConfig(name="food", model="gpt-test", instructions="You are a food expert.")
WEATHER = AssistantConfig(name="weather", model="gpt-test", instructions="Answer weather questions.",
                          tools=[{"type": "function", "function": "tests.backends.test_openai_backend:query_weather"}])


def user_texts(items: list[dict[str, Any]]) -> list[str]:
    out = []
    for item in items:
        if item.get("role") != "user":
            continue
        content = item.get("content")
        out.append(content if isinstance(content, str) or content is None else
                   " ".join(p.get("text", "") for p in content if p.get("type") == "input_text"))
    return out


class World:
    """One backend type, its stand-in server and a client of it."""

    def __init__(self, kind: str, fake: FakeOpenAI, backend: Any, registry: StubRegistry) -> None:
        self.kind = kind
        self.fake = fake
        self.backend = backend
        self.registry = registry

    def seen(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """For a responder, while the request is being answered."""
        return self.fake.model_context(body)

    def read(self, n: int = -1) -> list[dict[str, Any]]:
        """What the model read for request n (every earlier turn it was given, then the new input)."""
        return self.fake.contexts[n]

    def requests(self) -> list[dict[str, Any]]:
        return self.fake.response_requests()


async def _openai_world(sleep: Callable, tmp_path: Path) -> AsyncIterator[World]:
    async with FakeOpenAI() as fake:
        client = AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0, timeout=10)
        registry = StubRegistry()
        backend = OpenAIBackend(client, registry, max_retries=2, sleep=sleep)
        yield World("openai", fake, backend, registry)
        await backend.aclose()


async def _responses_world(sleep: Callable, tmp_path: Path) -> AsyncIterator[World]:
    async with FakeOpenAI(stateless=True) as fake, SqliteStore(tmp_path / "history.db") as store:
        server = make_server_client(name="local", base_url=fake.base_url, api_key_env=None, timeout=10, env={})
        registry = StubRegistry()
        backend = ResponsesBackend(server.client, registry, LocalSessions(store), who=who("local"),
                                   max_retries=2, sleep=sleep, headers=server.headers)
        yield World("responses", fake, backend, registry)
        await backend.aclose()


def _chat_items(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages in the Responses items' terms the scenarios assert on."""
    out = []
    for msg in messages:
        if msg["role"] == "tool":
            out.append({"type": "function_call_output", "call_id": msg["tool_call_id"], "output": msg["content"]})
        elif msg["role"] in ("user", "assistant"):
            content = msg.get("content")
            out.append({"type": "message", "role": msg["role"],
                        "content": content if isinstance(content, str) or content is None else
                        [{"type": "input_text", "text": p.get("text", "")} for p in content]})
    return out


class ChatWorld(World):
    def seen(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        return _chat_items(body["messages"])

    def read(self, n: int = -1) -> list[dict[str, Any]]:
        return _chat_items(self.fake.contexts[n])

    def requests(self) -> list[dict[str, Any]]:
        return self.fake.completion_requests()


async def _chat_world(sleep: Callable, tmp_path: Path) -> AsyncIterator[World]:
    async with FakeChatCompletions() as fake, SqliteStore(tmp_path / "history.db") as store:
        server = make_server_client(name="compat", base_url=fake.base_url, api_key_env=None, timeout=10, env={})
        registry = StubRegistry()
        backend = ChatCompletionsBackend(server.client, registry, store, who=who("compat"),
                                         max_retries=2, sleep=sleep, headers=server.headers)
        yield ChatWorld("chat_completions", fake, backend, registry)
        await backend.aclose()


WORLDS = {"openai": _openai_world, "responses": _responses_world, "chat_completions": _chat_world}


@pytest.fixture(params=sorted(WORLDS))
async def world(request, tmp_path):
    async def no_sleep(_: float) -> None:
        return None
    async for w in WORLDS[request.param](no_sleep, tmp_path):
        yield w


async def ask(world: World, conversation: str, text: str, assistant: AssistantConfig = FOOD, *,
              release: asyncio.Event | None = None) -> tuple[str, list[Any], BackendError | None]:
    """The turn's text, events and error; `release` is set when the first text arrives."""
    events: list[Any] = []
    try:
        async for ev in world.backend.run(Turn(assistant=assistant, conversation_id=conversation, text=text,
                                               user_id="U1")):
            events.append(ev)
            if release is not None and isinstance(ev, TextDelta):
                release.set()
    except BackendError as exc:
        return "".join(e.text for e in events if isinstance(e, TextDelta)), events, exc
    return "".join(e.text for e in events if isinstance(e, TextDelta)), events, None


async def test_capabilities_are_declared_and_frozen(world):
    caps = world.backend.capabilities
    assert isinstance(caps.server_history, bool) and isinstance(caps.hosted_tools, frozenset)
    with pytest.raises(FrozenInstanceError):
        caps.vision = False  # type: ignore[misc]


async def test_an_answer_streams_whole_and_its_usage_is_reported(world):
    # The model stops after its first delta until that delta reached the caller: it streams (deltas that come
    # in one read may come as one TextDelta).
    hold = asyncio.Event()
    world.fake.script(ScriptedResponse(text="Pho is a Vietnamese noodle soup.", delta_size=6, input_tokens=40,
                                       output_tokens=9, hold=hold, hold_after=1))
    conv = await world.backend.create_conversation({"platform": "console", "user_id": "U1"})
    text, events, err = await ask(world, conv, "What is pho?", release=hold)
    assert err is None and text == "Pho is a Vietnamese noodle soup."
    assert sum(isinstance(e, TextDelta) for e in events) > 1
    done = events[-1]
    assert isinstance(done, Completed) and (done.usage.input_tokens, done.usage.output_tokens) == (40, 9)


async def test_the_second_turn_remembers_the_first_and_a_new_conversation_does_not(world):
    world.fake.responder = lambda body: ScriptedResponse(text="I have read: " + " / ".join(user_texts(world.seen(body))))
    conv = await world.backend.create_conversation({"user_id": "U1"})
    await ask(world, conv, "My name is Ada.")
    text, _, err = await ask(world, conv, "What is my name?")
    assert err is None and text == "I have read: My name is Ada. / What is my name?"
    seen = world.read(-1)
    assert any(i.get("role") == "assistant" for i in seen)           # its own earlier answer too

    fresh = await world.backend.create_conversation({"user_id": "U1"})
    text, _, _ = await ask(world, fresh, "What is my name?")
    assert text == "I have read: What is my name?"


async def test_the_weather_tool_runs_and_its_result_reaches_the_model(world):
    world.fake.script(ScriptedResponse(function_calls=(FunctionCall("query_weather", '{"city":"北京"}', "call_bj"),)),
                      ScriptedResponse(text="北京: 19°C, rainy."))
    conv = await world.backend.create_conversation({})
    text, events, err = await ask(world, conv, "北京天气?", WEATHER)
    assert err is None and text == "北京: 19°C, rainy."
    assert world.registry.calls == [("query_weather", '{"city":"北京"}')]
    outputs = [i for i in world.read(-1) if i.get("type") == "function_call_output"]
    assert [json.loads(o["output"])["temperature"] for o in outputs] == [19]
    assert isinstance(events[-1], Completed) and events[-1].usage.tool_calls == 1


async def test_the_session_shows_the_conversation_oldest_first(world):
    world.fake.script(ScriptedResponse(function_calls=(FunctionCall("query_weather", '{"city":"上海"}', "call_sh"),)),
                      ScriptedResponse(text="Sunny, 25."))
    conv = await world.backend.create_conversation({})
    await ask(world, conv, "上海?", WEATHER)
    items = await world.backend.session(conv).get_items()
    assert items[0] == UserItem("上海?")
    assert [type(i) for i in items[1:]] == [FunctionCallItem, FunctionOutputItem, AssistantItem]
    assert items[1].call_id == items[2].call_id == "call_sh" and items[-1] == AssistantItem("Sunny, 25.")
    assert (await world.backend.session(conv).get_items(limit=1)) == [AssistantItem("Sunny, 25.")]


async def test_a_server_error_is_one_readable_line_after_the_retries(world):
    world.fake.fail_next(500, times=10)
    conv = await world.backend.create_conversation({})
    text, _, err = await ask(world, conv, "hello")
    assert text == "" and err is not None
    assert "server error (500)" in err.message and "\n" not in err.message
    assert len(world.requests()) == 3                                 # first try + max_retries=2
