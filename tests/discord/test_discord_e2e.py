"""End to end on Discord: real discord.py against the stand-in Discord, the real ChatService + SqliteStore +
OpenAIBackend + AttachmentRouter over the real AsyncOpenAI against the stand-in OpenAI.
"""
from __future__ import annotations

import pytest

from bots.discord.target import TYPING_DELAY
from core.reply.tail import CURSOR
from tests.fakes.discord_world import World, world as make_world
from bots.standins.openai_server import CodeRun, FileSearchHit, GeneratedFile, ScriptedResponse

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64


@pytest.fixture
async def world(tmp_path):
    async with make_world(tmp_path, routes={"math": "math", "docs": "docs"},
                          channels=("general", "math", "docs")) as w:
        yield w


def general(w: World) -> str:
    return w.channel("general")


async def final_answer(w: World, channel: str, text: str) -> list:
    return await w.final_answer(channel, text)


async def test_mention_gets_the_streamed_model_answer(world):
    w, ch = world, general(world)
    answer = "Basil loves tomatoes, mozzarella and a little olive oil."
    w.openai.script(ScriptedResponse(text=answer, delta_size=5))
    await w.discord.user_message(ch, w.discord.alice, "what goes with basil?", mention_bot=True)
    (msg,) = await final_answer(w, ch, answer)
    assert msg.content == answer
    (body,) = w.openai.response_requests()
    assert "what goes with basil?" in str(body["input"]) and "<@" not in str(body["input"])


async def test_reply_chain_follow_up_stays_in_the_same_conversation(world):
    w, ch = world, general(world)
    w.openai.script(ScriptedResponse(text="Try carbonara."), ScriptedResponse(text="A Frascati."))
    await w.discord.user_message(ch, w.discord.alice, "pick a pasta", mention_bot=True)
    (first,) = await final_answer(w, ch, "Try carbonara.")
    await w.discord.user_message(ch, w.discord.alice, "and a wine?", reply_to=first.id)
    await w.discord.wait_for(lambda: any(m.content == "A Frascati." for m in w.discord.messages_in(ch, by_bot=True)))
    one, two = w.openai.response_requests()
    assert w.openai.conversation_of(one) == w.openai.conversation_of(two)


async def test_direct_message(world):
    w = world
    dm = w.discord.dm_channel(w.discord.alice)
    w.openai.script(ScriptedResponse(text="Hello Alice!"))
    await w.discord.user_message(dm, w.discord.alice, "hi")
    await final_answer(w, dm, "Hello Alice!")


async def test_slash_ask_is_deferred_and_completed(world):
    w, ch = world, general(world)
    w.openai.script(ScriptedResponse(text="A leek and potato soup.", delta_size=4))
    rec = await w.discord.slash(ch, w.discord.alice, "ask", {"prompt": "a soup for winter"})
    await w.discord.wait_for(lambda: rec.original_id
                             and w.discord.messages[rec.original_id].content == "A leek and potato soup.")
    assert rec.callbacks[0]["type"] == 5 and rec.deferred_after < 3.0


async def test_slash_reset_starts_a_new_conversation(world):
    w, ch = world, general(world)
    rec = await w.discord.slash(ch, w.discord.alice, "reset")
    await w.discord.wait_for(lambda: rec.original_id and w.discord.messages[rec.original_id].content)
    assert "conversation" in w.discord.messages[rec.original_id].content
    assert w.discord.messages[rec.original_id].ephemeral


async def test_five_thousand_characters_with_code_split_into_valid_messages(world):
    w, ch = world, general(world)
    block = "```python\n" + "\n".join(f"print('line {i}')  # {'x' * 20}" for i in range(60)) + "\n```"
    answer = "\n\n".join(["Here is the plan.", block, "Some prose " * 40, block])[:5000].rstrip()
    answer = answer if answer.count("```") % 2 == 0 else answer + "\n```"
    assert len(answer) > 4000
    w.openai.script(ScriptedResponse(text=answer, delta_size=200))
    await w.discord.user_message(ch, w.discord.alice, "write code", mention_bot=True)
    msgs = await final_answer(w, ch, answer)
    assert len(msgs) >= 3
    for m in msgs:
        assert len(m.content) <= 2000
        assert m.content.count("```") % 2 == 0, m.content[-80:]
    assert w.discord.rate_limited == []


async def test_attachment_goes_to_the_code_interpreter_and_the_chart_comes_back(world):
    w = world
    ch = w.channel("math")
    w.openai.script(ScriptedResponse(text="Here is the chart.",
                                     code=CodeRun("df.plot()", file=GeneratedFile("chart.png", PNG))))
    await w.discord.user_message(ch, w.discord.alice, "plot this", mention_bot=True,
                                 files=[("temps.csv", b"city,temp\nShanghai,25\n", "text/csv")])
    msgs = await w.discord.wait_for(lambda: [m for m in w.discord.messages_in(ch, by_bot=True) if m.attachments])
    assert msgs[0].files() == {"chart.png": PNG}
    (body,) = w.openai.response_requests()
    ci = next(t for t in body["tools"] if t["type"] == "code_interpreter")
    assert ci["container"]["file_ids"] == [next(iter(w.openai.files))]
    await w.discord.wait_for(lambda: any(m.content == "Here is the chart." for m in w.discord.messages_in(ch, by_bot=True)))


