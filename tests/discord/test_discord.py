"""Discord adapter: the real discord.py against the stand-in Discord, with a fake of our ChatService port.

Each test reads like a conversation: a user does something in Discord, the test looks at what the
channel shows afterwards (the stand-in's message store holds each message's final content).
"""
from __future__ import annotations

import asyncio

import pytest

from bots.discord.client import INTENT_HELP, TOKEN_HELP, DiscordAdapter, DiscordStartupError
from bots.discord.pacing import Pacers
from core.model import OutboundFile
from core.store.sqlite import SqliteStore
from tests.fakes.discord_chat import FakeChatService, StreamingService, discord_config
from bots.standins.discord_server import FakeDiscord

# Short rate windows keep the tests fast; the bot's pacers are told the same budget as the stand-in.
WINDOW = 0.5


@pytest.fixture
async def fake():
    server = FakeDiscord(channel_limit=5, channel_period=WINDOW, global_limit=50)
    await server.start()
    server.guild = server.add_guild("Team", ("general", "help-desk", "random"))
    server.alice = server.add_user("alice")
    server.root = server.add_user("root", admin=True)
    yield server
    await server.stop()


def make_adapter(fake: FakeDiscord, service, tmp_path, **kwargs) -> DiscordAdapter:
    env = fake.env() | {"TEAMBRIDGE_DB": str(tmp_path / "tb.db")}
    # The fake service answers at once; with no delay "is typing…" still goes out first (see the typing tests).
    kwargs.setdefault("typing_delay", 0)
    kwargs.setdefault("pacers", Pacers(channel_limit=5, channel_period=WINDOW))
    return DiscordAdapter.from_env(service, env, guild_ready_timeout=0.05, **kwargs)


@pytest.fixture
async def bot(fake, tmp_path):
    service = FakeChatService()
    adapter = make_adapter(fake, service, tmp_path)
    await adapter.start()
    adapter.service = service
    yield adapter
    await adapter.stop()


def general(fake: FakeDiscord) -> str:
    return fake.channel_id(fake.guild, "general")


async def answered(fake: FakeDiscord, channel: str, text: str) -> list:
    await fake.wait_for(lambda: any(m.content == text for m in fake.messages_in(channel, by_bot=True)))
    return fake.messages_in(channel, by_bot=True)


# ---- mentions, replies, DMs ----------------------------------------------------------------------


async def test_mention_is_answered_as_a_reply_with_the_mention_stripped(fake, bot):
    ch = general(fake)
    mid = await fake.user_message(ch, fake.alice, "what goes with basil?", mention_bot=True)

    msgs = await answered(fake, ch, "You said: what goes with basil?")
    assert len(msgs) == 1 and msgs[0].reference_id == mid and msgs[0].edits == 1
    (inbound,) = bot.service.handled
    assert inbound.text == "what goes with basil?" and inbound.event_id == mid
    assert inbound.mentions_bot and not inbound.is_direct and inbound.workspace == fake.guild["id"]
    assert inbound.thread == mid                       # a mention roots its own conversation
    assert fake.typing.get(ch, 0) >= 1                 # "teambridge is typing…" while it thinks


async def test_other_people_mentioned_read_as_their_names_and_the_bots_mention_is_gone(fake, bot):
    ch = general(fake)
    bob, carol = fake.add_user("bob"), fake.add_user("carol")
    await fake.user_message(ch, fake.alice, f"ask <@{bob['id']}> and <@!{carol['id']}>, not <@123>",
                            mention_bot=True)
    await answered(fake, ch, "You said: ask @bob and @carol, not <@123>")


async def test_a_message_without_mention_is_ignored_and_the_bot_ignores_itself(fake, bot):
    ch = general(fake)
    await fake.user_message(ch, fake.alice, "just chatting")
    await fake.user_message(ch, fake.alice, "hi bot", mention_bot=True)
    await answered(fake, ch, "You said: hi bot")
    # Only the mention reached the service; the bot's own echoed MESSAGE_CREATE did not loop back.
    assert [m.text for m in bot.service.handled] == ["hi bot"]


