"""How answers stream into Slack threads: time limits, tool progress, citations, errors, a reader's "stop".

Real slack_bolt/slack_sdk against the stand-in Slack and the real ChatService; the model is a scripted backend
that can pause (a fake of our own AssistantBackend port). Short stream limits stand in for Slack's minutes.
"""
from __future__ import annotations

import asyncio

from core.model import BackendError, Citation, Completed, TextDelta, ToolUpdate, Usage, UserFacingError
from core.chat.service import PreparedInputs
from core.files.attachments import Refused
from bots.slack.target import StreamSettings
from tests.fakes.slack_harness import answered, running_bot
from bots.standins.slack_server import FakeSlack
from tests.support.ports import PausingBackend, ScriptedBackend

FAST = StreamSettings(flush_interval=0.02, flush_chars=40)


def slowly(text: str, *, step: int, pause: float) -> list:
    out: list = []
    for i in range(0, len(text), step):
        out += [TextDelta(text[i:i + step]), pause]
    return out + [Completed(Usage(1, 0, 1))]


TEXT = " ".join(f"word{i}" for i in range(60))  # 400-odd characters, no code: the joined text must be equal


# ---- the first words ---------------------------------------------------------------------------------


async def test_the_first_words_show_at_once_and_the_rest_is_batched(tmp_path):
    # Slack's own batching numbers (300 characters / 1 s) scaled up so that only "at once" can pass: the
    # first delta is far below the size threshold and the model pauses long before any timer would fire.
    gate = asyncio.Event()
    script = [TextDelta("Basil, "), gate, TextDelta("tomato "), TextDelta("and salt."), Completed(Usage(1, 0, 1))]
    stream = StreamSettings(flush_chars=300, flush_interval=30.0)
    async with running_bot(tmp_path / "db", PausingBackend(script), stream=stream) as bot:
        ts = await bot.slack.user_says("C1", "<@UBOT> what goes with pasta?")
        try:
            # While the model is still thinking about the rest, the reader already sees its first words.
            await bot.slack.wait_for(lambda: any(m.text == "Basil, " for m in bot.slack.bot_messages("C1", ts)),
                                     5, "the first delta")
            [start] = bot.slack.calls_to("chat.startStream")
            assert "Basil, " in str(start["chunks"])      # the call that opens the stream carries it
        finally:
            gate.set()
        await bot.slack.wait_for(answered(bot.slack, "C1", ts, "Basil, tomato and salt."))
        await bot.adapter.wait_idle()
        # The rest went together (batched), not a call per delta.
        assert len(bot.slack.calls_to("chat.appendStream")) <= 1


# ---- the stream's time limit ------------------------------------------------------------------------


async def test_a_stream_slack_ends_early_continues_in_a_new_message_without_losing_text(tmp_path):
    # Slack finalises this stand-in's streams after 0.15 s; our own roll-over (max_age) is far away.
    async with FakeSlack(stream_ttl=0.15) as slack:
        backend = PausingBackend(slowly(TEXT, step=20, pause=0.03))
        # a short rate minute: this one stream's share of the append budget allows an append every ~20 ms
        async with running_bot(tmp_path / "db", backend, slack=slack, stream=FAST, rate_minute=1.0) as bot:
            ts = await slack.user_says("C1", "<@UBOT> count")
            await slack.wait_for(answered(slack, "C1", ts, TEXT), 15, "the whole answer")
            await bot.adapter.wait_idle()
        assert slack.expired                              # Slack did end a stream under us...
        assert len(slack.bot_messages("C1", ts)) >= 2     # ...and the answer went on in a new message
        assert slack.bot_messages(top_level=True) == []


async def test_streams_roll_over_before_slacks_time_limit(tmp_path):
    async with FakeSlack(stream_ttl=2.0) as slack:
        backend = PausingBackend(slowly(TEXT, step=20, pause=0.03))
        stream = StreamSettings(flush_interval=0.02, flush_chars=40, max_age=0.15)
        async with running_bot(tmp_path / "db", backend, slack=slack, stream=stream) as bot:
            ts = await slack.user_says("C1", "<@UBOT> count")
            await slack.wait_for(answered(slack, "C1", ts, TEXT), 15, "the whole answer")
            await bot.adapter.wait_idle()
        assert slack.expired == []                        # never ran into Slack's limit
        assert len(slack.bot_messages("C1", ts)) >= 2
        assert len(slack.calls_to("chat.stopStream")) == len(slack.bot_messages("C1", ts))


