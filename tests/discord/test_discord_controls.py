"""Controls on answers in Discord: Stop while an answer is written, 👍 / 👎 and Retry once it has ended — buttons
(message components) clicked through real component interactions into discord.py, answered by the real OpenAI
backend against the stand-in OpenAI (which sees whether its stream was closed early)."""
from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses

from openai import AsyncOpenAI

from bots.discord.client import DiscordAdapter
from bots.discord.pacing import Pacers
from core.backends.openai.backend import OpenAIBackend
from core.chat.service import ChatService
from core.config.schema import Config
from core.store.sqlite import SqliteStore
from core.tools.registry import ToolRegistry
from bots.standins.discord_server import FakeDiscord
from bots.standins.openai_server import FakeOpenAI, ScriptedResponse

LONG = "".join(f"word{i} " for i in range(300))   # ~15 s at 8 characters per 0.2 s: ends only if stopped


@contextlib.asynccontextmanager
async def world(tmp_path):
    discord = FakeDiscord(channel_limit=5, channel_period=0.5)
    await discord.start()
    discord.guild = discord.add_guild("Team", ("general",))
    discord.alice = discord.add_user("alice")
    discord.bob = discord.add_user("bob")
    discord.boss = discord.add_user("boss", admin=True)
    try:
        async with FakeOpenAI() as openai, SqliteStore(tmp_path / "tb.db") as store:
            config = Config.model_validate({
                "default_assistant": "food", "base_dir": tmp_path, "database": str(tmp_path / "tb.db"),
                "assistants": {"food": {"name": "food", "model": "gpt-test"}}})
            client = AsyncOpenAI(base_url=openai.base_url, api_key="sk-test", max_retries=0)
            backend = OpenAIBackend(client, ToolRegistry.from_config(config), max_retries=0)
            service = ChatService(config, store, {"openai": backend})
            adapter = DiscordAdapter.from_env(service, discord.env(), guild_ready_timeout=0.05,
                                              pacers=Pacers(channel_limit=5, channel_period=0.5), store=store)
            await adapter.start()
            discord.adapter, discord.service = adapter, service
            try:
                yield discord, discord.channel_id(discord.guild, "general"), openai, store
            finally:
                await adapter.stop()
                await backend.aclose()   # its HTTP sessions and the client
    finally:
        await discord.stop()


def labels(message) -> list[str]:
    return [b["label"] for b in message.buttons()]


def stale(message):
    """The message as a client that has not refreshed still shows it, buttons and all."""
    return dataclasses.replace(message, payload=copy.deepcopy(message.payload))


async def acknowledged(discord: FakeDiscord, click) -> None:
    """The click was acknowledged with a deferred update (type 6): no "This interaction failed", nothing shown yet."""
    await discord.wait_for(lambda: click.callbacks, timeout=10)
    assert [c["type"] for c in click.callbacks] == [6], click.callbacks


async def told(discord: FakeDiscord, click, text: str) -> None:
    """What the clicker alone sees: an ephemeral followup on the interaction's webhook, after the acknowledgement."""
    await acknowledged(discord, click)
    await discord.wait_for(lambda: click.followup_ids, timeout=10)
    [note] = [discord.messages[i] for i in click.followup_ids]
    assert note.ephemeral, note                                        # only the clicker sees it
    assert text in note.content, note.content


async def test_the_asker_stops_an_answer_a_stranger_cannot_and_nothing_more_arrives(tmp_path):
    async with world(tmp_path) as (discord, channel, openai, store):
        openai.script(ScriptedResponse(text=LONG, delta_size=8, delay=0.2))
        await discord.user_message(channel, discord.alice, "tell me everything about bread", mention_bot=True)
        reply = await discord.wait_for(lambda: next((m for m in discord.messages_in(channel, by_bot=True)
                                                     if "word2" in m.content), None), timeout=20)
        await discord.wait_for(lambda: labels(reply) == ["Stop"], timeout=10)
        old = stale(reply)

        await told(discord, await discord.click(reply, "Stop", discord.bob),
                   "Only the person who asked or an admin can stop this answer.")
        assert openai.stream_ends == []

        click = await discord.click(reply, "Stop", discord.alice)
        await acknowledged(discord, click)                                   # a deferred update: no message
        await discord.wait_for(lambda: reply.content.endswith("⏹️ stopped"), timeout=20)
        await discord.wait_for(lambda: openai.stream_ends == ["closed early"], timeout=10)
        await discord.wait_for(lambda: labels(reply) == ["👍", "👎", "Retry"], timeout=10)
        assert reply.content.startswith("word0 word1 word2 ") and "word299" not in reply.content

        edits, shown = reply.edits, reply.content
        await told(discord, await discord.click(old, "Stop", discord.alice),   # a second, stale click
                   "This answer is not being written any more.")
        await asyncio.sleep(0.5)                                             # more than two model deltas
        assert (reply.edits, reply.content) == (edits, shown)                # no edit after the stop
        assert [m.id for m in discord.messages_in(channel, by_bot=True) if not m.ephemeral] == [reply.id]


