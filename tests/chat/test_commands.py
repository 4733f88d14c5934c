"""The one command surface: one table, help in each platform's invocation style, the admin gate, one error text.

The platforms' own tests (console, Slack, Discord) drive it through their real entry points; here the surface is
checked once, with the real ChatService behind it.
"""
from __future__ import annotations

import pytest

from bots.console.chat import console_usage
from bots.discord.commands import build_tree, discord_usage
from bots.slack.commands import slack_usage
from core.chat.commands import COMMANDS, ERROR_NOTICE
from core.chat.service import ChatService
from core.config.schema import AssistantConfig, Config
from core.model import Author, InboundMessage
from core.store.sqlite import SqliteStore
from tests.support.ports import ScriptedBackend


def config() -> Config:
    return Config(default_assistant="food", admins=["boss"],
                  assistants={"food": AssistantConfig(name="food", model="m", description="A food expert."),
                              "math": AssistantConfig(name="math", model="m", tools=[{"type": "code_interpreter"}])})


def msg(platform: str, user: str = "ann") -> InboundMessage:
    return InboundMessage(platform=platform, workspace="T1" if platform != "console" else "", channel="C1",
                          author=Author(user, user), text="")


@pytest.fixture
async def service(tmp_path):
    async with SqliteStore(tmp_path / "tb.db") as store:
        yield ChatService(config(), store, {"openai": ScriptedBackend()})


async def test_help_speaks_each_platforms_invocation_style(service):
    console = (await service.commands.run(msg("console"), "help", style=console_usage)).text
    assert "• /reset [USER] — start a new conversation here" in console
    assert "• /attach PATH — attach a file to your next message" in console
    assert "/ask" not in console  # the console asks by typing a line

    slack = (await service.commands.run(msg("slack"), "help",
                                        style=lambda s: slack_usage(s, command="/tb"))).text
    assert "• `/tb reset [@user]` — start a new conversation here" in slack
    assert "• `/tb ask PROMPT` — ask the assistant" in slack  # a slash command carries no file
    assert "/tb attach" not in slack

    discord = (await service.commands.run(msg("discord"), "help", style=discord_usage)).text
    assert "• /assistant name: — choose which assistant answers you here" in discord
    assert "• /ask prompt: [file:] — ask the assistant" in discord

    for text in (console, slack, discord):
        assert "• food — A food expert." in text and "• math — code interpreter" in text


async def test_admin_commands_are_listed_for_admins_and_refused_to_everyone_else(service):
    async def usage(m, rest):
        return f"usage for {rest or 'everyone'}"

    service.add_command("usage", usage)
    plain = (await service.commands.run(msg("console"), "help", style=console_usage)).text
    admin = (await service.commands.run(msg("console", "boss"), "help", style=console_usage)).text
    assert "For admins:" not in plain and "/usage" not in plain
    assert "For admins:\n• /usage [PERIOD] — tokens and cost" in admin and "• /reload — reload config.yaml now" in admin

    refused = await service.commands.run(msg("console"), "usage", "7d", style=console_usage)
    assert refused.text == "Only admins can use “usage”."
    assert (await service.commands.run(msg("console", "boss"), "USAGE", " 7d ", style=console_usage)).text \
        == "usage for 7d"
    # an admin command nobody registered a handler for here (reload without a config file to watch)
    assert (await service.commands.run(msg("console", "boss"), "reload", style=console_usage)).text \
        == "“reload” is not available here."


async def test_a_registered_admin_command_joins_the_table_and_the_help(service):
    async def feedback(m, rest):
        return "no ratings yet"

    service.add_command("feedback", feedback, summary="what people rated")
    assert "feedback" in [s.name for s in service.commands.specs("discord")]
    admin = (await service.commands.run(msg("discord", "boss"), "help", style=discord_usage)).text
    assert "• /feedback — what people rated" in admin
    assert (await service.commands.run(msg("discord"), "feedback", style=discord_usage)).text \
        == "Only admins can use “feedback”."


async def test_unknown_platform_only_and_failing_commands_get_one_line(service):
    unknown = await service.commands.run(msg("slack"), "frobnicate", style=lambda s: slack_usage(s, command="/tb"))
    assert unknown.text == "Unknown command “frobnicate”. Try `/tb help`."
    assert (await service.commands.run(msg("console"), "ask", "hi", style=console_usage)).text \
        == "“ask” is not available here."

    async def broken(m, rest):
        raise RuntimeError("database is on fire")

    service.add_command("usage", broken)
    failed = await service.commands.run(msg("console", "boss"), "usage", style=console_usage)
    assert failed.text == ERROR_NOTICE and "fire" not in failed.text


async def test_assistant_without_a_name_lists_them_in_the_platforms_style(service):
    reply = await service.commands.run(msg("discord"), "assistant", style=discord_usage)
    assert reply.text == "Assistants: food, math. Choose one with /assistant name:."
    reply = await service.commands.run(msg("console"), "assistant", "math", style=console_usage)
    assert reply.text == "You are now talking to math."


def test_discord_registers_exactly_the_tables_commands():
    import discord

    specs = [s for s in COMMANDS if s.platforms is None or "discord" in s.platforms]
    tree = build_tree(discord.Client(intents=discord.Intents.none()), specs=specs, assistants=["food", "math"],
                      on_ask=None, on_text=None)
    payload = {c["name"]: c for c in (cmd.to_dict(tree) for cmd in tree.get_commands())}
    assert list(payload) == [s.name for s in specs]
    assert [o["name"] for o in payload["ask"]["options"]] == ["prompt", "file"]
    reset = payload["reset"]["options"][0]
    assert (reset["name"], reset["type"], reset.get("required", False)) == ("user", 6, False)  # 6: USER
    assert [c["value"] for c in payload["assistant"]["options"][0]["choices"]] == ["food", "math"]
    assert str(payload["usage"]["default_member_permissions"]) == "8"   # administrators
    assert payload["help"].get("default_member_permissions") is None
