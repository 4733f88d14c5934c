"""Slack: slash command, HTTP mode, files, long answers, rate limits — through the real SDKs and the stand-in."""
from __future__ import annotations

import asyncio
import json

from core.model import Completed, OutboundFile, TextDelta, Usage
from core.chat.service import PreparedInputs
from bots.slack.target import StreamSettings
from tests.fakes.slack_harness import make_config, running_bot
from bots.standins.slack_server import FakeSlack
from tests.support.ports import ScriptedBackend


def answer(*parts: str) -> list:
    return [*(TextDelta(p) for p in parts), Completed(Usage(10, 0, 5))]


class ReadingFiles:
    """A fake of core's attachment router port: reads every attachment, remembers the bytes."""

    def __init__(self) -> None:
        self.read: dict[str, bytes] = {}

    async def prepare(self, assistant, attachments, key, metadata, *, capabilities=None) -> PreparedInputs:
        for a in attachments:
            self.read[a.name] = await a.read()
        return PreparedInputs(notes=tuple(f"[attached {a.name}]" for a in attachments))


# ---- slash command --------------------------------------------------------------------------------


async def test_slash_reset_help_and_assistant_answer_ephemerally(tmp_path):
    backend = ScriptedBackend(answer("first"))
    async with running_bot(tmp_path / "db", backend) as bot:
        env = await bot.slack.slash_command("help")
        assert (await bot.slack.wait_ack(env))["envelope_id"] == env
        await bot.slack.wait_for(lambda: len(bot.slack.responses) == 1)
        assert "food" in bot.slack.responses[0]["text"]
        assert bot.slack.responses[0]["response_type"] == "ephemeral"

        await bot.slack.slash_command("reset")
        await bot.slack.wait_for(lambda: len(bot.slack.responses) == 2)
        assert "no earlier conversation" in bot.slack.responses[1]["text"]

        await bot.slack.slash_command("assistant nosuch")
        await bot.slack.wait_for(lambda: len(bot.slack.responses) == 3)
        assert "no assistant called" in bot.slack.responses[2]["text"]
        assert bot.slack.bot_messages() == []  # nothing public


async def test_slash_reset_starts_a_new_channel_conversation(tmp_path):
    from core.config.schema import AssistantConfig, Config, SlackConfig
    config = Config(default_assistant="food", slack=SlackConfig(),
                    assistants={"food": AssistantConfig(name="food", model="m", scope="channel")})
    backend = ScriptedBackend(answer("one"), answer("two"))
    async with running_bot(tmp_path / "db", backend, config=config) as bot:
        ts = await bot.slack.user_says("C1", "<@UBOT> hi")
        await bot.slack.wait_for(lambda: bot.slack.thread_text("C1", ts) == "one")
        await bot.adapter.wait_idle()
        await bot.slack.slash_command("reset")
        await bot.slack.wait_for(lambda: bot.slack.responses)
        assert bot.slack.responses[0]["text"].startswith("Started a new conversation")
        ts2 = await bot.slack.user_says("C1", "<@UBOT> hi again")
        await bot.slack.wait_for(lambda: bot.slack.thread_text("C1", ts2) == "two")
        await bot.adapter.wait_idle()
        assert [t.conversation_id for t in backend.turns] == ["conv_1", "conv_2"]


async def test_slash_ask_posts_the_question_and_answers_in_its_thread(tmp_path):
    backend = ScriptedBackend(answer("Basil, tomato, mozzarella."))
    async with running_bot(tmp_path / "db", backend) as bot:
        await bot.slack.slash_command("ask what goes on a margherita?")
        await bot.slack.wait_for(lambda: any(m.text == "Basil, tomato, mozzarella." for m in bot.slack.bot_messages()))
        await bot.adapter.wait_idle()
        [root] = bot.slack.bot_messages("C1", top_level=True)
        assert root.text == "<@U1> asked: what goes on a margherita?"
        assert bot.slack.thread_text("C1", root.ts) == "Basil, tomato, mozzarella."
        assert backend.turns[0].text == "what goes on a margherita?"


# ---- HTTP mode ------------------------------------------------------------------------------------