# ---- files that arrive with only an id ---------------------------------------------------------------


class ReadingFiles:
    """A fake of core's attachment router port: reads every attachment, notes its name and type."""

    def __init__(self) -> None:
        self.read: dict[str, bytes] = {}

    async def prepare(self, assistant, attachments, key, metadata, *, capabilities=None) -> PreparedInputs:
        refused, notes = [], []
        for a in attachments:
            try:
                self.read[a.name] = await a.read()
            except UserFacingError as err:   # as the real router: the file is left out, the message goes on
                refused.append(Refused(a.name, err.message))
                continue
            notes.append(f"[attached {a.name} {a.content_type} {a.size}]")
        return PreparedInputs(notes=tuple(notes), refused=tuple(refused))


async def test_a_file_shared_with_only_its_id_is_looked_up_then_downloaded(tmp_path):
    files = ReadingFiles()
    backend = ScriptedBackend([TextDelta("Got it."), Completed(Usage(1, 0, 1))])
    async with running_bot(tmp_path / "db", backend, files=files) as bot:
        csv = bot.slack.add_file("sales.csv", b"month,total\njan,10\n", "text/csv")
        ts = await bot.slack.user_says("C1", "<@UBOT> analyse this", files=[bot.slack.id_only(csv)])
        await bot.slack.wait_for(answered(bot.slack, "C1", ts, "Got it."))
        await bot.adapter.wait_idle()
        assert bot.slack.calls_to("files.info")[0]["file"] == csv["id"]
        assert bot.slack.downloads == [(csv["id"], True)]
        assert files.read == {"sales.csv": b"month,total\njan,10\n"}
        assert "[attached sales.csv text/csv 19]" in backend.turns[0].text


async def test_a_file_slack_cannot_find_gets_one_clear_notice_and_the_text_is_answered(tmp_path):
    backend = ScriptedBackend([TextDelta("Here you go."), Completed(Usage(1, 0, 1))])
    async with running_bot(tmp_path / "db", backend, files=ReadingFiles()) as bot:
        gone = {"id": "F0GONE", "file_access": "check_file_info"}
        ts = await bot.slack.user_says("C1", "<@UBOT> read this", files=[gone])  # app_mention + message
        await bot.slack.wait_for(answered(bot.slack, "C1", ts,
                                          "⚠️ Could not read a file you shared from Slack (file_not_found).\n"
                                          "Answering your message without it.Here you go."), what="answer")
        await bot.adapter.wait_idle()
        notice, _ = bot.slack.bot_messages("C1", ts)     # one notice, though the message arrived twice
        (turn,) = backend.turns
        assert turn.text.startswith("read this\n[Attachment “F0GONE” could not be given to you: Could not read")


# ---- tool progress -----------------------------------------------------------------------------------


def tool_script(gate: asyncio.Event) -> list:
    return [ToolUpdate("ci_1", "code_interpreter", "running", "Running code", "print(6*7)"), gate,
            ToolUpdate("ci_1", "code_interpreter", "done", "Running code"),
            TextDelta("It is 42."), Completed(Usage(1, 0, 1))]


async def test_tool_progress_shows_in_the_status_line_when_slack_refuses_native_streams(tmp_path):
    async with FakeSlack(streaming_error="feature_not_enabled") as slack:
        gates = [asyncio.Event(), asyncio.Event()]
        backend = PausingBackend(tool_script(gates[0]), tool_script(gates[1]))
        async with running_bot(tmp_path / "db", backend, slack=slack, stream=FAST) as bot:
            # first reply: the stream is refused on its first call and falls back to post + edits;
            # the second does not try the native stream at all
            for i, gate in enumerate(gates):
                ts = await slack.user_says("C1", f"<@UBOT> 6*7? ({i})")
                await slack.wait_for(lambda: "Running code" in slack.thread_text("C1", ts), what="status line")
                gate.set()
                await slack.wait_for(answered(slack, "C1", ts, "It is 42."), what="answer")
                await bot.adapter.wait_idle()
                [reply] = slack.bot_messages("C1", ts)
                assert any("Running code" in h for h in reply.history)
        assert len(slack.calls_to("chat.startStream")) == 1


