"""A new thread's first answer that ends midway — the reader pressed Stop, or the model's stream broke — and that
OpenAI kept nothing of (GET /v1/responses/{id} answers 404): the conversation made afterwards holds the question
and the part of the answer that was shown, so the thread's next message still reads them (not an empty one).
The real OpenAI backend, ChatService and SQLite store against the stand-in OpenAI (core/backends/openai/first_turn.py).
"""
from __future__ import annotations

import asyncio
import logging

import pytest

from bots.standins.openai_server import ScriptedResponse
from core.reply.stream import EditStream
from tests.chat.test_first_turn import bot, fake, mention, row, texts  # noqa: F401 (fake: a fixture)
from tests.support.ports import RecordingTarget

ANSWER = "Fennel is sweeter and milder; anise tastes stronger of liquorice, so use half as much of it."


@pytest.fixture(params=["sqlite"])
def open_store(request, tmp_path):
    from core.store.sqlite import SqliteStore
    return lambda: SqliteStore(tmp_path / "tb.db")


class FirstWordsTarget(RecordingTarget):
    """Shows the answer; when its first words are up, OpenAI forgets the response (a cut-off answer is not kept,
    or it expired) and — with `stop` — the reader presses Stop; then the model goes on (`release`)."""

    def __init__(self, fake, *, stop: bool, release: asyncio.Event) -> None:
        super().__init__()
        self._fake, self._stop, self._release = fake, stop, release
        self.stream: EditStream | None = None

    def open_stream(self, on_posted):
        self.stream = EditStream(self, on_posted=on_posted)
        return self.stream

    async def post(self, text: str) -> str:
        self._fake.responses.clear()
        if self._stop and self.stream is not None:
            self.stream.lifetime.stop()
        self._release.set()
        return await super().post(text)


def answer_part(target: RecordingTarget) -> str:
    """The answer as the reader saw it, without the reply's end marker."""
    return target.shown.split("⏹️")[0].split("⚠️")[0].strip()


@pytest.mark.parametrize("ending", ["stopped", "failed"])
async def test_a_first_answer_that_ended_midway_and_is_gone_at_openai_stays_in_the_thread(
        fake, open_store, caplog, ending):
    # the model's first two pieces, then the rest once the first words are shown (or the stream breaks after four)
    release = asyncio.Event()
    fake.script(ScriptedResponse(text=ANSWER, delta_size=10, hold=release, hold_after=2,
                                 **({"cut_after": 4, "cut_mode": "eof"} if ending == "failed" else {})))
    root = mention("Fennel or anise?", message_id="510.1", thread="510.1")
    async with bot(fake, open_store) as service:
        first = FirstWordsTarget(fake, stop=ending == "stopped", release=release)
        with caplog.at_level(logging.WARNING):
            await service.handle(root, first)
        shown = answer_part(first)
        assert shown and len(shown) < len(ANSWER) and ANSWER.startswith(shown)
        made = await row(service, root)
        assert not made.pending and made.backend_id in fake.conversations

        second = RecordingTarget()
        await service.handle(mention("Which is milder?", message_id="510.2", thread="510.1"), second)
        assert second.shown == "You said: Which is milder?" and second.notices == []
        assert fake.response_requests()[-1]["conversation"] == made.backend_id
        context = texts(fake.contexts[-1])
        assert [role for role, _ in context] == ["user", "assistant", "user"], context
        [(_, question), (_, answer), (_, follow_up)] = context
        assert (question, follow_up) == ("Fennel or anise?", "Which is milder?")
        # the answer as the reader saw it (not the words the Stop refused, nor what the model wrote after)
        assert answer.strip() == shown
        assert any("is gone at OpenAI" in r.getMessage() and "the part of the answer shown" in r.getMessage()
                   for r in caplog.records)
