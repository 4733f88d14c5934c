"""The stand-in OpenAI server speaks the official wire format, and accepts what the real SDK sends.

Every event and object the fake emits is validated against the official OpenAPI schema (the subset in
bots/standins/specs/openai/components.json, see extract.py there for its provenance).
"""
from __future__ import annotations

import json
from typing import Any

import jsonschema
import openai
import pytest
from openai import AsyncOpenAI
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from bots.standins import SPECS
from bots.standins.openai_server import (CodeRun, FakeOpenAI, FileSearchHit, FunctionCall, GeneratedFile,
                                       ScriptedResponse)

_SPEC = json.loads((SPECS / "openai" / "components.json").read_text())
_REGISTRY = Registry().with_resource("urn:openai", Resource.from_contents(_SPEC, default_specification=DRAFT202012))
_SCHEMAS = _SPEC["components"]["schemas"]
# stream event type -> schema name, read from the spec itself (dispatch on `type` first: the 58-way anyOf
# of ResponseStreamEvent gives useless error messages)
_EVENT_SCHEMA = {s["properties"]["type"]["enum"][0]: name for name, s in _SCHEMAS.items()
                 if name.endswith("Event") and "type" in s.get("properties", {})
                 and "enum" in s["properties"]["type"]}


def check(obj: Any, schema: str) -> None:
    validator = jsonschema.Draft202012Validator({"$ref": f"urn:openai#/components/schemas/{schema}"},
                                                registry=_REGISTRY)
    errors = sorted(validator.iter_errors(obj), key=lambda e: e.path)
    assert not errors, f"{schema}: " + "; ".join(f"{list(e.path)}: {e.message[:200]}" for e in errors[:5])


@pytest.fixture
async def fake():
    async with FakeOpenAI() as f:
        yield f


@pytest.fixture
async def client(fake):
    c = AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0, timeout=10)
    yield c
    await c.close()


async def raw_events(client: AsyncOpenAI, **params: Any) -> list[dict[str, Any]]:
    """The SSE body as the wire carries it, checking the framing: `event: <type>` then `data: <json>`."""
    async with client.responses.with_streaming_response.create(stream=True, **params) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        body = (await resp.read()).decode()
    events = []
    for block in body.split("\n\n"):
        if not block.strip():
            continue
        event_line, data_line = block.split("\n")
        assert event_line.startswith("event: ") and data_line.startswith("data: ")
        ev = json.loads(data_line[len("data: "):])
        assert ev["type"] == event_line[len("event: "):]
        events.append(ev)
    return events