async def test_ratings_change_retry_is_the_askers_and_happens_once(tmp_path):
    async with world(tmp_path) as (discord, channel, openai, store):
        openai.script(ScriptedResponse(text="Sourdough needs a starter."),
                      ScriptedResponse(text="Sourdough is bread raised by wild yeast."))
        await discord.user_message(channel, discord.alice, "what is sourdough?", mention_bot=True)
        answer = await discord.wait_for(lambda: next((m for m in discord.messages_in(channel, by_bot=True)
                                                      if labels(m) == ["👍", "👎", "Retry"]), None), timeout=20)
        assert answer.content == "Sourdough needs a starter."

        await told(discord, await discord.click(answer, "👍", discord.bob), "Thanks — you rated this answer 👍.")
        await told(discord, await discord.click(answer, "👎", discord.bob), "Changed your rating of this answer to 👎.")
        await told(discord, await discord.click(answer, "👎", discord.bob), "You rated this answer 👎 already.")
        await told(discord, await discord.click(answer, "👍", discord.alice), "Thanks — you rated this answer 👍.")
        rows = await store.feedback_rows(0, 4e9)
        assert sorted((r.user, r.rating, r.platform, r.message_id) for r in rows) == sorted([
            (discord.bob["id"], -1, "discord", answer.id), (discord.alice["id"], 1, "discord", answer.id)])

        await told(discord, await discord.click(answer, "Retry", discord.bob),
                   "Only the person who asked or an admin can ask this again.")
        first, second = await asyncio.gather(discord.click(answer, "Retry", discord.alice),
                                             discord.click(answer, "Retry", discord.alice))
        for click in (first, second):
            await acknowledged(discord, click)
        await discord.wait_for(lambda: labels(answer) == ["👍", "👎"], timeout=10)   # Retry no longer applies
        await discord.wait_for(lambda: first.followup_ids or second.followup_ids, timeout=10)
        [note] = [discord.messages[i] for c in (first, second) for i in c.followup_ids]   # one retry, one note
        assert note.ephemeral and note.content == "This question was asked again already."
        again = await discord.wait_for(lambda: next((m for m in discord.messages_in(channel, by_bot=True)
                                                     if "wild yeast" in m.content and labels(m)), None), timeout=20)
        assert again.reference_id == answer.id                              # a reply to the answer it retries
        assert answer.content == "Sourdough needs a starter."               # the old answer stays
        requests = openai.response_requests()
        assert len(requests) == 2 and openai.conversation_of(requests[0]) == openai.conversation_of(requests[1])
        assert requests[1]["input"] == requests[0]["input"]

        forged = stale(answer)
        for row in forged.payload["components"]:
            for button in row["components"]:
                button["custom_id"] = "tb_answer:up:no-such-answer"
        await told(discord, await discord.click(forged, "👍", discord.boss), "This answer's buttons no longer work")


async def test_a_click_that_takes_long_to_decide_is_acknowledged_at_once_and_its_result_follows(tmp_path):
    async with world(tmp_path) as (discord, channel, openai, store):
        openai.script(ScriptedResponse(text="Rye bread is dense."), ScriptedResponse(text="Rye bread is sour."))
        await discord.user_message(channel, discord.alice, "what is rye bread?", mention_bot=True)
        answer = await discord.wait_for(lambda: next((m for m in discord.messages_in(channel, by_bot=True)
                                                      if labels(m) == ["👍", "👎", "Retry"]), None), timeout=20)
        # Deciding a Retry may take seconds (it waits for the answer's record): here it waits until the test
        # says so, longer than Discord's 3 s would allow before the clicker saw "This interaction failed".
        controls, decided = discord.service.controls, asyncio.Event()
        click_now = controls.click

        async def slow_click(click):
            await decided.wait()
            return await click_now(click)
        controls.click = slow_click

        retry = await discord.click(answer, "Retry", discord.alice)
        await acknowledged(discord, retry)                                   # acknowledged while undecided
        assert labels(answer) == ["👍", "👎", "Retry"] and len(openai.response_requests()) == 1
        decided.set()
        await discord.wait_for(lambda: labels(answer) == ["👍", "👎"], timeout=10)   # its edit of the message
        again = await discord.wait_for(lambda: next((m for m in discord.messages_in(channel, by_bot=True)
                                                     if m.content == "Rye bread is sour." and labels(m)), None),
                                       timeout=20)
        assert again.reference_id == answer.id and retry.followup_ids == []


async def test_an_answer_cut_off_by_a_crash_loses_its_stop_button(tmp_path):
    from bots.discord.controls import controls_view
    from core.reply.lifetime import ReplyLifetime

    async with world(tmp_path) as (discord, channel, openai, store):
        adapter = discord.adapter
        lifetime = ReplyLifetime()
        lifetime.answer_id = "a1"
        # what a crash leaves of an answer being written: its text with the cursor, and Stop
        sent = await adapter.client.get_partial_messageable(int(channel)).send(
            "Half an ans ▌", view=controls_view(lifetime, latest=True, final=False))
        message = discord.messages[str(sent.id)]
        assert labels(message) == ["Stop"]
        await adapter.mark_interrupted(channel, str(sent.id), None)
        assert message.content == "Half an ans\n\n⚠️ This answer was cut off — please ask again."
        assert labels(message) == []


async def test_the_buttons_sent_with_a_channel_message_are_the_view_s_without_a_view():
    """ChannelTarget sends the buttons as plain components (controls_row): the same payload as the View that
    interaction replies still build (controls_view), in every state of an answer and for every message of it."""
    from discord.http import handle_message_parameters

    from bots.discord.controls import controls_row, controls_view
    from core.reply.lifetime import ReplyLifetime

    def sent(view):
        with handle_message_parameters(content="x", view=view) as params:
            return params.payload.get("components", "left as it is")

    for answer_id in ("", "a1"):
        for state in ("streaming", "finished", "stopped", "failed"):
            lifetime = ReplyLifetime()
            lifetime.answer_id, lifetime.state = answer_id, state
            for latest in (True, False):
                for final in (True, False):
                    row = controls_row(lifetime, latest=latest, final=final)
                    view = controls_view(lifetime, latest=latest, final=final)
                    assert sent(row) == sent(view), (answer_id, state, latest, final)
    assert sent(controls_row(None, latest=True, final=False)) == "left as it is"