async def test_a_message_is_answered_once_across_a_restart(world):
    w, ch = world, general(world)
    w.openai.script(ScriptedResponse(text="Once."))
    mid = await w.discord.user_message(ch, w.discord.alice, "answer once", mention_bot=True)
    await final_answer(w, ch, "Once.")
    await w.stop()
    await w.start()
    # Discord delivers the same message again to the new process (e.g. a replay after a resume).
    await w.discord.dispatch("MESSAGE_CREATE", w.discord.messages[mid].payload)
    w.openai.script(ScriptedResponse(text="Next."))
    await w.discord.user_message(ch, w.discord.alice, "next one", mention_bot=True)
    await w.discord.wait_for(lambda: any(m.content == "Next." for m in w.discord.messages_in(ch, by_bot=True)))
    assert [m.content for m in w.discord.messages_in(ch, by_bot=True)] == ["Once.", "Next."]
    assert len(w.openai.response_requests()) == 2


# ---- what the user sees while the model works ------------------------------------------------------


async def test_typing_indicator_while_the_model_thinks(world):
    w, ch = world, general(world)
    # The model thinks for longer than the bot waits before it spends a request on the indicator.
    w.openai.script(ScriptedResponse(text="Thought about it: risotto.", first_delay=TYPING_DELAY + 0.4))
    await w.discord.user_message(ch, w.discord.alice, "dinner idea?", mention_bot=True)
    await final_answer(w, ch, "Thought about it: risotto.")
    # "teambridge is typing…" went out in that channel before the answer's first message.
    in_channel = [r for r in w.discord.requests if r["channel"] == ch and r["method"] == "POST"]
    assert in_channel[0]["path"].endswith("/typing") and w.discord.typing[ch] >= 1


async def test_tool_progress_is_shown_while_streaming_and_gone_in_the_final_text(world):
    w, ch = world, world.channel("math")
    w.openai.script(ScriptedResponse(text="The answer is 4.", code=CodeRun("print(2 + 2)", logs="4"),
                                     first_delay=0.3, delta_size=4))
    await w.discord.user_message(ch, w.discord.alice, "what is 2 + 2?", mention_bot=True)
    (msg,) = await final_answer(w, ch, "The answer is 4.")
    # While the code ran, the reply showed a status line; the final edit is the model's text alone.
    assert any("Running code" in state for state in msg.history[:-1]), msg.history
    assert msg.content == "The answer is 4."


async def test_citations_become_footnotes_in_the_final_text(world):
    w, ch = world, world.channel("docs")

    def cite_the_upload(body):
        (file_id,) = [f for f in w.openai.files]
        return ScriptedResponse(text="The espresso machine is called Bertha.",
                                file_search=FileSearchHit(file_id=file_id, filename="handbook.md"))

    w.openai.responder = cite_the_upload
    await w.discord.user_message(ch, w.discord.alice, "what is the espresso machine called?", mention_bot=True,
                                 files=[("handbook.md", b"# Handbook\nOur espresso machine is Bertha.\n",
                                         "text/markdown")])
    (msg,) = await final_answer(w, ch, "The espresso machine is called Bertha.\n\n[1] handbook.md")
    assert msg.content == "The espresso machine is called Bertha.\n\n[1] handbook.md"
    (body,) = w.openai.response_requests()
    assert any(t["type"] == "file_search" for t in body["tools"])


async def test_model_error_ends_the_reply_with_a_one_line_notice(world):
    w, ch = world, general(world)
    w.openai.fail_next(500, times=10)
    await w.discord.user_message(ch, w.discord.alice, "hello?", mention_bot=True)
    (msg,) = await w.discord.wait_for(lambda: w.discord.messages_in(ch, by_bot=True))
    await w.discord.wait_for(lambda: "▌" not in msg.content and msg.content)
    assert msg.content.startswith("⚠️ ") and "\n" not in msg.content and "500" in msg.content
    assert "Traceback" not in msg.content


async def test_model_failing_mid_answer_keeps_the_text_and_ends_with_the_notice(world):
    w, ch = world, general(world)
    w.openai.script(ScriptedResponse(text="Start with the onions, then", fail=("server_error", "upstream exploded")))
    await w.discord.user_message(ch, w.discord.alice, "a recipe please", mention_bot=True)
    (msg,) = await w.discord.wait_for(lambda: [m for m in w.discord.messages_in(ch, by_bot=True) if "⚠️" in m.content])
    text, _, notice = msg.content.partition("\n\n⚠️ ")
    assert text == "Start with the onions, then"
    assert "upstream exploded" in notice and "\n" not in notice


# ---- conversations survive a restart -----------------------------------------------------------------