SCENARIOS = {
    "text": ScriptedResponse(text="Hello there, general Kenobi.", delta_size=4),
    "function_call": ScriptedResponse(function_calls=(FunctionCall("query_weather", '{"city":"上海"}'),)),
    "code_interpreter": ScriptedResponse(code=CodeRun("print(6765)", logs="6765\n",
                                                      file=GeneratedFile("fib.png", b"PNG")), text="6765"),
    "file_search": ScriptedResponse(file_search=FileSearchHit("file-1", "handbook.md"), text="25 days."),
    "image": ScriptedResponse(image_png=b"\x89PNG", text="A cat."),
    "refusal": ScriptedResponse(refusal="I can't help with that."),
    "failed": ScriptedResponse(text="Par", fail=("server_error", "boom")),
    "incomplete": ScriptedResponse(text="Too long", incomplete="max_output_tokens"),
    "error": ScriptedResponse(error=("server_error", "boom")),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_every_streamed_event_matches_the_official_schema(fake, client, name):
    conv = await client.conversations.create(metadata={"platform": "test"})
    fake.script(SCENARIOS[name])
    events = await raw_events(client, model="gpt-test", conversation=conv.id, input="hi",
                              tools=[{"type": "code_interpreter", "container": {"type": "auto", "file_ids": []}}])
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "response.created"
    for ev in events:
        check(ev, _EVENT_SCHEMA[ev["type"]])
    terminal = {"text": "response.completed", "failed": "response.failed", "incomplete": "response.incomplete",
                "error": "error"}.get(name, "response.completed")
    assert events[-1]["type"] == terminal


async def test_sdk_stream_helper_accumulates_the_same_answer(fake, client):
    fake.script(ScriptedResponse(text="Pho is a soup.", delta_size=3))
    async with client.responses.stream(model="gpt-test", input="What is pho?") as stream:
        deltas = [ev.delta async for ev in stream if ev.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(deltas) == "Pho is a soup." == final.output_text
    assert final.usage.output_tokens == len(deltas)


async def test_non_streamed_response_and_conversation_objects_match_the_schema(fake, client):
    conv = await client.conversations.create(metadata={"platform": "slack", "channel": "C1"},
                                             items=[{"type": "message", "role": "user", "content": "earlier"}])
    raw = await client.conversations.with_raw_response.retrieve(conv.id)
    check(json.loads(raw.text), "ConversationResource")
    resp = await client.responses.with_raw_response.create(model="gpt-test", conversation=conv.id,
                                                           input=[{"role": "user", "content": "hi"}])
    body = json.loads(resp.text)
    check(body, "Response")
    assert resp.parse().output_text == "You said: hi"
    items = await client.conversations.items.with_raw_response.list(conv.id, order="asc")
    page = json.loads(items.text)
    check(page, "ConversationItemList")
    assert [(i["role"], i["content"][0]["text"]) for i in page["data"]] == [
        ("user", "earlier"), ("user", "hi"), ("assistant", "You said: hi")]
    deleted = await client.conversations.with_raw_response.delete(conv.id)
    check(json.loads(deleted.text), "DeletedConversationResource")
    with pytest.raises(openai.NotFoundError):
        await client.conversations.retrieve(conv.id)


async def test_function_call_then_output_continues_and_unknown_call_ids_are_rejected(fake, client):
    conv = await client.conversations.create()
    fake.script(ScriptedResponse(function_calls=(FunctionCall("query_weather", '{"city":"上海"}', "call_1"),)))
    first = await client.responses.create(model="gpt-test", conversation=conv.id, input="weather in 上海?")
    (call,) = first.output
    assert (call.type, call.name, call.call_id) == ("function_call", "query_weather", "call_1")
    with pytest.raises(openai.BadRequestError, match="call_zzz"):
        await client.responses.create(model="gpt-test", conversation=conv.id,
                                      input=[{"type": "function_call_output", "call_id": "call_zzz", "output": "{}"}])
    second = await client.responses.create(
        model="gpt-test", conversation=conv.id,
        input=[{"type": "function_call_output", "call_id": "call_1", "output": '{"temperature": 25}'}])
    assert second.output_text == 'The tool returned: {"temperature": 25}'


async def test_a_stored_response_is_kept_with_its_input_and_a_conversation_starts_from_its_items(fake, client):
    # `store` is true unless the request says otherwise: the response and its input items can be read back, and a
    # conversation can be made from them (its function call then waits for its output there).
    fake.script(ScriptedResponse(function_calls=(FunctionCall("query_weather", '{"city":"上海"}', "call_1"),)))
    first = await client.responses.create(model="gpt-test", input="weather in 上海?")
    kept = await client.responses.retrieve(first.id)
    assert [o.type for o in kept.output] == ["function_call"]
    inputs = [i async for i in client.responses.input_items.list(first.id, order="asc")]
    assert [(i.type, i.role, i.content[0].text) for i in inputs] == [("message", "user", "weather in 上海?")]
    items = [i.model_dump(exclude_none=True) for i in inputs] + [o.model_dump(exclude_none=True) for o in kept.output]
    for item in items:
        check(item, "Item")   # (the spec's InputItem: Item, or the easy message form — this matches both)
    conv = await client.conversations.create(items=items, metadata={"teambridge": "test"})
    second = await client.responses.create(
        model="gpt-test", conversation=conv.id,
        input=[{"type": "function_call_output", "call_id": "call_1", "output": '{"temperature": 25}'}])
    assert second.output_text == 'The tool returned: {"temperature": 25}'
    assert fake.contexts[-1][0]["content"][0]["text"] == "weather in 上海?"
    with pytest.raises(openai.BadRequestError, match="items"):
        await client.conversations.create(items=[{"type": "no_such_item"}])
    # `store: false` keeps nothing; a stored response can be deleted
    unkept = await client.responses.create(model="gpt-test", input="hi", store=False)
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(unkept.id)
    await client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.input_items.list(first.id)


async def test_requests_the_sdk_would_not_send_are_rejected_like_the_api(fake, client):
    with pytest.raises(openai.BadRequestError, match="Unknown parameter"):
        await client.responses.create(model="gpt-test", input="hi", extra_body={"temprature": 0.5})
    with pytest.raises(openai.BadRequestError) as info:
        await client.responses.create(model="gpt-test", input="hi", tools=[{"type": "no_such_tool"}])
    check(info.value.body and {"error": info.value.body}, "ErrorResponse")
    with pytest.raises(openai.NotFoundError):
        await client.responses.create(model="gpt-test", input="hi", conversation="conv_nope")


async def test_http_failures_on_demand_then_success(fake, client):
    fake.fail_next(429, times=1, retry_after="0.01")
    retrying = client.with_options(max_retries=1)
    r = await retrying.responses.create(model="gpt-test", input="hi")
    assert r.output_text == "You said: hi"
    fake.fail_next(500, times=2)
    with pytest.raises(openai.InternalServerError):
        await client.responses.create(model="gpt-test", input="hi")
    with pytest.raises(openai.InternalServerError):
        await client.responses.create(model="gpt-test", input="hi")
    assert (await client.responses.create(model="gpt-test", input="hi")).output_text == "You said: hi"
    statuses = [r.path for r in fake.requests if r.path == "/v1/responses"]
    assert len(statuses) == 5


async def test_cut_stream_raises_in_the_sdk(fake, client):
    fake.script(ScriptedResponse(text="abcdefghij", delta_size=2, cut_after=2))
    stream = await client.responses.create(model="gpt-test", input="hi", stream=True)
    seen = []
    with pytest.raises(Exception):
        async for ev in stream:
            seen.append(ev.type)
    assert "response.completed" not in seen and seen.count("response.output_text.delta") == 2


async def test_usage_numbers_are_configurable(fake, client):
    fake.script(ScriptedResponse(text="x", input_tokens=321, cached_tokens=300, output_tokens=9))
    r = await client.responses.create(model="gpt-test", input="hi")
    assert (r.usage.input_tokens, r.usage.input_tokens_details.cached_tokens, r.usage.output_tokens) == (321, 300, 9)


async def test_files_upload_list_content_delete(fake, client):
    f = await client.files.create(file=("notes.txt", b"hello", "text/plain"), purpose="assistants")
    raw = await client.files.with_raw_response.retrieve(f.id)
    check(json.loads(raw.text), "OpenAIFile")
    assert fake.requests[-2].body == {"purpose": "assistants", "filename": "notes.txt"}
    assert [x.id async for x in client.files.list()] == [f.id]
    assert (await client.files.content(f.id)).content == b"hello"
    assert (await client.files.delete(f.id)).deleted
    with pytest.raises(openai.NotFoundError):
        await client.files.retrieve(f.id)


async def test_vector_store_files_poll_to_completed_or_failed(fake, client):
    vs = await client.vector_stores.create(name="kb-docs", metadata={"assistant": "docs"})
    check(json.loads((await client.vector_stores.with_raw_response.retrieve(vs.id)).text), "VectorStoreObject")
    good = await client.vector_stores.files.upload_and_poll(vector_store_id=vs.id,
                                                            file=("handbook.md", b"# Leave\n25 days"))
    assert good.status == "completed" and good.last_error is None
    bad_file = await client.files.create(file=("scan.bin", b"\0\1", "application/octet-stream"),
                                         purpose="assistants")
    fake.fail_file(bad_file.id)
    bad = await client.vector_stores.files.create_and_poll(vector_store_id=vs.id, file_id=bad_file.id)
    assert bad.status == "failed" and bad.last_error.code == "unsupported_file"
    raw = await client.vector_stores.files.with_raw_response.retrieve(bad_file.id, vector_store_id=vs.id)
    check(json.loads(raw.text), "VectorStoreFileObject")
    polls = [r for r in fake.requests if r.method == "GET" and r.path.endswith(f"/files/{bad_file.id}")]
    assert len(polls) >= 2      # in_progress first, then failed

    batch = await client.vector_stores.file_batches.upload_and_poll(
        vs.id, files=[("a.md", b"A"), ("b.md", b"B")])
    assert batch.status == "completed" and batch.file_counts.completed == 2
    raw = await client.vector_stores.file_batches.with_raw_response.retrieve(batch.id, vector_store_id=vs.id)
    check(json.loads(raw.text), "VectorStoreFileBatchObject")
    listed = [f.id async for f in client.vector_stores.file_batches.list_files(batch.id, vector_store_id=vs.id)]
    assert len(listed) == 2
    assert (await client.vector_stores.retrieve(vs.id)).file_counts.total == 4


async def test_container_files_listed_downloaded_and_gone_when_expired(fake, client):
    fake.script(ScriptedResponse(code=CodeRun("plot()", logs="", file=GeneratedFile("plot.png", b"\x89PNGdata")),
                                 text="Here is the plot."))
    r = await client.responses.create(model="gpt-test", input="plot",
                                      tools=[{"type": "code_interpreter", "container": {"type": "auto"}}])
    (ann,) = r.output[-1].content[0].annotations
    assert ann.type == "container_file_citation" and ann.filename == "plot.png"
    raw = await client.containers.files.with_raw_response.list(ann.container_id)
    check(json.loads(raw.text), "ContainerFileListResource")
    content = await client.containers.files.content.retrieve(ann.file_id, container_id=ann.container_id)
    assert content.content == b"\x89PNGdata"
    fake.expire_container(ann.container_id)
    with pytest.raises(openai.NotFoundError):
        await client.containers.files.content.retrieve(ann.file_id, container_id=ann.container_id)


async def test_responder_brain_decides_by_input(fake, client):
    def brain(body: dict[str, Any]) -> ScriptedResponse:
        from bots.standins.openai_server import last_user_text
        if "Fibonacci" in last_user_text(body):
            return ScriptedResponse(code=CodeRun("print(6765)", logs="6765\n"), text="6765")
        return ScriptedResponse(text="no idea")
    fake.responder = brain
    r = await client.responses.create(model="gpt-test", input="the 20th Fibonacci number?")
    assert [o.type for o in r.output] == ["code_interpreter_call", "message"] and r.output_text == "6765"
    assert (await client.responses.create(model="gpt-test", input="hm")).output_text == "no idea"


def test_the_schema_check_is_not_vacuous():
    delta = {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0,
             "delta": "hi", "sequence_number": 3, "logprobs": []}
    check(delta, "ResponseTextDeltaEvent")
    with pytest.raises(AssertionError, match="logprobs"):
        check({k: v for k, v in delta.items() if k != "logprobs"}, "ResponseTextDeltaEvent")
    # exclude_none-style dumps drop the spec's required-but-nullable fields: the check must notice
    response = {"id": "resp_1", "object": "response", "created_at": 1, "model": "gpt-test", "output": [],
                "parallel_tool_calls": True, "tool_choice": "auto", "tools": [], "status": "completed",
                "error": None, "incomplete_details": None, "instructions": None, "metadata": {},
                "temperature": None, "top_p": None}
    check(response, "Response")
    with pytest.raises(AssertionError, match="error"):
        check({k: v for k, v in response.items() if k != "error"}, "Response")
