"""Slack's agent surface, through the real slack_bolt/slack_sdk and the stand-in Slack: what the person is
looking at (app_context_changed) reaches the model when they ask about "this channel" and the bot may read it;
opening the DM (app_home_opened, tab "messages") sets the suggested prompts on the DM itself."""
from __future__ import annotations

from bots.slack.agent import CHANNEL, MESSAGE
from bots.standins.slack_server import Message
from tests.fakes.slack_harness import running_bot
from tests.support.ports import ScriptedBackend


def said(slack, channel: str, ts: str, user: str, text: str) -> None:
    """Something people said in a channel earlier (the bot was not addressed)."""
    slack.messages.append(Message(channel=channel, ts=ts, user=user, text=text))


async def answered(bot, backend, n: int) -> str:
    await bot.slack.wait_for(lambda: len(backend.turns) >= n and bot.slack.bot_messages("D1"), what="answer")
    await bot.adapter.wait_idle()
    return backend.turns[n - 1].text


async def test_asking_about_this_channel_brings_what_the_person_is_looking_at(tmp_path):
    backend = ScriptedBackend()
    async with running_bot(tmp_path / "db", backend) as bot:
        said(bot.slack, "C7", "1700000001.000001", "U2", "The release moves to Thursday.")
        said(bot.slack, "C7", "1700000002.000001", "U1", "OK, I will tell the customers.")
        await bot.slack.view([{"type": CHANNEL, "value": "C7"}], user="U1")
        await bot.slack.user_says("D1", "summarise this channel for me")
        text = await answered(bot, backend, 1)
        assert text.startswith("summarise this channel for me\n\n[Context from Slack: the user is looking at "
                               "the channel <#C7>")
        # oldest first, with people's names (users.info)
        assert text.index("bob: The release moves to Thursday.") < text.index("alice: OK, I will tell the customers.")


async def test_no_channel_content_without_the_question_or_where_the_bot_may_not_read(tmp_path):
    backend = ScriptedBackend()
    async with running_bot(tmp_path / "db", backend) as bot:
        said(bot.slack, "C7", "1700000001.000001", "U2", "Salaries are in the spreadsheet.")
        said(bot.slack, "C9", "1700000001.000002", "U2", "Private plans.")
        bot.slack.outside.add("C9")          # the bot is not a member of C9: Slack answers not_in_channel
        await bot.slack.view([{"type": CHANNEL, "value": "C7"}], user="U1")
        await bot.slack.user_says("D1", "what's a good pasta recipe?")
        assert await answered(bot, backend, 1) == "what's a good pasta recipe?"

        # looking at a message in C9 (its channel is what counts), asking about it: nothing the bot can't read
        await bot.slack.view([{"type": MESSAGE, "value": {"channel_id": "C9", "message_ts": "1700000001.000002"}}],
                             user="U1")
        await bot.slack.user_says("D1", "what is this channel about?")
        assert await answered(bot, backend, 2) == "what is this channel about?"

        # someone else looking at C7 does not put C7 into alice's question
        await bot.slack.view([], user="U1")
        await bot.slack.view([{"type": CHANNEL, "value": "C7"}], user="U2")
        await bot.slack.user_says("D1", "summarise this channel")
        assert await answered(bot, backend, 3) == "summarise this channel"


async def test_opening_the_dm_sets_the_suggested_prompts_on_it(tmp_path):
    async with running_bot(tmp_path / "db", ScriptedBackend()) as bot:
        await bot.slack.open_messages_tab(user="U1", channel="D1")
        shown = await bot.slack.wait_for(lambda: bot.slack.suggested_prompts.get(("D1", "")), what="prompts")
        assert shown["prompts"] == [{"title": "food: a food expert", "message": "Hi food, what can you help me with?"}]


async def test_with_agent_view_each_dm_message_is_answered_in_its_own_thread(tmp_path):
    from tests.fakes.slack_harness import make_config
    backend = ScriptedBackend()
    async with running_bot(tmp_path / "db", backend, config=make_config(agent_view=True)) as bot:
        ts = await bot.slack.user_says("D1", "hello there")
        await bot.slack.wait_for(lambda: bot.slack.thread_text("D1", ts) == "You said: hello there", what="answer")
        assert bot.slack.bot_messages("D1", top_level=True) == []
        # the follow-up in that thread stays in it (and in its conversation)
        await bot.adapter.wait_idle()
        await bot.slack.user_says("D1", "and more", thread_ts=ts)
        await bot.slack.wait_for(lambda: "You said: and more" in bot.slack.thread_text("D1", ts), what="follow-up")
        assert len(backend.conversations) == 1


async def test_a_suggested_prompt_picked_in_the_dm_is_answered_by_its_assistant(tmp_path):
    from core.config.schema import AssistantConfig, Config, SlackConfig
    config = Config(default_assistant="food", slack=SlackConfig(agent_view=True), assistants={
        "food": AssistantConfig(name="food", model="gpt-test", description="a food expert"),
        "math": AssistantConfig(name="math", model="gpt-test", description="sums")})
    backend = ScriptedBackend()
    async with running_bot(tmp_path / "db", backend, config=config) as bot:
        await bot.slack.open_messages_tab(user="U1", channel="D1")
        shown = await bot.slack.wait_for(lambda: bot.slack.suggested_prompts.get(("D1", "")), what="prompts")
        pick = next(p for p in shown["prompts"] if p["title"].startswith("math"))
        await bot.slack.user_says("D1", pick["message"])
        await bot.slack.wait_for(lambda: backend.turns, what="the answer")
        await bot.adapter.wait_idle()
        assert backend.turns[0].assistant.name == "math"