async def test_replying_to_the_bot_continues_the_same_conversation(fake, bot):
    ch = general(fake)
    first = await fake.user_message(ch, fake.alice, "pick a pasta", mention_bot=True)
    (answer,) = await answered(fake, ch, "You said: pick a pasta")

    await fake.user_message(ch, fake.alice, "and a wine?", reply_to=answer.id)
    await answered(fake, ch, "You said: and a wine?")
    followup = bot.service.handled[-1]
    assert followup.mentions_bot and followup.thread == first

    # A reply to the second answer still belongs to the first conversation (the chain is walked).
    second = fake.messages_in(ch, by_bot=True)[-1]
    await fake.user_message(ch, fake.alice, "dessert?", reply_to=second.id)
    await answered(fake, ch, "You said: dessert?")
    assert bot.service.handled[-1].thread == first

    # A new mention starts a new conversation.
    other = await fake.user_message(ch, fake.alice, "new topic", mention_bot=True)
    await answered(fake, ch, "You said: new topic")
    assert bot.service.handled[-1].thread == other


async def test_direct_message_is_answered_in_the_dm(fake, bot):
    dm = fake.dm_channel(fake.alice)
    await fake.user_message(dm, fake.alice, "hello in private")
    await answered(fake, dm, "You said: hello in private")
    inbound = bot.service.handled[-1]
    assert inbound.is_direct and inbound.workspace == "" and inbound.thread is None and inbound.channel == dm


async def test_channel_that_answers_without_mention(fake, tmp_path):
    ch = fake.channel_id(fake.guild, "help-desk")
    service = FakeChatService(config=discord_config(channels={ch: {"respond_without_mention": True}}))
    adapter = make_adapter(fake, service, tmp_path)
    await adapter.start()
    try:
        await fake.user_message(ch, fake.alice, "no mention needed")
        await answered(fake, ch, "You said: no mention needed")
        assert service.handled[-1].thread is None  # the channel is one conversation
    finally:
        await adapter.stop()


async def test_auto_thread_answers_inside_a_new_thread(fake, tmp_path):
    service = FakeChatService(config=discord_config(auto_thread=True))
    adapter = make_adapter(fake, service, tmp_path)
    await adapter.start()
    try:
        ch = general(fake)
        mid = await fake.user_message(ch, fake.alice, "plan a dinner party", mention_bot=True)
        thread = await fake.wait_for(lambda: fake.channels.get(mid))
        assert thread["type"] == 11 and thread["parent_id"] == ch and thread["name"] == "plan a dinner party"
        await answered(fake, mid, "You said: plan a dinner party")
        assert fake.messages_in(ch, by_bot=True) == []
        # A follow-up inside the thread belongs to the same conversation (channel = parent, thread = thread).
        await fake.user_message(mid, fake.alice, "for six people", mention_bot=True)
        await answered(fake, mid, "You said: for six people")
        first, second = service.handled
        assert (first.channel, first.thread) == (second.channel, second.thread) == (ch, mid)
    finally:
        await adapter.stop()


# ---- slash commands ------------------------------------------------------------------------------


async def test_slash_ask_is_deferred_at_once_and_completed_by_editing_the_original(fake, bot):
    ch = general(fake)
    rec = await fake.slash(ch, fake.alice, "ask", {"prompt": "a soup for winter"})
    # the answer streams into the original response: wait for its final text, not its first words
    await fake.wait_for(lambda: rec.original_id
                        and fake.messages[rec.original_id].content == "You said: a soup for winter")
    assert rec.callbacks[0]["type"] == 5 and rec.deferred_after < 3.0   # DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
    original = fake.messages[rec.original_id]
    assert original.content == "You said: a soup for winter" and not original.ephemeral
    inbound = bot.service.handled[-1]
    assert inbound.event_id == rec.id and inbound.text == "a soup for winter"
    # Replying to the /ask answer continues that conversation.
    await fake.user_message(ch, fake.alice, "vegetarian please", reply_to=original.id)
    await answered(fake, ch, "You said: vegetarian please")
    assert bot.service.handled[-1].thread == inbound.thread == original.id


async def test_slash_reset_assistant_help_and_usage(fake, bot):
    ch = general(fake)
    rec = await fake.slash(ch, fake.alice, "reset")
    await fake.wait_for(lambda: rec.original_id and fake.messages[rec.original_id].content)
    assert fake.messages[rec.original_id].content == "Started a new conversation with food."
    assert fake.messages[rec.original_id].ephemeral and rec.callbacks[0]["type"] == 5

    rec = await fake.slash(ch, fake.alice, "assistant", {"name": "math"})
    await fake.wait_for(lambda: rec.original_id and fake.messages[rec.original_id].content)
    assert fake.messages[rec.original_id].content == "You are now talking to math."

    rec = await fake.slash(ch, fake.alice, "help")
    await fake.wait_for(lambda: rec.original_id and fake.messages[rec.original_id].content)
    assert "teambridge" in fake.messages[rec.original_id].content

    rec = await fake.slash(ch, fake.root, "usage")
    await fake.wait_for(lambda: rec.original_id and fake.messages[rec.original_id].content)
    assert fake.messages[rec.original_id].content == "usage: 0 tokens"


