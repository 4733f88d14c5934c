"""End to end on Slack: real slack_bolt/slack_sdk against the stand-in Slack, the real ChatService + SqliteStore +
OpenAIBackend + AttachmentRouter over the real AsyncOpenAI against the stand-in OpenAI."""
from __future__ import annotations

import contextlib
import json

from openai import AsyncOpenAI

from core.backends.openai.backend import OpenAIBackend
from core.backends.openai.files import OpenAIFileBackend
from core.config.schema import Config
from core.files.attachments import AttachmentRouter
from core.tools.registry import ToolRegistry
from bots.standins.openai_files_routes import FakeOpenAIFiles
from bots.standins.openai_server import CodeRun, FileSearchHit, GeneratedFile, ScriptedResponse
from tests.fakes.slack_harness import answered, running_bot
from bots.standins.slack_server import FakeSlack

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64


def make_config(tmp_path, **slack) -> Config:
    return Config(default_assistant="food", base_dir=tmp_path, assistants={
        "food": {"name": "food", "model": "gpt-test", "instructions": "You are a food expert."},
        "math": {"name": "math", "model": "gpt-test", "tools": [{"type": "code_interpreter"}]},
        "docs": {"name": "docs", "model": "gpt-test", "tools": [{"type": "file_search"}]},
    }, slack=slack)


@contextlib.asynccontextmanager
async def world(tmp_path, *, slack: FakeSlack | None = None, **slack_config):
    async with FakeOpenAIFiles() as openai:
        client = AsyncOpenAI(base_url=openai.base_url, api_key="sk-test", max_retries=0)
        config = make_config(tmp_path, **slack_config)
        backend = OpenAIBackend(client, ToolRegistry.from_config(config), max_retries=0)
        try:
            async with running_bot(tmp_path / "tb.db", backend, slack=slack, config=config,
                                   files=None) as bot:
                bot.service._files = AttachmentRouter(OpenAIFileBackend(client), bot.store)
                yield bot, openai
        finally:
            await backend.aclose()   # its HTTP sessions and the client


async def test_mention_gets_a_threaded_streamed_answer_equal_to_the_models(tmp_path):
    answer = "A **carbonara** needs guanciale, eggs, pecorino and black pepper.\n\n| item | g |\n|---|---|\n| egg | 50 |"
    async with world(tmp_path) as (bot, openai):
        openai.script(ScriptedResponse(text=answer, delta_size=7))
        ts = await bot.slack.user_says("C1", "<@UBOT> what is in a carbonara?")
        await bot.slack.wait_for(answered(bot.slack, "C1", ts, answer), 15)
        (body,) = openai.response_requests()
        assert "what is in a carbonara?" in str(body["input"]) and "<@" not in str(body["input"])
        await bot.adapter.wait_idle()  # the turn is over (the thread is marked as the bot's at its very end)
        # thread follow-up, no mention: same OpenAI conversation
        openai.script(ScriptedResponse(text="Use 3 eggs."))
        await bot.slack.user_says("C1", "how many eggs?", thread_ts=ts)
        await bot.slack.wait_for(answered(bot.slack, "C1", ts, answer + "Use 3 eggs."), 15)
        one, two = openai.response_requests()
        assert openai.conversation_of(one) == openai.conversation_of(two)


async def test_dm_answer(tmp_path):
    async with world(tmp_path) as (bot, openai):
        openai.script(ScriptedResponse(text="Hello Alice!", delta_size=3))
        await bot.slack.user_says("D1", "hi")
        await bot.slack.wait_for(lambda: [m.text for m in bot.slack.bot_messages("D1")] == ["Hello Alice!"], 15)


async def test_csv_goes_to_the_container_and_the_chart_is_posted_back(tmp_path):
    async with world(tmp_path, channels={"CMATH": {"assistant": "math"}}) as (bot, openai):
        openai.script(ScriptedResponse(text="Here is the chart.",
                                       code=CodeRun("df.plot()", file=GeneratedFile("chart.png", PNG))))
        csv = bot.slack.add_file("temps.csv", b"city,temp\nShanghai,25\n", "text/csv")
        ts = await bot.slack.user_says("CMATH", "<@UBOT> analyse this", files=[csv])
        await bot.slack.wait_for(lambda: any(u["completed"] for u in bot.slack.uploads.values()), 15, "chart upload")
        await bot.slack.wait_for(lambda: "Here is the chart." in bot.slack.thread_text("CMATH", ts), 15)
        await bot.adapter.wait_idle()
        assert bot.slack.downloads == [(csv["id"], True)]           # downloaded once, with the bot token
        assert len(openai.files) == 1                                # uploaded to OpenAI once
        (body,) = openai.response_requests()
        ci = next(t for t in body["tools"] if t["type"] == "code_interpreter")
        assert ci["container"]["file_ids"] == [next(iter(openai.files))]
        [up] = bot.slack.uploads.values()
        assert up["data"] == PNG and up["thread_ts"] == ts


async def test_document_goes_to_the_vector_store_and_the_answer_cites_it(tmp_path):
    async with world(tmp_path, channels={"CDOCS": {"assistant": "docs"}}) as (bot, openai):
        doc = bot.slack.add_file("handbook.pdf", b"%PDF-1.4 holidays: 25 days", "application/pdf")

        def respond(body):
            file_id = next(iter(openai.files))
            return ScriptedResponse(text="You get 25 days of holiday.",
                                    file_search=FileSearchHit(file_id, "handbook.pdf", "holidays: 25 days"))
        openai.responder = respond
        ts = await bot.slack.user_says("CDOCS", "<@UBOT> how many holidays?", files=[doc])
        await bot.slack.wait_for(lambda: "25 days" in bot.slack.thread_text("CDOCS", ts)
                                 and not any(m.streaming for m in bot.slack.bot_messages("CDOCS", ts)), 15)
        await bot.adapter.wait_idle()
        text = bot.slack.thread_text("CDOCS", ts)
        assert "handbook.pdf" in text  # the footnote
        (body,) = openai.response_requests()
        fs = next(t for t in body["tools"] if t["type"] == "file_search")
        assert fs["vector_store_ids"]


