"""Slack's assistant container (AI apps): suggested prompts, thread titles, the thinking status.

Real slack_bolt (its AsyncAssistant middleware) and slack_sdk against the stand-in Slack; event shapes from
bots/standins/specs/slack/events/AssistantThread*.json.
"""
from __future__ import annotations

import asyncio

from core.config.schema import AccessConfig, AssistantConfig, Config, SlackConfig
from core.model import Completed, TextDelta, Usage
from tests.fakes.slack_harness import answered, running_bot
from tests.support.ports import ScriptedBackend


def answer(*parts: str) -> list:
    return [*(TextDelta(p) for p in parts), Completed(Usage(10, 0, 5))]


def config(**math_access) -> Config:
    return Config(default_assistant="food", slack=SlackConfig(dm_assistant="food"), assistants={
        "math": AssistantConfig(name="math", model="m", description="A maths tutor that runs code.",
                                access=AccessConfig(**math_access)),
        "food": AssistantConfig(name="food", model="m", description="A food expert for recipes."),
    })


async def test_opening_the_container_offers_one_prompt_per_assistant(tmp_path):
    async with running_bot(tmp_path / "db", ScriptedBackend(), config=config()) as bot:
        thread = await bot.slack.open_assistant_thread(user="U1", channel="D1")
        await bot.slack.wait_for(lambda: ("D1", thread) in bot.slack.suggested_prompts, what="prompts")
        await bot.adapter.wait_idle()
        offered = bot.slack.suggested_prompts[("D1", thread)]
        titles = [p["title"] for p in offered["prompts"]]
        # the assistant that answers DMs comes first, each with its description
        assert titles == ["food: A food expert for recipes.", "math: A maths tutor that runs code."]
        assert offered["title"]
        assert bot.slack.bot_messages() == []          # nothing posted: the prompts are the greeting
        assert ("D1", thread) not in bot.slack.titles  # no title before the first message


async def test_first_message_sets_the_title_shows_thinking_and_streams_the_answer_in_the_thread(tmp_path):
    backend = ScriptedBackend(answer("Try a ", "risotto ", "tonight."), answer("Arborio."))
    async with running_bot(tmp_path / "db", backend, config=config()) as bot:
        slack = bot.slack
        thread = await slack.open_assistant_thread(user="U1", channel="D1")
        await slack.wait_for(lambda: ("D1", thread) in slack.suggested_prompts)
        await slack.user_says("D1", "What should I   cook tonight with some rice, mushrooms and a bit of parmesan "
                                    "left over from the weekend?", thread_ts=thread)
        await slack.wait_for(answered(slack, "D1", thread, "Try a risotto tonight."), what="the answer")
        await bot.adapter.wait_idle()

        title = slack.titles[("D1", thread)]
        assert title.startswith("What should I cook tonight with some rice") and title.endswith("…")
        assert len(title) <= 80
        # "is thinking…" while the model works (one call), cleared by Slack itself once the answer started
        assert [s["status"] for s in slack.statuses] == ["is thinking…"]
        methods = [m for m, _ in slack.calls]
        assert methods.index("assistant.threads.setStatus") < methods.index("chat.startStream")
        assert slack.thread_status[("D1", thread)] == ""
        # the answer is a native stream in the assistant thread, answered by the DM assistant
        [reply] = slack.bot_messages("D1", thread)
        assert reply.markdown and not reply.streaming
        assert backend.turns[0].assistant.name == "food"

        # the next message keeps the title and the conversation
        await slack.user_says("D1", "Which rice?", thread_ts=thread)
        await slack.wait_for(answered(slack, "D1", thread, "Try a risotto tonight.Arborio."))
        await bot.adapter.wait_idle()
        assert len(slack.calls_to("assistant.threads.setTitle")) == 1
        assert [t.conversation_id for t in backend.turns] == ["conv_1", "conv_1"]


async def test_picking_a_suggested_prompt_talks_to_that_assistant(tmp_path):
    backend = ScriptedBackend(answer("I solve equations."), answer("x = 2"))
    async with running_bot(tmp_path / "db", backend, config=config()) as bot:
        slack = bot.slack
        thread = await slack.open_assistant_thread(user="U1", channel="D1")
        await slack.wait_for(lambda: ("D1", thread) in slack.suggested_prompts)
        math = next(p for p in slack.suggested_prompts[("D1", thread)]["prompts"] if p["title"].startswith("math"))
        # Slack sends the prompt's message as the person's message in the thread
        await slack.user_says("D1", math["message"], thread_ts=thread)
        await slack.wait_for(answered(slack, "D1", thread, "I solve equations."))
        await bot.adapter.wait_idle()
        await slack.user_says("D1", "2x = 4?", thread_ts=thread)  # a follow-up stays with math
        await slack.wait_for(answered(slack, "D1", thread, "I solve equations.x = 2"))
        await bot.adapter.wait_idle()
        assert [t.assistant.name for t in backend.turns] == ["math", "math"]


async def test_assistants_a_person_may_not_use_are_not_offered(tmp_path):
    async with running_bot(tmp_path / "db", ScriptedBackend(), config=config(allow_users=["U2"])) as bot:
        thread = await bot.slack.open_assistant_thread(user="U1", channel="D1")
        await bot.slack.wait_for(lambda: ("D1", thread) in bot.slack.suggested_prompts)
        assert [p["title"].split(":")[0] for p in bot.slack.suggested_prompts[("D1", thread)]["prompts"]] == ["food"]
        other = await bot.slack.open_assistant_thread(user="U2", channel="D2")
        await bot.slack.wait_for(lambda: ("D2", other) in bot.slack.suggested_prompts)
        assert len(bot.slack.suggested_prompts[("D2", other)]["prompts"]) == 2


async def test_the_channel_in_view_is_remembered_without_touching_messages(tmp_path):
    async with running_bot(tmp_path / "db", ScriptedBackend(), config=config()) as bot:
        slack = bot.slack
        thread = await slack.open_assistant_thread(user="U1", channel="D1", viewing="C1")
        await slack.wait_for(lambda: ("D1", thread) in slack.suggested_prompts)
        await bot.adapter.wait_idle()
        contexts = bot.adapter.assistant_threads.contexts
        assert (await contexts.find(channel_id="D1", thread_ts=thread))["channel_id"] == "C1"
        await slack.wait_ack(await slack.change_assistant_context(thread, channel="D1", viewing="C2"))
        await slack.wait_for(lambda: (contexts.get("D1", thread) or {}).get("channel_id") == "C2", what="context")
        # bolt's default context store would have read the thread and rewritten our reply: not used
        assert slack.calls_to("conversations.replies") == [] and slack.calls_to("chat.update") == []