async def test_replying_to_an_ask_followup_after_a_restart_continues_that_conversation(world):
    w, ch = world, general(world)
    # Long enough for the /ask answer to need a followup message after the original response.
    long_answer = "\n\n".join(f"Step {i}:" + " stir the sauce slowly" * 12 for i in range(12))
    assert len(long_answer) > 2000
    w.openai.script(ScriptedResponse(text=long_answer, delta_size=400), ScriptedResponse(text="Yes, low heat."))
    rec = await w.discord.slash(ch, w.discord.alice, "ask", {"prompt": "how do I make a ragù?"})
    await w.discord.wait_for(lambda: rec.followup_ids and rec.original_id)
    await final_answer(w, ch, long_answer)
    followup = rec.followup_ids[-1]

    await w.stop()     # the process restarts: nothing is remembered in memory
    await w.start()

    await w.discord.user_message(ch, w.discord.alice, "on low heat?", reply_to=followup)
    await w.discord.wait_for(lambda: any(m.content == "Yes, low heat." for m in w.discord.messages_in(ch, by_bot=True)))
    first, second = w.openai.response_requests()
    assert w.openai.conversation_of(second) == w.openai.conversation_of(first)


async def test_a_table_in_the_answer_shows_as_aligned_columns(world):
    w, ch = world, general(world)
    w.openai.script(ScriptedResponse(text="| dish | minutes |\n|---|---:|\n| soup | 30 |\n| risotto | 25 |",
                                     delta_size=10))
    await w.discord.user_message(ch, w.discord.alice, "compare cooking times", mention_bot=True)
    shown = "```\ndish    | minutes\n--------+--------\nsoup    |      30\nrisotto |      25\n```"
    await w.discord.wait_for(lambda: [m.content for m in w.discord.messages_in(ch, by_bot=True)] == [shown])


async def test_a_file_over_the_size_limit_is_named_and_the_question_still_answered(world):
    w = world
    ch = w.channel("math")
    await w.discord.user_message(ch, w.discord.alice, "what is 6 times 7?", mention_bot=True,
                                 files=[("huge.csv", b"a,b\n1,2\n", "text/csv")], claimed_size=30 * 1024 * 1024)
    # the answer finished (no cursor): a loaded machine may show its first line alone first
    msgs = await w.discord.wait_for(
        lambda: (m := w.discord.messages_in(ch, by_bot=True)) and m[-1].content.startswith("You said:")
        and CURSOR not in m[-1].content and m)
    notice, answer = msgs
    assert notice.content == ("⚠️ “huge.csv” is 30.0 MB; files up to 10 MB are accepted here.\n"
                              "Answering your message without it.")
    assert answer.content.startswith("You said: what is 6 times 7?\n[Attachment “huge.csv” could not be given")
    assert w.discord.cdn_downloads == [] and w.openai.files == {}


async def test_a_file_from_outside_discords_cdn_costs_only_that_file(world):
    w = world
    ch = w.channel("math")
    await w.discord.user_message(ch, w.discord.alice, "plot it", mention_bot=True,
                                 files=[("temps.csv", b"a,b\n1,2\n", "text/csv")],
                                 file_url="http://169.254.169.254/latest/meta-data")
    msgs = await w.discord.wait_for(
        lambda: (m := w.discord.messages_in(ch, by_bot=True)) and m[-1].content.startswith("You said:") and m)
    assert msgs[0].content.startswith("⚠️ “temps.csv” is not on Discord's file servers (169.254.169.254)")


async def test_slash_ask_with_a_file_the_assistant_cannot_take_answers_the_prompt(world):
    w, ch = world, general(world)          # food: no file tools, and a zip is no image
    rec = await w.discord.slash(ch, w.discord.alice, "ask", {"prompt": "a soup for winter"},
                                files={"file": ("recipes.zip", b"PK\x03\x04" + bytes(40), "application/zip")})
    # The notice takes the deferred "thinking…" message; the answer follows it.
    await w.discord.wait_for(lambda: [m for m in w.discord.messages_in(ch, by_bot=True)
                                      if m.content.startswith("You said: a soup for winter")])
    assert w.discord.messages[rec.original_id].content.startswith(
        "⚠️ recipes.zip: this assistant can't read that kind of file.")


async def test_a_link_to_a_generated_file_points_at_its_attachment_never_at_the_sandbox(world):
    w = world
    ch = w.channel("math")
    answer = "The mean is 22.5 °C.\n\n[Download the chart](sandbox:/mnt/data/chart.png)"
    w.openai.script(ScriptedResponse(text=answer, delta_size=4,
                                     code=CodeRun("df.plot()", file=GeneratedFile("chart.png", PNG))))
    await w.discord.user_message(ch, w.discord.alice, "plot the temperatures", mention_bot=True)
    [chart] = await w.discord.wait_for(lambda: [m for m in w.discord.messages_in(ch, by_bot=True) if m.attachments])
    url = chart.attachments[0]["url"]
    await w.final_answer(ch, answer.replace("sandbox:/mnt/data/chart.png", url))
    for m in w.discord.messages_in(ch, by_bot=True):
        assert not any("sandb" in content for content in m.history), m.history