async def test_an_openai_outage_ends_the_threaded_reply_with_a_one_line_notice(tmp_path):
    async with world(tmp_path) as (bot, openai):
        openai.fail_next(500, times=10)
        ts = await bot.slack.user_says("C1", "<@UBOT> what is in a carbonara?")
        await bot.slack.wait_for(lambda: bot.slack.bot_messages("C1", ts)
                                 and not any(m.streaming for m in bot.slack.bot_messages("C1", ts)), 15)
        await bot.adapter.wait_idle()
        [reply] = bot.slack.bot_messages("C1", ts)
        assert reply.text.startswith("⚠️ ") and "OpenAI" in reply.text and "\n" not in reply.text
        assert "500" in reply.text
        assert bot.slack.bot_messages(top_level=True) == []


async def test_a_file_the_bot_cannot_download_is_named_and_the_question_still_answered(tmp_path):
    # The app was installed without files:read: Slack answers the download with its sign-in page.
    async with world(tmp_path, channels={"CMATH": {"assistant": "math"}}) as (bot, openai):
        bot.slack.files_read_scope = False
        csv = bot.slack.add_file("temps.csv", b"city,temp\nShanghai,25\n", "text/csv")
        ts = await bot.slack.user_says("CMATH", "<@UBOT> what is 6 times 7?", files=[csv])
        await bot.slack.wait_for(lambda: "You said: what is 6 times 7?" in bot.slack.thread_text("CMATH", ts)
                                 and not any(m.streaming for m in bot.slack.bot_messages("CMATH", ts)), 15)
        await bot.adapter.wait_idle()
        notice, answer = bot.slack.bot_messages("CMATH", ts)
        assert notice.text.startswith("⚠️ Slack sent its sign-in page instead of the file 'temps.csv'")
        assert "files:read" in notice.text and notice.text.endswith("Answering your message without it.")
        assert answer.text.startswith("You said: what is 6 times 7?\n[Attachment “temps.csv” could not be given")
        assert openai.files == {}


async def test_a_shared_file_slack_will_not_describe_costs_only_that_file(tmp_path):
    # Slack Connect sends files as ids only; files.info refuses this one (file_not_found).
    async with world(tmp_path) as (bot, openai):
        ghost = {"id": "F0GHOST", "file_access": "check_file_info"}
        ts = await bot.slack.user_says("C1", "<@UBOT> any good pasta recipes?", files=[ghost])
        await bot.slack.wait_for(lambda: "You said: any good pasta recipes?" in bot.slack.thread_text("C1", ts)
                                 and not any(m.streaming for m in bot.slack.bot_messages("C1", ts)), 15)
        await bot.adapter.wait_idle()
        notice, _ = bot.slack.bot_messages("C1", ts)
        assert notice.text == ("⚠️ Could not read a file you shared from Slack (file_not_found).\n"
                               "Answering your message without it.")


async def test_a_file_alone_that_cannot_be_used_gets_the_notice_and_no_model_call(tmp_path):
    async with world(tmp_path) as (bot, openai):   # food takes no files
        menu = bot.slack.add_file("menu.csv", b"dish,price\npasta,9\n", "text/csv")
        await bot.slack.user_says("D1", "", files=[menu])
        await bot.slack.wait_for(lambda: bot.slack.bot_messages("D1"), 15)
        await bot.adapter.wait_idle()
        (notice,) = bot.slack.bot_messages("D1")
        assert notice.text.startswith("⚠️ menu.csv: this assistant can't read that kind of file. It accepts images")
        assert "Answering" not in notice.text
        assert openai.response_requests() == []


CHART_ANSWER = "The mean is 22.5 °C.\n\n[Download the chart](sandbox:/mnt/data/chart.png)"


async def test_a_link_to_a_generated_file_points_at_the_file_as_posted_never_at_the_sandbox(tmp_path):
    async with world(tmp_path, channels={"CMATH": {"assistant": "math"}}) as (bot, openai):
        openai.script(ScriptedResponse(text=CHART_ANSWER, delta_size=5,
                                       code=CodeRun("df.plot()", file=GeneratedFile("chart.png", PNG))))
        ts = await bot.slack.user_says("CMATH", "<@UBOT> plot the temperatures")
        await bot.slack.wait_for(lambda: "Download the chart" in bot.slack.thread_text("CMATH", ts)
                                 and not any(m.streaming for m in bot.slack.bot_messages("CMATH", ts)), 15)
        await bot.adapter.wait_idle()
        [upload] = bot.slack.uploads.values()
        assert upload["data"] == PNG and upload["thread_ts"] == ts
        answer = next(m for m in bot.slack.bot_messages("CMATH", ts) if "Download" in m.text)
        assert answer.text == CHART_ANSWER.replace("sandbox:/mnt/data/chart.png", upload["permalink"])
        # Not one update along the way showed the sandbox address, or a piece of it.
        sent = json.dumps([args for method, args in bot.slack.calls if method.startswith("chat.")])
        assert "sandbox" not in sent and "sandb" not in "".join(answer.history)