async def test_commands_are_synced_only_when_they_change(fake, tmp_path):
    guild = fake.guild["id"]
    service = FakeChatService(config=discord_config(guilds=[guild]))
    for _ in range(2):  # two starts (e.g. restarts, or a second process) with the same command set: one sync
        async with SqliteStore(tmp_path / "tb.db") as store:
            adapter = make_adapter(fake, service, tmp_path, store=store)
            await adapter.start()
            await adapter.stop()
    assert fake.command_syncs == {guild: 1}
    names = {c["name"] for c in fake.commands[guild]}
    assert names == {"ask", "reset", "assistant", "help", "usage", "reload", "forget"}
    choices = next(c for c in fake.commands[guild] if c["name"] == "assistant")["options"][0]["choices"]
    assert [c["value"] for c in choices] == ["food", "math"]

    # An assistant added to the config changes /assistant's choices: synced again, once.
    config = discord_config(guilds=[guild])
    config = config.model_copy(update={"assistants": {**config.assistants,
                                                      "docs": config.assistants["food"]}})
    service = FakeChatService(config=config)
    async with SqliteStore(tmp_path / "tb.db") as store:
        adapter = make_adapter(fake, service, tmp_path, store=store)
        await adapter.start()
        await adapter.stop()
    assert fake.command_syncs == {guild: 2}


# ---- files ---------------------------------------------------------------------------------------


async def test_attachment_is_downloaded_from_the_cdn(fake, bot):
    ch = general(fake)
    await fake.user_message(ch, fake.alice, "sum this", mention_bot=True,
                            files=[("data.csv", b"a,b\n1,2\n", "text/csv")])
    await answered(fake, ch, "You said: sum this")
    assert bot.service.read_files == [("data.csv", b"a,b\n1,2\n")]
    att = bot.service.handled[-1].attachments[0]
    assert (att.name, att.size, att.content_type) == ("data.csv", 8, "text/csv")


async def test_oversized_attachment_is_refused_before_download(fake, bot):
    ch = general(fake)
    await fake.user_message(ch, fake.alice, "look", mention_bot=True,
                            files=[("huge.bin", b"x", None)], claimed_size=50 * 1024 * 1024)
    msgs = await fake.wait_for(lambda: fake.messages_in(ch, by_bot=True))
    assert "huge.bin" in msgs[0].content and "10 MB" in msgs[0].content
    assert fake.cdn_downloads == []


async def test_generated_file_is_posted_as_an_attachment(fake, bot):
    bot.service.files.append(OutboundFile("plot.png", b"\x89PNG fake", "image/png"))
    ch = general(fake)
    await fake.user_message(ch, fake.alice, "plot it", mention_bot=True)
    msgs = await fake.wait_for(lambda: [m for m in fake.messages_in(ch, by_bot=True) if m.attachments])
    assert msgs[0].files() == {"plot.png": b"\x89PNG fake"}


async def test_generated_file_over_the_upload_limit_is_named_not_posted(fake, bot):
    bot.service.files.append(OutboundFile("export.zip", b"\0" * (10 * 1024 * 1024 + 1), "application/zip"))
    ch = general(fake)
    await fake.user_message(ch, fake.alice, "export everything", mention_bot=True)
    notice = await fake.wait_for(lambda: [m for m in fake.messages_in(ch, by_bot=True) if "export.zip" in m.content])
    assert notice[0].content == ("⚠️ export.zip is 10.0 MB, more than Discord accepts here (10 MB), "
                                 "so it was not posted.")
    assert not any(m.attachments for m in fake.messages_in(ch, by_bot=True))


# ---- load, exactly once, startup errors -----------------------------------------------------------