async def test_http_mode_answers_signed_events_and_rejects_bad_signatures(tmp_path):
    backend = ScriptedBackend(answer("over HTTP"))
    async with running_bot(tmp_path / "db", backend, mode="http") as bot:
        ts = await bot.slack.user_says("C1", "<@UBOT> hi")
        await bot.slack.wait_for(lambda: bot.slack.thread_text("C1", ts) == "over HTTP")
        # a retry with X-Slack-Retry-Num is acknowledged and not answered twice
        ev = bot.slack._event("AppMentionPayload", user="U1", text="<@UBOT> hi", ts=ts, event_ts=ts,
                              channel="C1", team="T0TEAM")
        status, _ = await bot.slack.post_http(bot.adapter.http_url, json.dumps(bot.slack.event_callback(ev)),
                                              retry_num=1)
        assert status == 200
        # forged: signed with the wrong secret
        forged = bot.slack._event("AppMentionPayload", user="U2", text="<@UBOT> forged", ts="1700009999.000001",
                                  event_ts="1700009999.000001", channel="C1", team="T0TEAM")
        status, _ = await bot.slack.post_http(bot.adapter.http_url, json.dumps(bot.slack.event_callback(forged)),
                                              secret="not-the-secret")
        assert status == 401
        # slash commands arrive on the same path
        assert await bot.slack.slash_command("help") == "200"
        await bot.slack.wait_for(lambda: bot.slack.responses)
        await bot.adapter.wait_idle()
        assert len(backend.turns) == 1 and [m.text for m in bot.slack.bot_messages()] == ["over HTTP"]


# ---- files ----------------------------------------------------------------------------------------


async def test_shared_file_is_downloaded_with_the_bot_token_and_generated_files_come_back(tmp_path):
    files = ReadingFiles()
    backend = ScriptedBackend([TextDelta("Here is the chart."), OutboundFile("chart.png", b"\x89PNG chart", "image/png"),
                               Completed(Usage(1, 0, 1))])
    async with running_bot(tmp_path / "db", backend, files=files) as bot:
        csv = bot.slack.add_file("sales.csv", b"month,total\njan,10\nfeb,12\n", "text/csv")
        ts = await bot.slack.user_says("C1", "<@UBOT> analyse this", files=[csv])
        await bot.slack.wait_for(lambda: any(u["completed"] for u in bot.slack.uploads.values()), what="upload")
        await bot.adapter.wait_idle()
        assert files.read["sales.csv"] == b"month,total\njan,10\nfeb,12\n"
        assert bot.slack.downloads == [(csv["id"], True)]  # once, with the token
        [up] = bot.slack.uploads.values()
        assert up["data"] == b"\x89PNG chart" and up["thread_ts"] == ts and up["channel"] == "C1"
        assert "Here is the chart." in bot.slack.thread_text("C1", ts)
        assert "[attached sales.csv]" in backend.turns[0].text


async def test_missing_files_read_scope_gives_a_clear_message(tmp_path):
    files = ReadingFiles()
    async with FakeSlack(files_read_scope=False) as slack:
        backend = ScriptedBackend()
        async with running_bot(tmp_path / "db", backend, slack=slack, files=files) as bot:
            f = slack.add_file("report.pdf", b"%PDF-1.7", "application/pdf")
            ts = await slack.user_says("C1", "<@UBOT> summarise", files=[f])
            await slack.wait_for(lambda: slack.bot_messages("C1", ts), what="notice")
            await bot.adapter.wait_idle()
            assert "files:read" in slack.thread_text("C1", ts)
            assert backend.turns == []


async def test_oversized_file_is_refused_before_download(tmp_path):
    files = ReadingFiles()
    backend = ScriptedBackend()
    async with running_bot(tmp_path / "db", backend, files=files,
                           config=make_config(max_file_mb=1)) as bot:
        big = bot.slack.add_file("huge.csv", b"x", "text/csv", size=5 * 1024 * 1024)
        ts = await bot.slack.user_says("C1", "<@UBOT> look", files=[big])
        await bot.slack.wait_for(lambda: bot.slack.bot_messages("C1", ts), what="notice")
        await bot.adapter.wait_idle()
        assert "5.0 MB" in bot.slack.thread_text("C1", ts) and "1 MB" in bot.slack.thread_text("C1", ts)
        assert bot.slack.downloads == []


# ---- long answers ---------------------------------------------------------------------------------


def long_answer_with_code(n: int) -> str:
    parts, i = [], 0
    while sum(map(len, parts)) < n:
        parts.append(f"Step {i}: some explanation of what happens next, with *emphasis*.\n\n"
                     f"```python\nfor x in range({i}):\n    print(x * {i})\n```\n\n")
        i += 1
    return "".join(parts)[:n]


