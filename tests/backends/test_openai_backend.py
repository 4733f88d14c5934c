"""OpenAIBackend through the real AsyncOpenAI against the stand-in server (bots/standins/openai_server.py).

Each test reads as: the user says X to assistant A -> the backend yields what the user would see, and the
model received Y.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
from openai import AsyncOpenAI, DefaultAioHttpClient

from core.backends.openai.backend import OpenAIBackend, make_openai_client, safety_identifier
from core.config.schema import AssistantConfig, OpenAIBackendConfig
from core.model import Citation, Completed, OutboundFile, TextDelta, ToolUpdate
from core.errors import BackendError
from core.ports import HostedInputs, InputImage, Turn
from bots.standins.openai_server import (CodeRun, FakeOpenAI, FileSearchHit, FunctionCall, GeneratedFile,
                                       ScriptedResponse)

# ---- a stand-in for core.tools.registry.ToolRegistry (same API: specs_for + call that never raises) -------


@dataclass(frozen=True)
class Spec:
    name: str
    description: str
    parameters: dict[str, Any]

    def to_openai(self) -> dict[str, Any]:
        return {"type": "function", "name": self.name, "description": self.description, "strict": True,
                "parameters": self.parameters}


def query_weather(city: str) -> dict[str, Any]:
    table = {"上海": (25, "Sunny"), "北京": (19, "Rainy")}
    t, c = table.get(city, (20, "Windy"))
    return {"city": city, "temperature": t, "condition": c}


@dataclass
class StubRegistry:
    funcs: dict[str, Callable[..., Any]] = field(default_factory=lambda: {"query_weather": query_weather})
    calls: list[tuple[str, str]] = field(default_factory=list)

    def specs_for(self, assistant: AssistantConfig) -> list[Spec]:
        return [Spec(n, f"{n} tool", {"type": "object", "properties": {"city": {"type": "string"}},
                                      "required": ["city"], "additionalProperties": False})
                for n in self.funcs]

    async def call(self, name: str, arguments_json: str, *, turn=None) -> str:
        self.calls.append((name, arguments_json))
        try:
            return json.dumps(self.funcs[name](**json.loads(arguments_json)), ensure_ascii=False)
        except Exception as exc:  # the real registry turns every failure into text for the model
            return json.dumps({"error": str(exc)})


# ---- fixtures and helpers ----------------------------------------------------------------------------------

FOOD = AssistantConfig(name="food", model="gpt-test", instructions="You are a food expert.")
WEATHER = AssistantConfig(name="weather", model="gpt-test", instructions="Answer weather questions.",
                          tools=[{"type": "function", "function": "tests.backends.test_openai_backend:query_weather"}])
MATH = AssistantConfig(name="math", model="gpt-test", instructions="Use code.", tools=[{"type": "code_interpreter"}])
DOCS = AssistantConfig(name="docs", model="gpt-test", instructions="Cite the docs.",
                       tools=[{"type": "file_search", "max_num_results": 5, "score_threshold": 0.3}])


@pytest.fixture
async def fake():
    async with FakeOpenAI() as f:
        yield f


@pytest.fixture(params=["aiohttp", "httpx"])
async def client(fake, request):
    """Both transports: production uses the SDK's aiohttp client (make_openai_client), the SDK's default is httpx."""
    http = DefaultAioHttpClient(timeout=10) if request.param == "aiohttp" else None
    c = AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0, timeout=10, http_client=http)
    yield c
    await c.close()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def registry() -> StubRegistry:
    return StubRegistry()


@pytest.fixture
def backend(client, registry, sleeps) -> OpenAIBackend:
    async def fake_sleep(d: float) -> None:
        sleeps.append(d)
    return OpenAIBackend(client, registry, max_retries=3, sleep=fake_sleep)


async def converse(backend: OpenAIBackend, turn: Turn) -> tuple[list[Any], BackendError | None]:
    events: list[Any] = []
    try:
        async for ev in backend.run(turn):
            events.append(ev)
    except BackendError as exc:
        return events, exc
    return events, None


def text_of(events: list[Any]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def new_turn(backend: OpenAIBackend, assistant: AssistantConfig, text: str, **kw: Any) -> Turn:
    conv = await backend.create_conversation({"platform": "console", "user_id": "u1"})
    return Turn(assistant=assistant, conversation_id=conv, text=text, user_id="u1", **kw)


# ---- plain chat ---------------------------------------------------------------------------------------------


async def test_streamed_answer_arrives_whole_in_several_deltas_with_usage(fake, backend):
    """The first delta shows before the model wrote the rest; the deltas that were waiting by the time the reader
    came back for more come as one (the reply shows them at once either way: one step for them, not one each)."""
    answer = "Pho is a Vietnamese soup of broth, rice noodles and herbs."
    hold = asyncio.Event()
    fake.script(ScriptedResponse(text=answer, delta_size=5, input_tokens=120, cached_tokens=100, output_tokens=14,
                                 hold=hold, hold_after=1))
    events: list[Any] = []
    async for ev in backend.run(await new_turn(backend, FOOD, "What is pho?")):
        events.append(ev)
        if isinstance(ev, TextDelta) and not hold.is_set():
            hold.set()   # the rest of the answer is written while the reader is away
            while "complete" not in fake.stream_ends:
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.05)   # (on this loop: the client's socket has it all by now)
    assert text_of(events) == answer
    assert [e.text for e in events if isinstance(e, TextDelta)] == [answer[:5], answer[5:]]
    done = events[-1]
    assert isinstance(done, Completed) and done.response_id.startswith("resp_")
    assert (done.usage.input_tokens, done.usage.cached_tokens, done.usage.output_tokens) == (120, 100, 14)
    assert done.usage.tool_calls == 0


@pytest.mark.parametrize("garbled", ["not json at all", "[1, 2]", '{"type": "response.output_text.delta"}',
                                     '{"type": "response.output_text.delta", "delta": 7}'])
async def test_an_unreadable_event_keeps_the_text_that_came_before_it(fake, backend, caplog, garbled):
    """Text deltas read together go on as one: a garbled event among them must not take that text with it. The
    reader gets every word the model sent before it, then one readable error (one log line, no traceback)."""
    answer = "Pho is a Vietnamese soup of broth, rice noodles and herbs."
    fake.script(ScriptedResponse(text=answer, delta_size=6, garbled=(99, garbled)))
    events: list[Any] = []
    with pytest.raises(BackendError, match="unreadable"):
        async for ev in backend.run(await new_turn(backend, FOOD, "What is pho?")):
            events.append(ev)
    assert text_of(events) == answer
    assert fake.stream_ends == ["garbled"]
    assert not [r for r in caplog.records if r.exc_info]


async def test_conversation_created_with_metadata_and_reused_across_turns(fake, backend):
    meta = {"platform": "slack", "channel": "C1", "user_id": "U1", "user_name": "n" * 600}
    conv = await backend.create_conversation(meta)
    stored = fake.conversations[conv]["metadata"]
    assert stored["platform"] == "slack" and stored["channel"] == "C1" and len(stored["user_name"]) == 512

    for text in ("Hi", "What did I say?"):
        events, err = await converse(backend, Turn(assistant=FOOD, conversation_id=conv, text=text, user_id="U1"))
        assert err is None and text_of(events) == f"You said: {text}"

    first, second = fake.response_requests()
    for body in (first, second):
        assert body["conversation"] == conv and body["prompt_cache_key"] == conv
        assert body["instructions"] == "You are a food expert."          # sent every turn
        assert body["context_management"] == [{"type": "compaction"}] and "truncation" not in body
        assert body["stream"] is True and body["model"] == "gpt-test"
        assert body["include"] == ["code_interpreter_call.outputs", "file_search_call.results"]
        assert body["safety_identifier"] == safety_identifier("U1") and "U1" not in body["safety_identifier"]
    assert second["input"] == [{"type": "message", "role": "user",
                                "content": [{"type": "input_text", "text": "What did I say?"}]}]
    # the service side history holds both turns, in order
    roles = [(i["role"], i["content"][0]["text"]) for i in fake.conversation_items[conv]]
    assert roles == [("user", "Hi"), ("assistant", "You said: Hi"),
                     ("user", "What did I say?"), ("assistant", "You said: What did I say?")]


async def test_a_server_without_compaction_gets_truncation_instead_from_then_on(fake, client, registry):
    fake.unsupported = {"context_management"}           # e.g. an OpenAI-compatible proxy
    backend = OpenAIBackend(client, registry, compact_threshold=50000)
    for text in ("first", "second"):
        events, err = await converse(backend, await new_turn(backend, FOOD, text))
        assert err is None and text_of(events) == f"You said: {text}"
    refused, first, second = fake.response_requests()
    assert refused["context_management"] == [{"type": "compaction", "compact_threshold": 50000}]
    assert "context_management" not in first and first["truncation"] == "auto"
    assert "context_management" not in second and second["truncation"] == "auto"   # remembered


async def test_images_go_along_as_input_image_parts(fake, backend):
    turn = await new_turn(backend, FOOD, "What dish is this?",
                          images=(InputImage(file_id="file-img1"), InputImage(data_url="data:image/png;base64,AAAA")))
    events, err = await converse(backend, turn)
    assert err is None
    content = fake.response_requests()[0]["input"][0]["content"]
    assert content[1] == {"type": "input_image", "detail": "auto", "file_id": "file-img1"}
    assert content[2]["image_url"] == "data:image/png;base64,AAAA"


async def test_model_options_are_sent(fake, backend):
    a = AssistantConfig(name="x", model="gpt-test", temperature=0.2, top_p=0.9, max_output_tokens=500,
                        reasoning_effort="low")
    await converse(backend, await new_turn(backend, a, "hello"))
    body = fake.response_requests()[0]
    assert (body["temperature"], body["top_p"], body["max_output_tokens"]) == (0.2, 0.9, 500)
    assert body["reasoning"] == {"effort": "low"} and "instructions" not in body


# ---- function tools ------------------------------------------------------------------------------------------


async def test_weather_function_called_with_shanghai_and_result_reaches_the_model(fake, backend, registry):
    fake.script(ScriptedResponse(function_calls=(FunctionCall("query_weather", '{"city":"上海"}', "call_sh"),)),
                ScriptedResponse(text="上海: 25°C and sunny."))
    events, err = await converse(backend, await new_turn(backend, WEATHER, "上海天气怎么样?"))
    assert err is None
    assert text_of(events) == "上海: 25°C and sunny."
    assert registry.calls == [("query_weather", '{"city":"上海"}')]

    first, second = fake.response_requests()
    assert [t["name"] for t in first["tools"] if t["type"] == "function"] == ["query_weather"]
    # only the output goes back: the conversation already holds the call
    assert len(second["input"]) == 1
    out = second["input"][0]
    assert out["type"] == "function_call_output" and out["call_id"] == "call_sh"
    assert json.loads(out["output"]) == {"city": "上海", "temperature": 25, "condition": "Sunny"}

    updates = [e for e in events if isinstance(e, ToolUpdate)]
    assert {u.title for u in updates} == {"Calling query_weather"}
    assert any(u.detail == '{"city":"上海"}' for u in updates)
    assert updates[-1].status == "done" and '"temperature": 25' in updates[-1].detail
    done = events[-1]
    assert isinstance(done, Completed) and done.usage.tool_calls == 1
    assert done.usage.input_tokens == 100          # summed over both rounds (50 + 50)


async def test_unknown_function_gets_an_error_text_and_the_answer_continues(fake, backend, registry):
    fake.script(ScriptedResponse(function_calls=(FunctionCall("launch_rockets", "{}"),)))
    events, err = await converse(backend, await new_turn(backend, WEATHER, "launch"))
    assert err is None
    assert registry.calls == []
    sent = json.loads(fake.response_requests()[1]["input"][0]["output"])
    assert "launch_rockets" in sent["error"] and "query_weather" in sent["error"]
    assert text_of(events).startswith("The tool returned: ") and "launch_rockets" in text_of(events)


async def test_tool_rounds_are_capped_with_a_readable_error(fake, backend):
    fake.responder = lambda body: ScriptedResponse(function_calls=(FunctionCall("query_weather", '{"city":"x"}'),))
    a = WEATHER.model_copy(update={"max_tool_rounds": 2})
    events, err = await converse(backend, await new_turn(backend, a, "loop forever"))
    assert err is not None and "2 rounds" in err.message
    assert len(fake.response_requests()) == 3


# ---- hosted tools ------------------------------------------------------------------------------------------


async def test_code_interpreter_shows_code_and_logs_and_delivers_the_generated_file(fake, backend, client):
    data_file = await client.files.create(file=("nums.csv", b"n\n1\n2\n", "text/csv"), purpose="user_data")
    png = b"\x89PNG\r\n\x1a\nfake-plot"
    code = "a, b = 0, 1\nfor _ in range(20):\n    a, b = b, a + b\nprint(a)\n"
    fake.script(ScriptedResponse(code=CodeRun(code, logs="6765\n", file=GeneratedFile("fib.png", png)),
                                 text="The 20th Fibonacci number is 6765."))
    turn = await new_turn(backend, MATH, "What is the 20th Fibonacci number?", hosted=HostedInputs(container_file_ids=(data_file.id,)))
    events, err = await converse(backend, turn)
    assert err is None
    assert text_of(events) == "The 20th Fibonacci number is 6765."
    updates = [e for e in events if isinstance(e, ToolUpdate) and e.tool != "file"]
    assert all(u.tool == "code_interpreter" and u.title == "Running code" for u in updates)
    assert any(u.status == "running" and u.detail == code for u in updates)
    assert updates[-1].status == "done" and updates[-1].detail == "6765\n"
    files = [e for e in events if isinstance(e, OutboundFile)]
    assert files == [OutboundFile("fib.png", png, "image/png")] and files[0].data == png
    # fetching the file from the container and posting it is a step of its own, shown like a tool's
    step = [(e.status, e.title) if isinstance(e, ToolUpdate) else e.name for e in events
            if isinstance(e, OutboundFile) or (isinstance(e, ToolUpdate) and e.tool == "file")]
    assert step == [("running", "Posting fib.png"), "fib.png", ("done", "Posting fib.png")]
    tool = fake.response_requests()[0]["tools"][0]
    assert tool == {"type": "code_interpreter", "container": {"type": "auto", "file_ids": [data_file.id]}}
    # the user's file reached the container
    (container,) = fake.containers.values()
    assert any(obj["path"] == "/mnt/data/nums.csv" for obj, _ in container.files.values())
    done = events[-1]
    assert done.usage.tool_calls == 1 and done.usage.code_interpreter_sessions == 1


async def test_expired_container_file_becomes_a_notice_not_a_crash(fake, backend, monkeypatch):
    fake.script(ScriptedResponse(code=CodeRun("plot()", logs="", file=GeneratedFile("plot.png", b"x")), text="Done."))
    real_build = fake._build

    def build_then_expire(*a: Any, **kw: Any):
        out = real_build(*a, **kw)
        for c in fake.containers.values():
            c.expired = True
        return out
    monkeypatch.setattr(fake, "_build", build_then_expire)
    events, err = await converse(backend, await new_turn(backend, MATH, "plot it"))
    assert err is None
    assert not [e for e in events if isinstance(e, OutboundFile)]
    assert "Could not download the file plot.png" in text_of(events)


async def test_file_search_citation_numbered_by_file(fake, backend):
    fake.script(ScriptedResponse(file_search=FileSearchHit("file-hb", "handbook.md", query="holidays"),
                                 text="Staff get 25 days of leave."))
    turn = await new_turn(backend, DOCS, "How many holidays?", hosted=HostedInputs(vector_store_ids=("vs_docs",)))
    events, err = await converse(backend, turn)
    assert err is None
    assert text_of(events) == "Staff get 25 days of leave."
    assert [e for e in events if isinstance(e, Citation)] == [Citation(1, "handbook.md", "file-hb")]
    assert any(isinstance(e, ToolUpdate) and e.title == "Searching files" for e in events)
    tool = fake.response_requests()[0]["tools"][0]
    assert tool == {"type": "file_search", "vector_store_ids": ["vs_docs"], "max_num_results": 5,
                    "ranking_options": {"score_threshold": 0.3}}


async def test_generated_image_arrives_as_png(fake, backend):
    a = AssistantConfig(name="art", model="gpt-test", tools=[{"type": "image_generation"}])
    fake.script(ScriptedResponse(image_png=b"\x89PNGimage", text="Here you go."))
    events, err = await converse(backend, await new_turn(backend, a, "draw a cat"))
    assert err is None
    (f,) = [e for e in events if isinstance(e, OutboundFile)]
    assert f.data == b"\x89PNGimage" and f.mime == "image/png" and f.name.endswith(".png")
    assert fake.response_requests()[0]["tools"] == [{"type": "image_generation"}]


async def test_refusal_is_shown(fake, backend):
    fake.script(ScriptedResponse(refusal="I can't help with that."))
    events, err = await converse(backend, await new_turn(backend, FOOD, "something bad"))
    assert err is None and text_of(events) == "I can't help with that."


# ---- errors ---------------------------------------------------------------------------------------------------


async def test_rate_limit_is_retried_after_retry_after_and_text_is_not_duplicated(fake, backend, sleeps):
    fake.fail_next(429, retry_after="2")
    events, err = await converse(backend, await new_turn(backend, FOOD, "hello"))
    assert err is None
    assert text_of(events) == "You said: hello"
    assert sleeps == [2.0]
    assert len(fake.response_requests()) == 2


async def test_server_errors_give_up_with_a_readable_message(fake, backend, sleeps):
    fake.fail_next(500, times=10)
    events, err = await converse(backend, await new_turn(backend, FOOD, "hello"))
    assert err is not None and "server error (500)" in err.message
    assert text_of(events) == "" and len(sleeps) == 3
    assert len(fake.response_requests()) == 4      # first try + 3 retries
    assert sleeps == sorted(sleeps)                  # backoff grows


async def test_response_failed_ends_with_the_models_error(fake, backend):
    fake.script(ScriptedResponse(text="Partial", fail=("server_error", "The model crashed while thinking.")))
    events, err = await converse(backend, await new_turn(backend, FOOD, "hello"))
    assert err is not None and "The model crashed while thinking." in err.message
    assert text_of(events) == "Partial"


async def test_error_event_ends_with_its_message(fake, backend):
    fake.script(ScriptedResponse(error=("invalid_prompt", "Your prompt was flagged.")))
    events, err = await converse(backend, await new_turn(backend, FOOD, "hello"))
    assert err is not None and "Your prompt was flagged." in err.message


async def test_incomplete_keeps_the_text_and_says_it_was_cut(fake, backend):
    fake.script(ScriptedResponse(text="A long story that never", incomplete="max_output_tokens"))
    events, err = await converse(backend, await new_turn(backend, FOOD, "tell me a story"))
    assert text_of(events) == "A long story that never"
    assert err is not None and err.message == "The answer was cut short: max_output_tokens reached"


async def test_tokens_spent_on_a_cut_short_answer_are_still_reported(fake, backend):
    fake.script(ScriptedResponse(text="A long story", incomplete="max_output_tokens", input_tokens=300,
                                 cached_tokens=100, output_tokens=64))
    events, err = await converse(backend, await new_turn(backend, FOOD, "tell me a story"))
    [done] = [e for e in events if isinstance(e, Completed)]
    assert (done.usage.input_tokens, done.usage.cached_tokens, done.usage.output_tokens) == (300, 100, 64)
    assert err is not None


async def test_stream_cut_mid_answer_is_not_retried(fake, backend):
    fake.script(ScriptedResponse(text="one two three four five six", delta_size=4, cut_after=3))
    events, err = await converse(backend, await new_turn(backend, FOOD, "count"))
    assert text_of(events) == "one two thre"
    assert err is not None and err.message == "The connection to the model was lost mid-answer"
    assert len(fake.response_requests()) == 1


async def test_stream_ending_without_terminal_event_is_reported(fake, backend):
    fake.script(ScriptedResponse(text="one two three", delta_size=4, cut_after=2, cut_mode="eof"))
    events, err = await converse(backend, await new_turn(backend, FOOD, "count"))
    assert text_of(events) == "one two "
    assert err is not None and "lost mid-answer" in err.message


async def test_stream_cut_before_any_text_is_retried(fake, backend, sleeps):
    fake.script(ScriptedResponse(text="never shown", cut_after=0))
    events, err = await converse(backend, await new_turn(backend, FOOD, "hello"))
    assert err is None and text_of(events) == "You said: hello" and len(sleeps) == 1


async def test_bad_api_key_is_reported_without_the_key(fake, registry):
    c = AsyncOpenAI(base_url=fake.base_url, api_key="bad-key-123", max_retries=0)
    backend = OpenAIBackend(c, registry)
    with pytest.raises(BackendError) as info:
        await backend.create_conversation({})
    assert info.value.message == "OpenAI rejected the API key (401)"
    await c.close()


async def test_bad_request_carries_the_api_message(fake, backend):
    turn = Turn(assistant=FOOD, conversation_id="conv_missing", text="hi")
    events, err = await converse(backend, turn)
    assert err is not None and "conv_missing" in err.message and "404" in err.message


# ---- client construction ---------------------------------------------------------------------------------------


def test_missing_or_empty_key_is_a_clear_error(monkeypatch):
    for value in (None, ""):
        if value is None:
            monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        else:
            monkeypatch.setenv("OPENAI_API_KEY", value)
        with pytest.raises(BackendError, match="OPENAI_API_KEY is not set"):
            make_openai_client(OpenAIBackendConfig())


def test_base_url_from_env_wins_and_options_come_from_config(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    c = make_openai_client(OpenAIBackendConfig(base_url="http://elsewhere/v1", timeout=7, max_retries=1))
    assert str(c.base_url).startswith("http://127.0.0.1:9/v1")
    assert c.max_retries == 1 and c.timeout == 7
    monkeypatch.setenv("OPENAI_BASE_URL", "")
    c2 = make_openai_client(OpenAIBackendConfig(base_url="http://elsewhere/v1"))
    assert str(c2.base_url).startswith("http://elsewhere/v1")


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_a_stalled_stream_never_hangs_the_conversation(fake, registry, transport):
    http = DefaultAioHttpClient(timeout=0.2) if transport == "aiohttp" else None
    c = AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0, timeout=0.2, http_client=http)
    backend = OpenAIBackend(c, registry, max_retries=0)
    fake.script(ScriptedResponse(text="too late", first_delay=1.0))
    events, err = await converse(backend, await new_turn(backend, FOOD, "hello"))
    assert text_of(events) == ""
    assert err is not None and "timed out" in err.message
    await c.close()


async def test_spare_conversations_let_a_new_thread_start_at_once_and_still_carry_their_metadata(fake):
    client = AsyncOpenAI(base_url=fake.base_url, api_key="sk-test")
    backend = OpenAIBackend(client, StubRegistry(), spare_conversations=2)
    first = await backend.create_conversation({"channel": "C1"})      # nothing prepared yet: made directly
    assert fake.conversations[first]["metadata"] == {"channel": "C1"}
    for _ in range(200):                                              # the pool fills in the background
        if len(fake.conversations) == 3:
            break
        await asyncio.sleep(0.01)
    spares = set(fake.conversations) - {first}
    assert len(spares) == 2
    second = await backend.create_conversation({"channel": "C2", "user_id": "U2"})
    assert second in spares                                           # taken, not created
    events, err = await converse(backend, Turn(assistant=FOOD, conversation_id=second, text="hi"))
    assert err is None and text_of(events) == "You said: hi"
    assert fake.conversations[second]["metadata"] == {"channel": "C2", "user_id": "U2"}
    await backend.aclose()
    assert set(fake.conversations) == {first, second}  # the spare still unused was deleted, not left behind
    await client.close()


async def test_new_threads_at_once_open_one_connection_each_for_their_conversation_and_answer(fake):
    # at OpenAI every new connection is a TLS handshake: a new thread's create hands its connection on to its answer
    client = AsyncOpenAI(base_url=fake.base_url, api_key="sk-test")
    backend = OpenAIBackend(client, StubRegistry(), spare_conversations=0)
    conversations = await asyncio.gather(*(backend.create_conversation({"channel": f"C{i}"}) for i in range(5)))
    answers = await asyncio.gather(*(converse(backend, Turn(assistant=FOOD, conversation_id=c, text=f"hi {i}"))
                                     for i, c in enumerate(conversations)))
    assert [text_of(events) for events, _ in answers] == [f"You said: hi {i}" for i in range(5)]
    ports = {(r.path, port) for r, port in zip(fake.requests, fake.client_ports) if r.method == "POST"}
    created = {port for path, port in ports if path == "/v1/conversations"}
    answered = {port for path, port in ports if path == "/v1/responses"}
    assert len(created) == 5 and answered == created          # five connections in all, not ten
    await backend.aclose()
    await client.close()


async def test_after_a_burst_of_new_threads_the_next_burst_of_that_size_starts_from_spares(fake, tmp_path):
    from core.store.sqlite import SqliteStore
    client = AsyncOpenAI(base_url=fake.base_url, api_key="sk-test")
    async with SqliteStore(tmp_path / "tb.db") as store:
        backend = OpenAIBackend(client, StubRegistry(), spare_conversations=2, spare_ledger=store)
        pool = fake.base_url.rstrip("/")
        first = await asyncio.gather(*(backend.create_conversation({"channel": f"C{i}"}) for i in range(12)))
        for _ in range(3000):   # once the burst is over the pool grows to its size, in the background
            if await store.count_spares(pool) >= 12:
                break
            await asyncio.sleep(0.01)
        spares = set(fake.conversations) - set(first)
        assert await store.count_spares(pool) == len(spares) == 12
        second = await asyncio.gather(*(backend.create_conversation({"channel": f"D{i}"}) for i in range(12)))
        assert set(second) == spares                    # every thread of the second burst started from a spare
        events, err = await converse(backend, Turn(assistant=FOOD, conversation_id=second[5], text="hi"))
        assert err is None and text_of(events) == "You said: hi"
        assert fake.conversations[second[5]]["metadata"] == {"channel": "D5"}
        await backend.aclose()
        assert set(fake.conversations) == set(first) | set(second)   # the spares made since were deleted
        assert await store.count_spares(pool) == 0
    await client.close()
