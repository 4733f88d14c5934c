"""What operators hear about each message: the ChatService's observer, the one log line, the Prometheus counts."""
from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry

from core.admin.metrics import Metrics
from core.admin.observe import Observers, TurnLog, TurnReport
from core.chat.service import ChatService
from core.config.schema import AssistantConfig, Config
from core.model import Author, BackendError, Completed, InboundMessage, TextDelta, ToolUpdate, Usage
from core.store.sqlite import SqliteStore
from tests.support.ports import RecordingTarget, ScriptedBackend


class Heard:
    def __init__(self) -> None:
        self.started: list[tuple[str, str]] = []
        self.reports: list[TurnReport] = []
        self.errors: list[str] = []

    def turn_started(self, platform, assistant):
        self.started.append((platform, assistant))

    def turn_finished(self, report):
        self.reports.append(report)

    def backend_error(self, backend, message):
        self.errors.append(message)

    def rate_limited(self, platform):
        pass

    def retried(self, platform):
        pass

    def budget_wait(self, platform, seconds):
        pass


def config() -> Config:
    return Config(default_assistant="food", assistants={
        "food": AssistantConfig(name="food", model="gpt-test"),
        "secret": AssistantConfig(name="secret", model="gpt-test", access={"allow_users": ["UBOSS"]}),
    })


def msg(text: str, assistant: str | None = None) -> InboundMessage:
    return InboundMessage(platform="slack", workspace="T1", channel="C1", author=Author("U1", "ann"), text=text,
                          mentions_bot=True, assistant=assistant)


@pytest.fixture
async def store(tmp_path):
    async with SqliteStore(tmp_path / "tb.db") as s:
        yield s


async def test_each_answer_is_reported_once_with_its_timings_tokens_and_outcome(store, caplog):
    heard, metrics = Heard(), Metrics(CollectorRegistry())
    backend = ScriptedBackend(
        [ToolUpdate("t1", "code_interpreter", "done", "Running code"), TextDelta("42"),
         Completed(Usage(input_tokens=30, output_tokens=7, tool_calls=1))],
        [TextDelta("half an answer"), BackendError("OpenAI had a server error (500); please try again")],
    )
    service = ChatService(config(), store, {"openai": backend}, observer=Observers(heard, metrics, TurnLog()))
    caplog.set_level(logging.INFO, logger="teambridge.turns")

    await service.handle(msg("what is six times seven"), RecordingTarget())
    await service.handle(msg("and again"), RecordingTarget())
    await service.handle(msg("let me in", assistant="secret"), RecordingTarget())

    answered, failed, refused = heard.reports
    assert (answered.outcome, answered.usage.output_tokens, answered.usage.tool_calls) == ("answered", 7, 1)
    assert 0 <= answered.first_text_seconds <= answered.total_seconds
    assert failed.outcome == "failed" and heard.errors == ["OpenAI had a server error (500); please try again"]
    assert refused.outcome == "refused" and refused.assistant == "secret" and not refused.started
    assert heard.started == [("slack", "food"), ("slack", "food")]

    lines = [r.getMessage() for r in caplog.records if r.name == "teambridge.turns"]
    assert len(lines) == 3 and lines[0].startswith("answered slack/food channel=C1 user=U1 ")
    assert "tokens=30+7 tools=1" in lines[0]
    assert not any("six times seven" in line for line in lines)  # the text only at DEBUG

    def value(name, **labels):
        return metrics.registry.get_sample_value(name, labels) or 0

    food = {"platform": "slack", "assistant": "food"}
    assert value("teambridge_answers_total", outcome="answered", **food) == 1
    assert value("teambridge_answers_total", outcome="failed", **food) == 1
    assert value("teambridge_answers_total", platform="slack", assistant="secret", outcome="refused") == 1
    assert value("teambridge_backend_errors_total", backend="openai") == 1
    assert value("teambridge_tokens_total", kind="output", **food) == 7
    assert value("teambridge_tool_calls_total", **food) == 1
    assert value("teambridge_answers_in_flight", **food) == 0
    assert value("teambridge_answer_seconds_count", **food) == 2


async def test_message_text_is_logged_at_debug_only(store, caplog):
    service = ChatService(config(), store, {"openai": ScriptedBackend()}, observer=TurnLog())
    caplog.set_level(logging.DEBUG, logger="teambridge.turns")
    await service.handle(msg("a secret recipe"), RecordingTarget())
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG and r.name == "teambridge.turns"]
    assert len(debug) == 1 and "a secret recipe" in debug[0].getMessage()