async def test_fifty_simultaneous_mentions_provoke_no_429(fake, bot):
    channels = [fake.channel_id(fake.guild, n) for n in ("general", "help-desk", "random")]
    asks = [(channels[i % 3], f"question {i}") for i in range(50)]
    await asyncio.gather(*(fake.user_message(c, fake.alice, q, mention_bot=True) for c, q in asks))
    expected = {(c, f"You said: {q}") for c, q in asks}
    await fake.wait_for(lambda: expected <= {(c, m.content) for c in channels
                                             for m in fake.messages_in(c, by_bot=True)}, timeout=25)
    assert fake.rate_limited == []
    # One answer message per question: the first part was edited into the whole answer.
    assert sum(len(fake.messages_in(c, by_bot=True)) for c in channels) == 50


async def test_a_gateway_resume_does_not_answer_twice(fake, bot):
    ch = general(fake)
    await fake.user_message(ch, fake.alice, "before the drop", mention_bot=True)
    await answered(fake, ch, "You said: before the drop")
    # The connection drops; on RESUME Discord sends the recent events again, the mention included.
    await fake.drop_gateway(4000, redeliver=10)
    await fake.wait_for(lambda: fake.resumes == 1)
    await fake.user_message(ch, fake.alice, "after the drop", mention_bot=True)
    await answered(fake, ch, "You said: after the drop")
    texts = [m.content for m in fake.messages_in(ch, by_bot=True)]
    assert texts == ["You said: before the drop", "You said: after the drop"]
    assert fake.identifies == 1  # resumed, not re-identified


async def test_missing_message_content_intent_gives_a_clear_error(tmp_path):
    server = await FakeDiscord(message_content_intent=False).start()
    try:
        adapter = make_adapter(server, FakeChatService(), tmp_path)
        with pytest.raises(DiscordStartupError) as err:
            await adapter.start()
        assert str(err.value) == INTENT_HELP
        assert "Privileged Gateway Intents" in str(err.value)
    finally:
        await server.stop()


async def test_wrong_token_gives_a_clear_error(fake, tmp_path):
    env = fake.env() | {"DISCORD_BOT_TOKEN": "not-the-token", "TEAMBRIDGE_DB": str(tmp_path / "tb.db")}
    adapter = DiscordAdapter.from_env(FakeChatService(), env, guild_ready_timeout=0.05)
    with pytest.raises(DiscordStartupError) as err:
        await adapter.start()
    assert str(err.value) == TOKEN_HELP


def test_missing_credentials_and_invite_url(fake):
    assert DiscordAdapter.missing_credentials(discord_config(), {}) == ["DISCORD_BOT_TOKEN"]
    assert DiscordAdapter.missing_credentials(discord_config(), {"DISCORD_BOT_TOKEN": "x"}) == []
    assert DiscordAdapter.from_env(FakeChatService(), {"DISCORD_BOT_TOKEN": ""}) is None


async def test_invite_url_is_printed_at_startup(fake, bot):
    assert bot.invite_url.startswith("https://discord.com/oauth2/authorize?client_id=" + fake.application_id)
    assert "scope=bot+applications.commands" in bot.invite_url and "permissions=" in bot.invite_url


async def test_interrupted_reply_is_marked(fake, bot):
    ch = general(fake)
    await fake.user_message(ch, fake.alice, "tell me a story", mention_bot=True)
    (msg,) = await answered(fake, ch, "You said: tell me a story")
    await bot.mark_interrupted(ch, msg.id, msg.reference_id)
    assert fake.messages[msg.id].content == ("You said: tell me a story\n\n"
                                             "⚠️ This answer was cut off — please ask again.")
    # a second record leading to the same message (a crash between recording a reply's next part and
    # forgetting the one before) marks nothing more: one notice, no edit
    edits = fake.messages[msg.id].edits
    await bot.mark_interrupted(ch, msg.id, msg.reference_id)
    assert fake.messages[msg.id].content.count("cut off") == 1 and fake.messages[msg.id].edits == edits


async def test_a_cut_off_reply_with_no_room_left_takes_a_channel_slot_for_each_request(fake, tmp_path):
    # a long window: what the marking takes from the channel's budget is still counted when it is read
    pacers = Pacers(channel_limit=10, channel_period=60.0, global_limit=50, global_period=1.0)
    service = StreamingService()
    adapter = make_adapter(fake, service, tmp_path, pacers=pacers)
    await adapter.start()
    try:
        ch = general(fake)
        await fake.user_message(ch, fake.alice, "a long one", mention_bot=True)
        stream = await service.stream_for("a long one")
        await stream.text("x" * 1990)   # the process dies here: no room left for the notice in this message
        await fake.wait_for(lambda: fake.messages_in(ch, by_bot=True))
        (msg,) = fake.messages_in(ch, by_bot=True)
        assert msg.content.endswith("▌")   # the cursor of an answer being written, which the marking takes away
        free = pacers.channel(int(ch)).free_now()
        await adapter.mark_interrupted(ch, msg.id, msg.reference_id)
        notice = [m for m in fake.messages_in(ch, by_bot=True) if m.id != msg.id]
        assert [m.content for m in notice] == ["⚠️ This answer was cut off — please ask again."]
        assert fake.messages[msg.id].content == "x" * 1990
        assert pacers.channel(int(ch)).free_now() == free - 2   # the edit and the notice, a slot each
        await stream.close()
    finally:
        await adapter.stop()