async def test_9000_character_answer_with_code_blocks_arrives_whole(tmp_path):
    text = long_answer_with_code(9000)
    deltas = [text[i:i + 37] for i in range(0, len(text), 37)]
    backend = ScriptedBackend(answer(*deltas))
    async with running_bot(tmp_path / "db", backend) as bot:
        ts = await bot.slack.user_says("C1", "<@UBOT> explain loops")
        await bot.slack.wait_for(lambda: bot.slack.thread_text("C1", ts) == text
                                 and not any(m.streaming for m in bot.slack.bot_messages("C1", ts)), 15)
        await bot.adapter.wait_idle()
        for m in bot.slack.bot_messages("C1", ts):
            assert len(m.text) <= 12_000
        assert all(len(c.get("chunks", "")) < 20_000 for c in bot.slack.calls_to("chat.appendStream"))


async def test_long_streamed_answer_rolls_over_and_keeps_code_blocks_closed(tmp_path):
    text = long_answer_with_code(5000)
    backend = ScriptedBackend(answer(*[text[i:i + 50] for i in range(0, len(text), 50)]))
    small = StreamSettings(flush_interval=0.02, flush_chars=200, max_chars=1200)
    async with running_bot(tmp_path / "db", backend, stream=small) as bot:
        ts = await bot.slack.user_says("C1", "<@UBOT> explain loops")
        await bot.slack.wait_for(lambda: len(bot.slack.bot_messages("C1", ts)) >= 4
                                 and not any(m.streaming for m in bot.slack.bot_messages("C1", ts)), 15)
        await bot.adapter.wait_idle()
        msgs = bot.slack.bot_messages("C1", ts)
        assert all(len(m.text) <= 1200 for m in msgs)
        assert all(m.text.count("```") % 2 == 0 for m in msgs)  # every message renders its code whole
        joined = "".join(m.text for m in msgs)
        # nothing lost: removing the fence close/reopen pairs we added gives the model's text back
        import re
        assert re.sub(r"\n?```\n```python\n", "", joined).replace("\n", "") == \
            re.sub(r"\n?```\n```python\n", "", text).replace("\n", "")
        assert len(joined) >= len(text)


# ---- rate limits ------------------------------------------------------------------------------------


async def test_fifty_simultaneous_mentions_get_complete_answers_and_zero_429s(tmp_path):
    n = 50
    # Slack's tiers over a 0.5 s "minute": startStream/stopStream 20 per window, strictly enforced.
    async with FakeSlack(rate_minute=0.5, retry_after=0) as slack:
        backend = ScriptedBackend(*[answer(f"Answer {i} ", "is ", "complete.") for i in range(n)])
        async with running_bot(tmp_path / "db", backend, slack=slack, rate_minute=0.5) as bot:
            roots = await asyncio.gather(*(slack.user_says(f"C{i % 5}", f"<@UBOT> question {i}", user="U1")
                                           for i in range(n)))
            done = lambda: all(slack.thread_text(f"C{i % 5}", ts).endswith("is complete.")  # noqa: E731
                               and not any(m.streaming for m in slack.bot_messages(f"C{i % 5}", ts))
                               for i, ts in enumerate(roots))
            await slack.wait_for(done, 20, "all answers")
            await bot.adapter.wait_idle()
        assert slack.rate_limited == []
        answers = sorted(slack.thread_text(f"C{i % 5}", ts) for i, ts in enumerate(roots))
        assert answers == sorted(f"Answer {i} is complete." for i in range(n))


async def test_a_429_is_retried_after_retry_after_and_nothing_is_lost(tmp_path):
    # Our budget thinks chat.postMessage may go 60/min per channel, but this Slack allows 2 per window.
    async with FakeSlack(rate_minute=0.3, retry_after=0, post_message_per_channel=2) as slack:
        backend = ScriptedBackend()
        async with running_bot(tmp_path / "db", backend, slack=slack, rate_minute=0.3) as bot:
            results = await asyncio.gather(*(bot.adapter.client.chat_postMessage(
                channel="C1", markdown_text=f"note {i}") for i in range(4)))
        assert all(r["ok"] for r in results)
        assert slack.rate_limited  # Slack did say 429...
        assert sorted(m.text for m in slack.bot_messages("C1")) == [f"note {i}" for i in range(4)]  # ...none lost
