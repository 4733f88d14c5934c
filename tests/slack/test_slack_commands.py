"""Admin commands through the slash command: `/teambridge usage` and `/teambridge reload`.

The real handlers the runner registers (core.admin.usage.usage_text over the store, core.admin.reload.ConfigReloader over a
config file) behind the real ChatService, reached through slack_bolt and the stand-in Slack.
"""
from __future__ import annotations

import copy

import contextlib
from pathlib import Path

from core.config.load import load_config
from core.model import Completed, TextDelta, Usage
from core.admin.reload import ConfigReloader
from core.admin.usage import usage_text
from tests.fakes.slack_harness import running_bot
from tests.support.ports import ScriptedBackend

CONFIG = """\
default_assistant: food
admins: [U1, U4]
assistants:
  food:
    description: A food expert.
    model: gpt-test
slack:
  enabled: true
"""


@contextlib.asynccontextmanager
async def admin_bot(tmp_path: Path, backend: ScriptedBackend):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    async with running_bot(tmp_path / "db", backend, config=load_config(path)) as bot:
        service, store = bot.service, bot.store

        async def usage(msg, rest: str) -> str:
            return await usage_text(store, service.config.prices, rest.split())

        errors: list[list[str]] = []
        reloader = ConfigReloader(path, service.apply_config, on_error=errors.append, current=service.config)

        async def reload(msg, rest: str) -> str:
            found = await reloader.reload_now()
            return "Config reloaded." if not found else "Config not reloaded:\n" + "\n".join(found)

        service.add_command("usage", usage)
        service.add_command("reload", reload)
        yield bot, path


async def command(bot, text: str, *, user: str) -> dict:
    before = len(bot.slack.responses)
    env = await bot.slack.slash_command(text, user=user)
    await bot.slack.wait_ack(env)
    await bot.slack.wait_for(lambda: len(bot.slack.responses) > before, what=f"answer to {text!r}")
    return bot.slack.responses[before]


async def test_admin_sees_usage_ephemerally_as_a_readable_table(tmp_path):
    backend = ScriptedBackend([TextDelta("Pasta."), Completed(Usage(1200, 0, 34))])
    async with admin_bot(tmp_path, backend) as (bot, _):
        ts = await bot.slack.user_says("C1", "<@UBOT> dinner?", user="U2")
        await bot.slack.wait_for(lambda: bot.slack.thread_text("C1", ts) == "Pasta.")
        await bot.adapter.wait_idle()

        reply = await command(bot, "usage", user="U1")
        assert reply["response_type"] == "ephemeral"
        text = reply["text"]
        assert "Usage by user" in text and "U2" in text and "1,200" in text
        # mrkdwn has no tables: the table comes as a code block, so its columns line up
        table = text.split("```")[1]
        assert "| U2" in table and "TOTAL" in table
        assert [m.text for m in bot.slack.bot_messages("C1")] == ["Pasta."]  # nothing public


async def test_admin_reloads_the_config_and_the_change_is_live(tmp_path):
    async with admin_bot(tmp_path, ScriptedBackend()) as (bot, path):
        path.write_text(CONFIG.replace(
            "assistants:\n", "assistants:\n  chef:\n    description: Plans menus.\n    model: gpt-test\n"))
        reply = await command(bot, "reload", user="U1")
        assert reply["text"] == "Config reloaded." and reply["response_type"] == "ephemeral"
        assert "chef" in (await command(bot, "help", user="U2"))["text"]

        path.write_text("default_assistant: food\nassistants: [oops\n")
        reply = await command(bot, "reload", user="U1")
        assert reply["text"].startswith("Config not reloaded:") and "config.yaml:" in reply["text"]
        assert "chef" in bot.service.config.assistants  # the running config stays


async def test_non_admins_are_refused_and_nothing_happens(tmp_path):
    async with admin_bot(tmp_path, ScriptedBackend()) as (bot, path):
        path.write_text(CONFIG.replace("A food expert.", "Changed by someone."))
        for sub in ("usage", "reload"):
            reply = await command(bot, sub, user="U2")
            assert reply["text"] == f"Only admins can use “{sub}”."
            assert reply["response_type"] == "ephemeral"
        assert bot.service.config.assistants["food"].description == "A food expert."
        assert "Unknown command" in (await command(bot, "frobnicate", user="U1"))["text"]


async def test_only_admins_reset_someone_elses_conversation(tmp_path):
    async with admin_bot(tmp_path, ScriptedBackend()) as (bot, _):
        refused = await command(bot, "reset <@U1>", user="U2")
        assert refused["text"] == "Only admins can reset someone else's conversation."
        assert refused["response_type"] == "ephemeral"
        done = await command(bot, "reset <@U2|bob>", user="U1")
        assert "U2" in done["text"] and "food" in done["text"]