# ---- typing and pacing: what a reader sees first --------------------------------------------------


async def test_typing_is_shown_only_when_the_answer_takes_longer_than_the_typing_delay(fake, tmp_path):
    service = FakeChatService()
    adapter = make_adapter(fake, service, tmp_path, typing_delay=0.2)
    await adapter.start()
    try:
        quick, slow = general(fake), fake.channel_id(fake.guild, "random")
        await fake.user_message(quick, fake.alice, "quick one", mention_bot=True)
        await answered(fake, quick, "You said: quick one")

        service.gate = asyncio.Event()            # this time the model thinks for a while
        await fake.user_message(slow, fake.alice, "slow one", mention_bot=True)
        try:
            await fake.wait_for(lambda: fake.typing.get(slow, 0) >= 1)
            assert fake.messages_in(slow, by_bot=True) == []   # "typing…" while nothing is there yet
        finally:
            service.gate.set()
        await answered(fake, slow, "You said: slow one")
        # The quick answer's first words came within the delay (which has long passed by now): no request
        # of the global budget was spent on an indicator nobody would have seen.
        assert fake.typing.get(quick, 0) == 0
    finally:
        await adapter.stop()


async def test_is_typing_never_shows_under_the_answer_it_announced(fake, tmp_path):
    # Discord shows "is typing…" for ~10 s from when the POST arrives, and only a message from the bot ends it:
    # a POST still on its way when the answer goes out would show the indicator under the finished answer.
    service = FakeChatService()
    adapter = make_adapter(fake, service, tmp_path, typing_delay=0.2)
    await adapter.start()
    try:
        channel = general(fake)
        fake.typing_delay = 1.0                   # the indicator's POST is slow to arrive
        service.gate = asyncio.Event()            # the model thinks past the typing delay
        await fake.user_message(channel, fake.alice, "slow one", mention_bot=True)
        try:
            await fake.wait_for(lambda: fake.typing_on_the_way >= 1)
        finally:
            service.gate.set()                    # the answer is ready while the indicator is on its way
        await answered(fake, channel, "You said: slow one")
        await fake.wait_for(lambda: fake.typing.get(channel, 0) >= 1)
        assert fake.typing_shown == [(channel, 0)]   # it showed before the answer, not under it
    finally:
        await adapter.stop()


async def test_a_final_edit_goes_before_other_replies_edits_and_replaces_its_own_waiting_edit(fake, tmp_path):
    service = StreamingService()
    pacers = Pacers(channel_limit=5, channel_period=WINDOW, global_limit=3, global_period=WINDOW, progress_limit=3)
    adapter = make_adapter(fake, service, tmp_path, pacers=pacers)
    await adapter.start()
    held = 0
    try:
        ch_a, ch_b = general(fake), fake.channel_id(fake.guild, "random")
        await fake.user_message(ch_a, fake.alice, "a", mention_bot=True)
        await fake.user_message(ch_b, fake.alice, "b", mention_bot=True)
        a, b = await service.stream_for("a"), await service.stream_for("b")
        await a.text("Basil")                      # first words: posted as soon as there is room
        await b.text("Mint")
        await fake.wait_for(lambda: fake.messages_in(ch_a, by_bot=True) and fake.messages_in(ch_b, by_bot=True))

        # Discord's global budget is used up (by other answers, say): a progress edit finds no room and is
        # skipped (tried again later, bots/discord/delivery); a final edit waits its turn. (Taken once the
        # window is clear, so all of it is held here: no slot comes free when an older request leaves the window.)
        await fake.wait_for(lambda: pacers.global_.used() == 0)
        while pacers.global_.try_acquire():
            held += 1
        await b.text(" and lime")                  # B's progress edit: no room now
        await a.text(" and tomato")                # A's neither
        closing = asyncio.create_task(a.close())   # A's model is done: its final text is ready
        await fake.wait_for(lambda: pacers.global_.waiting_urgent == 1)
        for _ in range(held):
            pacers.global_.give_back()
        held = 0
        await closing
        await fake.wait_for(lambda: len(fake.messages_in(ch_b, by_bot=True)[0].history) == 2)  # B's turn came
        await b.close()

        (msg_a,) = fake.messages_in(ch_a, by_bot=True)
        (msg_b,) = fake.messages_in(ch_b, by_bot=True)
        # A never showed its moot progress edit: from the first words straight to the whole answer...
        assert msg_a.history == ["Basil ▌", "Basil and tomato"]
        assert msg_b.history == ["Mint ▌", "Mint and lime ▌", "Mint and lime"]
        # ...and that final edit went before B's progress edit, which had been held back longer.
        patches = [r["path"].rsplit("/", 1)[-1] for r in fake.requests if r["method"] == "PATCH"]
        assert patches == [msg_a.id, msg_b.id, msg_b.id]
        assert fake.rate_limited == []
    finally:
        for _ in range(held):
            pacers.global_.give_back()
        for question in ("a", "b"):
            fut = service.stream_for(question)
            if fut.done() and question not in service.closed:
                await fut.result().close()
        await adapter.stop()