async def test_tool_progress_shows_as_task_updates_while_the_tool_runs(tmp_path):
    gate = asyncio.Event()
    async with running_bot(tmp_path / "db", PausingBackend(tool_script(gate)), stream=FAST) as bot:
        ts = await bot.slack.user_says("C1", "<@UBOT> 6*7?")
        await bot.slack.wait_for(lambda: any(m.tasks.get("ci_1", {}).get("status") == "in_progress"
                                             for m in bot.slack.bot_messages("C1", ts)), what="task update")
        [reply] = bot.slack.bot_messages("C1", ts)
        assert reply.tasks["ci_1"]["title"] == "Running code" and reply.tasks["ci_1"]["details"] == "print(6*7)"
        gate.set()
        await bot.slack.wait_for(answered(bot.slack, "C1", ts, "It is 42."))
        assert reply.tasks["ci_1"]["status"] == "complete"


# ---- citations and errors ------------------------------------------------------------------------------


CITED = [TextDelta("Opening hours are 9 to 5 [1], see also the site [2]."),
         Citation(1, "handbook.md", file_id="file_1"), Citation(2, "Opening [times]", url="https://example.com/h"),
         Citation(3, "handbook.md", file_id="file_1"), Completed(Usage(1, 0, 1))]
CITED_TEXT = ("Opening hours are 9 to 5 [1], see also the site [2].\n\n"
              "[1] handbook.md\n[2] [Opening (times)](https://example.com/h)")


async def test_citations_end_the_answer_as_footnotes(tmp_path):
    async with FakeSlack() as slack:
        backend = ScriptedBackend(list(CITED), list(CITED))
        async with running_bot(tmp_path / "db", backend, slack=slack, stream=FAST) as bot:
            ts = await slack.user_says("C1", "<@UBOT> hours?")         # native stream
            await slack.wait_for(answered(slack, "C1", ts, CITED_TEXT))
            await slack.user_says("D1", "hours?")                      # a DM: post + edits
            await slack.wait_for(lambda: [m.text for m in slack.bot_messages("D1")] == [CITED_TEXT])
            await bot.adapter.wait_idle()


async def test_a_model_error_ends_the_reply_with_a_one_line_notice(tmp_path):
    async with FakeSlack() as slack:
        backend = ScriptedBackend([TextDelta("Let me see. "), BackendError("OpenAI had a server error (500)")],
                                  [BackendError("OpenAI had a server error (500)")])
        async with running_bot(tmp_path / "db", backend, slack=slack, stream=FAST) as bot:
            ts = await slack.user_says("C1", "<@UBOT> hi")
            await slack.wait_for(answered(slack, "C1", ts, "Let me see. \n\n⚠️ OpenAI had a server error (500)"))
            ts2 = await slack.user_says("C1", "<@UBOT> hi again")
            await slack.wait_for(answered(slack, "C1", ts2, "⚠️ OpenAI had a server error (500)"))
            await bot.adapter.wait_idle()


# ---- a reader presses "stop" ----------------------------------------------------------------------------


class RecordingClose(PausingBackend):
    """Knows whether the service stopped reading the model's answer before its end."""
    closed_early = False

    async def run(self, turn):
        finished = False
        try:
            async for event in super().run(turn):
                yield event
            finished = True
        finally:
            self.closed_early = not finished


async def test_a_stream_stopped_by_a_reader_stays_as_it_was_and_the_model_is_stopped(tmp_path):
    gate = asyncio.Event()
    backend = RecordingClose([TextDelta("First part."), gate, TextDelta(" More that nobody wants."), 0.2,
                              TextDelta(" And more."), 0.2, TextDelta(" And more."), Completed(Usage(1, 0, 1))])
    async with running_bot(tmp_path / "db", backend, stream=FAST) as bot:
        slack = bot.slack
        ts = await slack.user_says("C1", "<@UBOT> talk")
        await slack.wait_for(lambda: slack.thread_text("C1", ts) == "First part.", what="first part")
        [reply] = slack.bot_messages("C1", ts)
        slack.press_stop("C1", reply.ts)
        gate.set()
        await bot.adapter.wait_idle()
        assert [m.text for m in slack.bot_messages("C1", ts)] == ["First part."]  # no notice, no new message
        assert not reply.streaming
        assert backend.closed_early
