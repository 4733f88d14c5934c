"""A conversation kept by teambridge stays under context_tokens: the oldest turns are condensed by the same model
(or dropped when that fails), the latest turns go along intact, and the answer never fails for it."""
from __future__ import annotations

from typing import Any

import pytest

from core.backends.chat_completions.backend import ChatCompletionsBackend
from core.backends.client import make_server_client, who
from core.backends.history import CONDENSE_INSTRUCTIONS, SUMMARY_PREFIX, LocalSession, LocalSessions, split_turns
from core.backends.responses.backend import ResponsesBackend
from core.backends.tokens import Tokens, estimate
from core.config.schema import AssistantConfig
from core.model import AssistantItem, Completed, SummaryItem, TextDelta, UserItem
from core.ports import Turn
from core.store.sqlite import SqliteStore
from tests.backends.test_openai_backend import StubRegistry
from bots.standins.chat_completions_server import FakeChatCompletions, message_text
from bots.standins.openai_server import FakeOpenAI, ScriptedResponse, last_user_text

LLAMA = AssistantConfig(name="local", model="llama3.1:8b", instructions="Be brief.")
CONTEXT = 1500
LONG = "lorem ipsum dolor sit amet " * 12          # ~110 estimated tokens per message


def is_condense(body: dict[str, Any]) -> bool:
    if "messages" in body:
        return body["messages"][0].get("content") == CONDENSE_INSTRUCTIONS
    return body.get("instructions") == CONDENSE_INSTRUCTIONS


class History:
    """What the store holds for a conversation, as history items."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    async def of(self, conversation: str) -> list:
        return await LocalSession(self.store, conversation).get_items()


@pytest.fixture(params=["responses", "chat_completions"])
async def world(request, tmp_path):
    async with SqliteStore(tmp_path / "history.db") as store:
        async for w in _world(request.param, store):
            yield w


async def _world(kind: str, store: SqliteStore):
    history = History(store)

    async def no_sleep(_: float) -> None:
        return None
    if kind == "responses":
        async with FakeOpenAI(stateless=True) as fake:
            server = make_server_client(name="local", base_url=fake.base_url, api_key_env=None, timeout=10, env={})
            backend = ResponsesBackend(server.client, StubRegistry(), LocalSessions(store), who=who("local"),
                                       headers=server.headers, context_tokens=CONTEXT, sleep=no_sleep, max_retries=0)
            yield fake, backend, history, fake.response_requests
            await backend.aclose()
    else:
        async with FakeChatCompletions() as fake:
            server = make_server_client(name="compat", base_url=fake.base_url, api_key_env=None, timeout=10, env={})
            backend = ChatCompletionsBackend(server.client, StubRegistry(), store, who=who("compat"),
                                             headers=server.headers, context_tokens=CONTEXT, sleep=no_sleep,
                                             max_retries=0)
            yield fake, backend, history, fake.completion_requests
            await backend.aclose()


def brain(body: dict[str, Any]) -> ScriptedResponse:
    """Answers with the question's number; condensing requests get a recognisable summary."""
    if is_condense(body):
        return ScriptedResponse(text="The user asked numbered questions about lorem ipsum.", input_tokens=900,
                                output_tokens=12)
    if "messages" in body:
        users = [m for m in body["messages"] if m["role"] == "user"]
        text = message_text(users[-1])
    else:
        text = last_user_text(body)
    return ScriptedResponse(text=f"Answer to {text.split(':')[0]}: {LONG}", input_tokens=300, output_tokens=120)


async def say(backend, conversation: str, text: str) -> tuple[str, Completed]:
    events = [e async for e in backend.run(Turn(assistant=LLAMA, conversation_id=conversation, text=text))]
    return "".join(e.text for e in events if isinstance(e, TextDelta)), events[-1]


def sent_text(body: dict[str, Any]) -> str:
    if "messages" in body:
        return "\n".join(message_text(m) or "" for m in body["messages"])
    return body.get("instructions", "") + "\n" + "\n".join(
        i["content"] if isinstance(i.get("content"), str) else " ".join(p.get("text", "") for p in i.get("content") or [])
        for i in body["input"])


async def test_a_long_thread_stays_under_context_tokens_with_its_latest_turns_and_a_summary(world):
    fake, backend, history, requests = world
    fake.responder = brain
    conv = await backend.create_conversation({})
    for n in range(1, 13):
        text, done = await say(backend, conv, f"Q{n}: {LONG}")
        assert text.startswith(f"Answer to Q{n}")              # every answer arrives, window full or not

    turns = [b for b in requests() if not is_condense(b)]
    condensing = [b for b in requests() if is_condense(b)]
    assert condensing, "the history was never condensed"
    assert all(b["model"] == "llama3.1:8b" for b in condensing)  # by the same model
    last = sent_text(turns[-1])
    assert estimate(last) < CONTEXT                              # what a turn sends stays under the cap
    assert SUMMARY_PREFIX.strip() in last and "numbered questions" in last
    assert "Q12:" in last and "Q11:" in last and "Answer to Q11" in last   # the latest turns, intact
    assert "Q1:" not in last
    stored = await history.of(conv)
    assert isinstance(stored[0], SummaryItem) and stored[0].turns >= 1
    assert stored[-2:] == [UserItem(f"Q12: {LONG}"), AssistantItem(f"Answer to Q12: {LONG}")]


async def test_the_condensing_request_is_counted_with_the_turn_that_needed_it(world):
    fake, backend, history, requests = world
    fake.responder = brain
    conv = await backend.create_conversation({})
    usages = []
    for n in range(1, 13):
        _, done = await say(backend, conv, f"Q{n}: {LONG}")
        usages.append(done.usage.input_tokens)
    assert 300 in usages and 300 + 900 in usages               # plain turns, and a turn that condensed


async def test_when_condensing_fails_the_oldest_turns_are_dropped_and_the_answer_still_comes(world):
    fake, backend, history, requests = world

    def failing_brain(body: dict[str, Any]) -> ScriptedResponse:
        if is_condense(body):
            return ScriptedResponse(error=("server_error", "no summaries today"))
        return brain(body)
    fake.responder = failing_brain
    conv = await backend.create_conversation({})
    for n in range(1, 13):
        text, _ = await say(backend, conv, f"Q{n}: {LONG}")
        assert text.startswith(f"Answer to Q{n}")
    assert any(is_condense(b) for b in requests())
    last = sent_text([b for b in requests() if not is_condense(b)][-1])
    assert SUMMARY_PREFIX.strip() not in last and "Q12:" in last and "Q1:" not in last
    assert not any(isinstance(i, SummaryItem) for i in await history.of(conv))


async def test_a_real_tokenizer_counts_openai_family_names():
    tokens = Tokens("gpt-4.1-mini")
    await tokens.ready()
    assert tokens.exact and tokens.count("hello world") == 2
    assert not Tokens("llama3.1:8b").exact and Tokens("llama3.1:8b").count("hello world") >= 2


def test_turns_start_at_each_user_message():
    items = [SummaryItem("s", 3), UserItem("a"), AssistantItem("b"), UserItem("c")]
    head, turns = split_turns(items)
    assert head == [SummaryItem("s", 3)] and turns == [[UserItem("a"), AssistantItem("b")], [UserItem("c")]]