async def test_the_configured_command_name_is_the_one_answered(tmp_path):
    async with admin_bot(tmp_path, ScriptedBackend()) as (bot, _):
        before = len(bot.slack.responses)
        env = await bot.slack.slash_command("help", command="/other")
        await bot.slack.wait_ack(env)
        await bot.slack.wait_for(lambda: len(bot.slack.responses) > before)
        assert bot.slack.responses[before]["text"] == "This app answers `/teambridge` — try `/teambridge help`."


class RecordingConversations:
    """Our ConversationStore port, recording deletions (the CLI tests drive the real one against OpenAI's stand-in)."""

    def __init__(self) -> None:
        self.deleted: list[str] = []

    async def items(self, conversation_id: str, *, pending: bool = False):
        return []

    async def delete(self, conversation_id: str, *, pending: bool = False) -> bool:
        self.deleted.append(conversation_id)
        return True


async def click(bot, response: dict, label: str, *, user: str) -> dict:
    before = len(bot.slack.responses)
    env = await bot.slack.click_ephemeral(response, label, user=user)
    await bot.slack.wait_ack(env)
    await bot.slack.wait_for(lambda: len(bot.slack.responses) > before, what=f"answer to a click on {label}")
    return bot.slack.responses[before]


def buttons(response: dict) -> list[str]:
    return [e["text"]["text"] for b in response.get("blocks") or [] if b.get("type") == "actions"
            for e in b["elements"]]


async def forget_bot(tmp_path):
    from core.admin.conversations import ConversationAdmin, ForgetCommand

    bot_cm = admin_bot(tmp_path, ScriptedBackend())
    bot, _ = await bot_cm.__aenter__()
    backend = RecordingConversations()
    forget = ForgetCommand(lambda: ConversationAdmin(bot.service.config, bot.store, {"openai": backend}))
    bot.service.commands.add("forget", forget, confirm=forget)
    ts = await bot.slack.user_says("C1", "<@UBOT> dinner?", user="U2")
    await bot.slack.wait_for(lambda: bot.slack.thread_text("C1", ts) == "You said: dinner?")
    await bot.adapter.wait_idle()
    return bot_cm, bot, backend


async def test_forget_is_for_admins_and_asks_with_buttons_only_the_asking_admin_can_press(tmp_path):
    bot_cm, bot, backend = await forget_bot(tmp_path)
    try:
        refused = await command(bot, "forget <@U2>", user="U3")
        assert refused["text"] == "Only admins can use “forget”." and refused["response_type"] == "ephemeral"

        asked = await command(bot, "forget <@U2|bob>", user="U1")
        assert asked["text"].startswith("This deletes 1 conversation of U2") and asked["response_type"] == "ephemeral"
        assert "Confirm or cancel below" in asked["text"] and buttons(asked) == ["Delete", "Cancel"]
        stale = copy.deepcopy(asked)   # what a slow client still shows after the first click
        # Asking again does not delete: it asks again (the buttons decide)
        again = await command(bot, "forget <@U2|bob>", user="U1")
        assert buttons(again) == ["Delete", "Cancel"] and backend.deleted == []

        # Another admin's click decides nothing, privately, and the buttons stay for the one who asked
        other = await click(bot, asked, "Delete", user="U4")
        assert other["text"] == "Only the admin who asked can confirm this." and other["replace_original"] is False
        assert buttons(asked) == ["Delete", "Cancel"] and backend.deleted == []
        # A member who is no admin at all
        member = await click(bot, asked, "Delete", user="U3")
        assert member["text"] == "Only admins can use “forget”." and backend.deleted == []

        done = await click(bot, asked, "Delete", user="U1")
        assert done["text"].startswith("Deleted 1 conversation.") and done["replace_original"] is True
        assert asked["text"].startswith("Deleted 1 conversation.") and buttons(asked) == []   # question replaced
        assert backend.deleted == ["conv_1"] and await bot.store.list_conversations() == []

        # A double click (the same buttons, clicked again before Slack redrew them) deletes nothing twice
        twice = await click(bot, stale, "Delete", user="U1")
        assert twice["text"] == "This was already confirmed." and backend.deleted == ["conv_1"]
        # Cancel on the second question: nothing deleted, the question says so
        cancelled = await click(bot, again, "Cancel", user="U1")
        assert cancelled["text"] == "Cancelled — nothing of U2 was deleted." and buttons(again) == []
    finally:
        await bot_cm.__aexit__(None, None, None)

