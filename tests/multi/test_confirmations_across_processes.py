"""An admin's `/teambridge forget` question answered on another process: two bots on one PostgreSQL database share
the stand-in Slack, which spreads its Socket Mode envelopes over their connections in turn, so the Delete click
reaches the process that did not ask. It is passed to the asking process (core/chat/confirm_relay.py), which
decides once and deletes; the admin sees the same answers as with one process."""
from __future__ import annotations

import contextlib
import copy

from core.admin.conversations import ConversationAdmin, ForgetCommand
from core.config.schema import Config
from core.store.postgres import PostgresStore
from bots.standins.slack_server import FakeSlack
from tests.fakes.slack_harness import running_bot
from tests.support.ports import ScriptedBackend
from tests.slack.test_slack_commands import RecordingConversations, buttons


@contextlib.asynccontextmanager
async def two_processes(tmp_path, postgres_url: str):
    deleted = RecordingConversations()
    async with FakeSlack() as slack:
        slack.spread = True
        config = Config.model_validate({
            "default_assistant": "chef", "base_dir": tmp_path, "admins": ["U1", "U4"], "slack": {"enabled": True},
            "assistants": {"chef": {"name": "chef", "model": "gpt-test", "scope": "thread"}}})
        async with contextlib.AsyncExitStack() as stack:
            bots = []
            for name in ("p1", "p2"):
                store = await stack.enter_async_context(PostgresStore(postgres_url, owner=name))
                bot = await stack.enter_async_context(
                    running_bot(tmp_path / name, ScriptedBackend(), slack=slack, config=config, store=store))
                forget = ForgetCommand(lambda bot=bot: ConversationAdmin(bot.service.config, bot.store,
                                                                         {"openai": deleted}))
                bot.service.commands.add("forget", forget, confirm=forget)
                bots.append(bot)
            await slack.wait_connected(timeout=60, count=2)
            for bot in bots:   # both processes hear the other's signals before the first click
                await bot.store.signals().start()
            ts = await slack.user_says("C1", "<@UBOT> dinner?", user="U2")
            await slack.wait_for(lambda: slack.thread_text("C1", ts) == "You said: dinner?")
            for bot in bots:
                await bot.adapter.wait_idle()
            yield slack, bots, deleted


async def command(slack: FakeSlack, text: str, *, user: str) -> dict:
    before = len(slack.responses)
    await slack.wait_ack(await slack.slash_command(text, user=user))
    await slack.wait_for(lambda: len(slack.responses) > before, what=f"answer to {text!r}")
    return slack.responses[before]


async def click(slack: FakeSlack, response: dict, label: str, *, user: str) -> dict:
    before = len(slack.responses)
    await slack.wait_ack(await slack.click_ephemeral(response, label, user=user))
    await slack.wait_for(lambda: len(slack.responses) > before, what=f"answer to a click on {label}")
    return slack.responses[before]


async def test_a_delete_click_that_reaches_the_other_process_deletes_once(tmp_path, postgres_url):
    async with two_processes(tmp_path, postgres_url) as (slack, bots, deleted):
        asked = await command(slack, "forget <@U2|bob>", user="U1")
        assert asked["text"].startswith("This deletes 1 conversation of U2") and buttons(asked) == ["Delete", "Cancel"]
        stale = copy.deepcopy(asked)   # what a slow client still shows after the first click

        # envelopes alternate between the two connections: the question was asked on one process, and of the
        # next two clicks one reaches each; the stranger's click is refused either way, privately
        other = await click(slack, asked, "Delete", user="U4")
        assert other["text"] == "Only the admin who asked can confirm this." and other["replace_original"] is False
        assert deleted.deleted == []

        done = await click(slack, asked, "Delete", user="U1")
        assert done["text"].startswith("Deleted 1 conversation.") and done["replace_original"] is True
        assert buttons(asked) == [] and deleted.deleted == ["conv_1"]
        assert await bots[0].store.list_conversations() == []

        # the double click, on each process in turn, deletes nothing twice and says so
        for _ in range(2):
            twice = await click(slack, stale, "Delete", user="U1")
            assert twice["text"] == "This was already confirmed." and deleted.deleted == ["conv_1"]


async def test_a_click_on_a_question_no_process_asked_is_told_so(tmp_path, postgres_url):
    async with two_processes(tmp_path, postgres_url) as (slack, bots, deleted):
        asked = await command(slack, "forget <@U2|bob>", user="U1")
        forged = copy.deepcopy(asked)   # e.g. a question from before every process restarted
        for block in forged["blocks"]:
            for element in block.get("elements", []):
                if element.get("type") == "button":
                    element["value"] = "forget:0123456789abcdef0123456789abcdef"
        answer = await click(slack, forged, "Delete", user="U1")
        assert answer["text"].startswith("This question is no longer open — nothing was done.")
        assert deleted.deleted == [] and len(await bots[0].store.list_conversations()) == 1