# ---- what goes over the wire ------------------------------------------------------------------------


class RecordingDiscord(FakeDiscord):
    """The stand-in, also keeping the JSON body of every message the bot posts or edits."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.bodies: list[tuple[str, dict]] = []

    async def _read_body(self, request):
        body, files = await super()._read_body(request)
        if request.path.endswith("/messages") or "/messages/" in request.path:
            self.bodies.append((request.method, body))
        return body, files


class StreamingChatService(FakeChatService):
    """Streams its answer through the target's own reply stream, in deltas, like the real service."""

    async def handle(self, msg, target, *, approver=None) -> None:
        self.handled.append(msg)
        answer = self.answers.pop(0)
        stream = target.open_stream(lambda message_id: asyncio.sleep(0))
        for i in range(0, len(answer), 500):
            await stream.text(answer[i:i + 500])
        await stream.close()


async def test_a_long_answer_pings_nobody_and_each_part_replies_to_the_one_before(tmp_path):
    fake = RecordingDiscord(channel_limit=5, channel_period=WINDOW, global_limit=50)
    await fake.start()
    guild = fake.add_guild("Team", ("general",))
    alice = fake.add_user("alice")
    service = StreamingChatService()
    # 4,500 characters that would ping everyone if Discord let them: three messages.
    service.answers.append(("@everyone look " + "x" * 80 + "\n") * 47)
    bot = make_adapter(fake, service, tmp_path)
    await bot.start()
    try:
        ch = fake.channel_id(guild, "general")
        mid = await fake.user_message(ch, alice, "long one please", mention_bot=True)
        await fake.wait_for(lambda: "".join(m.content for m in fake.messages_in(ch, by_bot=True)).count("@everyone") == 47)
        parts = fake.messages_in(ch, by_bot=True)
        assert len(parts) >= 3
        # The first part replies to alice's message, every further part to the part before it.
        assert [p.reference_id for p in parts] == [mid] + [p.id for p in parts[:-1]]
        posts = [b for method, b in fake.bodies if method == "POST"]
        edits = [b for method, b in fake.bodies if method == "PATCH"]
        assert len(posts) == len(parts) and edits
        for body in posts + edits:
            assert body["allowed_mentions"]["parse"] == []               # no @everyone, no user pings
        for body in posts:
            assert body["allowed_mentions"]["replied_user"] is False     # replying doesn't ping alice
            assert body["message_reference"]["fail_if_not_exists"] is False
            assert body["nonce"] and body["enforce_nonce"] is True       # a retried POST can't post twice
        assert len({b["nonce"] for b in posts}) == len(posts)
    finally:
        await bot.stop()
        await fake.stop()


async def test_the_bot_asks_the_gateway_only_for_what_it_reads(fake, bot):
    (session,) = fake._sessions.values()
    guilds, guild_messages, dm_messages, message_content = 1 << 0, 1 << 9, 1 << 12, 1 << 15
    # No typing, reactions, voice, presence or member events: each would be decoded for nothing.
    assert session.intents == guilds | guild_messages | dm_messages | message_content
