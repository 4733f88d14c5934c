"""A text answer's own output_item and completed events are read from the raw JSON (core/backends/responses/events.py
read_plain), every other event through the SDK's types: for every event the OpenAI stand-in streams — text, tool
calls, searches with citations, code, images, failures — reading it plainly either declines or leaves the round
exactly as the typed EventMapper does, with nothing to show."""
from __future__ import annotations

import pytest

from bots.standins.openai_answer import build_answer
from bots.standins.openai_script import (CodeRun, DefaultUsage, FileSearchHit, FunctionCall, ScriptedResponse,
                                         WebSearch, WebSource)
from bots.standins.openai_storage import Container
from core.backends.responses.events import DELTA, EVENT_CLASSES, PLAIN, EventMapper, Round, TurnState, read_plain

BODY = {"model": "gpt-4.1-mini", "input": [{"role": "user", "content": "hi"}], "store": False}
TEXT = "Pho is a Vietnamese noodle soup. See the sources."

ANSWERS = {
    "text": ScriptedResponse(text=TEXT, input_tokens=120, cached_tokens=100, output_tokens=14),
    "function call": ScriptedResponse(function_calls=(FunctionCall("query_weather", '{"city":"Hanoi"}'),)),
    "web search": ScriptedResponse(text=TEXT, web_search=WebSearch("pho", (WebSource(
        "Pho", "https://example.com/pho", cites="noodle soup"),))),
    "file search": ScriptedResponse(text=TEXT, file_search=FileSearchHit("file-1", "pho.pdf")),
    "code": ScriptedResponse(text=TEXT, code=CodeRun("print(1)", logs="1")),
    "image": ScriptedResponse(text=TEXT, image_png=b"\x89PNG fake"),
    "failed": ScriptedResponse(text=TEXT, fail=("server_error", "boom")),
    "incomplete": ScriptedResponse(text=TEXT, incomplete="max_output_tokens"),
}


def events_of(plan: ScriptedResponse) -> list[dict]:
    answer = build_answer(BODY, plan, usage=DefaultUsage(), now=1_700_000_000,
                          container_for=lambda body: Container("cntr_1"))
    return [e for e in answer.events if isinstance(e, dict)]


async def typed(event: dict) -> tuple[Round, list, BaseException | None]:
    rnd, out = Round(), []
    try:
        async for ev in EventMapper("the model").handle(EVENT_CLASSES[event["type"]].model_validate(event), rnd,
                                                        TurnState()):
            out.append(ev)
    except Exception as exc:  # noqa: BLE001 - a failure event: the typed reading raises
        return rnd, out, exc
    return rnd, out, None


@pytest.mark.parametrize("name", sorted(ANSWERS))
async def test_read_plainly_or_declined_and_then_typed(name):
    for event in events_of(ANSWERS[name]):
        kind = event["type"]
        if kind == DELTA or kind not in EVENT_CLASSES:
            continue
        plain = Round()
        handled = kind in PLAIN and read_plain(kind, event, plain)
        rnd, out, exc = await typed(event)
        if handled:
            assert out == [] and exc is None, (name, kind)
            assert (plain.terminal, plain.response_id, plain.usage) == (rnd.terminal, rnd.response_id, rnd.usage)
            assert plain.calls == rnd.calls == [] and plain.text == rnd.text == [] and not plain.visible


async def test_a_plain_text_answer_needs_no_typed_event():
    kinds = [e["type"] for e in events_of(ANSWERS["text"]) if e["type"] in PLAIN]
    assert sorted(set(kinds)) == sorted(PLAIN)
    rnd = Round()
    assert all(read_plain(e["type"], e, rnd) for e in events_of(ANSWERS["text"]) if e["type"] in PLAIN)
    assert rnd.terminal and rnd.response_id.startswith("resp_")
    assert (rnd.usage.input_tokens, rnd.usage.cached_tokens, rnd.usage.output_tokens) == (120, 100, 14)


def test_a_completed_event_not_shaped_as_expected_is_left_to_the_typed_reading():
    completed = next(e for e in events_of(ANSWERS["text"]) if e["type"] == "response.completed")
    for broken in ({**completed, "response": None},
                   {**completed, "response": {**completed["response"], "usage": {"input_tokens": "many"}}},
                   {**completed, "response": {**completed["response"], "output": [{"no": "type"}]}}):
        assert read_plain("response.completed", broken, Round()) is False
