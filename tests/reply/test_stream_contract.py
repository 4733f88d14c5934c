"""The ReplyStream contract (core.ports), run against every implementation.

Whatever carries a reply — core's EditStream over any ReplyTarget, Slack's native stream (chat.*Stream),
Slack's post-when-ready, the console — a reader sees the same thing:
- every character the model wrote, in order, split into messages that each render on their own (a code
  block cut by a split is closed at the end of one message and reopened in the next);
- at the end core's tail: "(no answer)", footnotes after a blank line, or one notice line (an open code
  block closed first);
- a lifetime that says how the reply ended, tells its watchers once, and lets a reader stop it;
- on Slack, nothing the reply reserved from the workspace's budgets stays reserved once it has ended.

The Slack streams run through SlackReplyTarget against the stand-in Slack (real slack_sdk); the transport
is steered by holding the budgets the way other replies of a busy workspace would. The Discord targets (a
reply in a channel: posts and message edits; a slash command's reply: the deferred @original response and
interaction followups) run core's EditStream through real discord.py against the stand-in Discord, with the
gateway connected as the adapter has it.
"""
from __future__ import annotations

import asyncio
import contextlib
import io
from typing import AsyncIterator, Awaitable, Callable

import discord
import pytest

from core.model import OutboundFile, ReplyStopped, ToolUpdate
from core.ports import Limits, ReplyStream
from core.reply.splitting import is_fence_line, unsplit
from core.reply.stream import EditStream
from bots.console.target import ConsoleTarget
from bots.discord import endpoints
from bots.discord.events import ReplyChains
from bots.discord.pacing import Pacers
from bots.discord.target import ChannelTarget as DiscordChannelTarget, InteractionTarget
from bots.slack.ratelimit import RateBudget, make_client
from bots.slack.target import EDIT, NATIVE, POST, ReplyPlace, SlackReplyTarget, StreamSettings
from bots.standins.discord_server import FLAG_LOADING, FakeDiscord
from bots.standins.slack_server import FakeSlack

CURSOR = " ▌"


# ---- the implementations ----------------------------------------------------------------------------


class ChannelTarget:
    """A chat channel as a ReplyTarget: messages by id. `skip_progress`: the strictest target the contract
    allows — it skips every progress edit (and says so), so readers only ever see posts and final edits."""

    def __init__(self, max_chars: int, *, skip_progress: bool) -> None:
        self.limits = Limits(max_chars=max_chars, edit_interval=0.0)
        self.skip_progress = skip_progress
        self.messages: dict[str, str] = {}

    async def post(self, text: str) -> str:
        assert 0 < len(text) <= self.limits.max_chars
        message_id = f"m{len(self.messages) + 1}"
        self.messages[message_id] = text
        return message_id

    async def edit(self, message_id: str, text: str, *, final: bool = False) -> bool:
        assert 0 < len(text) <= self.limits.max_chars
        if self.skip_progress and not final:
            return False
        self.messages[message_id] = text
        return True

    async def upload(self, file: OutboundFile) -> None:  # pragma: no cover - not part of a stream
        raise NotImplementedError

    async def notice(self, text: str, *, ephemeral: bool = False) -> None:  # pragma: no cover
        raise NotImplementedError

    async def typing(self) -> None:  # pragma: no cover
        pass

    def open_stream(self, on_posted):
        return None


class Kind:
    """One ReplyStream implementation under test and how a reader sees its output."""
    name = ""
    messages = True          # the reply is a list of messages (False: one append-only text)

    async def open(self) -> ReplyStream:
        raise NotImplementedError

    def read(self) -> list[str]:
        raise NotImplementedError

    def streaming(self) -> bool:
        """Some message of the reply still shows it as being written."""
        return False

    def reserved(self) -> int:
        """Calls this reply still holds reserved in its workspace's budgets (Slack only)."""
        return 0

    async def settle(self) -> None:
        await asyncio.sleep(0)


class EditKind(Kind):
    def __init__(self, *, skip_progress: bool) -> None:
        self.name = "edit, skipping progress" if skip_progress else "edit"
        self.target = ChannelTarget(100, skip_progress=skip_progress)

    async def open(self) -> ReplyStream:
        return EditStream(self.target)

    def read(self) -> list[str]:
        return list(self.target.messages.values())

    def streaming(self) -> bool:
        return any(m.endswith(CURSOR) for m in self.target.messages.values())


class ConsoleKind(Kind):
    name = "console"
    messages = False

    def __init__(self, tmp_path) -> None:
        self.out = io.StringIO()
        self.target = ConsoleTarget(self.out, tmp_path)

    async def open(self) -> ReplyStream:
        return self.target.open_stream(_ignore)

    def read(self) -> list[str]:
        out = self.out.getvalue()
        return [out[:-1] if out.endswith("\n") else out]


class SlackKind(Kind):
    """A reply in a thread of the stand-in Slack, its transport chosen by SlackReplyTarget."""
    SETTINGS = StreamSettings(flush_chars=40, flush_interval=0.01, max_chars=300, post_max_chars=300,
                              first_post_after=0.05, post_interval=0.05)

    def __init__(self, slack: FakeSlack, transport: str) -> None:
        self.name = f"slack {transport}"
        self.slack, self.transport = slack, transport
        self.budget = RateBudget(minute=600.0)
        self.client = make_client(slack.bot_token, slack.api_url, self.budget)
        self.root = "1700000000.000001"
        self.held = self.budget.reservation()
        if transport != NATIVE:
            self.held.add("chat.startStream", 20)     # other replies hold every stream start
        if transport == POST:
            self.held.add("chat.update", 50)          # ...and every edit
        self._baseline = self._reserved_now()

    def _reserved_now(self) -> int:
        return sum(self.budget.bucket_for(m).reserved for m in ("chat.startStream", "chat.stopStream",
                                                                "chat.update", "chat.appendStream"))

    async def open(self) -> ReplyStream:
        self.target = SlackReplyTarget(
            self.client, ReplyPlace(channel="C1", thread_ts=self.root, user="U1", team=self.slack.team_id),
            native_streaming=lambda: True, on_refused=lambda e: None, status_supported=lambda: False,
            on_status_refused=lambda: None, stream=self.SETTINGS, budget=self.budget)
        stream = self.target.open_stream(_ignore)
        assert self.target.transport == self.transport
        return stream

    def read(self) -> list[str]:
        return [m.text for m in self.slack.bot_messages("C1", self.root)]

    def streaming(self) -> bool:
        return any(m.streaming for m in self.slack.bot_messages("C1", self.root))

    def reserved(self) -> int:
        return self._reserved_now() - self._baseline

    async def settle(self) -> None:
        await asyncio.sleep(0.03)  # the flusher's interval: let it send what it has


class DiscordKind(Kind):
    """A reply in a channel of the stand-in Discord (`channel`: posts, each replying to the previous part, and
    message edits through the channel's pacer) or to a slash command (`interaction`: the deferred "thinking…"
    response becomes the first part, further parts are interaction followups)."""
    # Smaller than Discord's 2,000 characters and 1 s between edits, so that every answer here is split
    # and streamed in several edits; the window is the stand-in's and the pacers' alike.
    LIMITS = Limits(max_chars=400, edit_interval=0.05)
    WINDOW = 0.5

    def __init__(self, fake: FakeDiscord, client: discord.Client, how: str) -> None:
        self.name = f"discord {how}"
        self.fake, self.client, self.how = fake, client, how
        self.guild = fake.guild
        self.channel_id = fake.channel_id(self.guild, "general")
        self.interactions: asyncio.Queue[discord.Interaction] = asyncio.Queue()
        self.record = None
        self.pacers = Pacers(channel_limit=5, channel_period=self.WINDOW)

    async def open(self) -> ReplyStream:
        if self.how == "channel":
            target = DiscordChannelTarget(self.client.get_channel(int(self.channel_id)), pacers=self.pacers,
                                          chains=ReplyChains(), reply_to=None, root=None)
        else:
            self.record = await self.fake.slash(self.channel_id, self.fake.alice, "ask", {"prompt": "hello"})
            interaction = await asyncio.wait_for(self.interactions.get(), 30)
            response = await interaction.response.defer(thinking=True)   # as the adapter acknowledges /ask
            target = InteractionTarget(interaction, chains=ReplyChains(), root=None,
                                       original_id=response.message_id)
        target.limits = self.LIMITS
        stream = target.open_stream(_ignore) or EditStream(target, on_posted=_ignore)  # as ChatService does
        return stream

    def _messages(self):
        if self.record is None:
            return self.fake.messages_in(self.channel_id, by_bot=True)
        return [self.fake.messages[i] for i in [self.record.original_id, *self.record.followup_ids]]

    def read(self) -> list[str]:
        return [m.content for m in self._messages()]

    def streaming(self) -> bool:
        return any(m.content.endswith(CURSOR) or m.flags & FLAG_LOADING for m in self._messages())

    async def settle(self) -> None:
        await asyncio.sleep(0.06)  # the flusher's interval: let it send what it has


async def _ignore(message_id: str) -> None:
    return None


KINDS = ["edit", "edit-skipping", "slack-native", "slack-edit", "slack-post", "console",
         "discord-channel", "discord-interaction"]


@contextlib.asynccontextmanager
async def discord_implementation(how: str) -> AsyncIterator[DiscordKind]:
    fake = FakeDiscord(channel_limit=5, channel_period=DiscordKind.WINDOW)
    await fake.start()
    saved = endpoints.apply(endpoints.Endpoints(fake.api_url, fake.gateway_url))
    client = discord.Client(intents=discord.Intents.default(), guild_ready_timeout=0.05)
    try:
        fake.guild = fake.add_guild("Team", ("general",))
        fake.alice = fake.add_user("alice")
        k = DiscordKind(fake, client, how)

        @client.event
        async def on_interaction(interaction: discord.Interaction) -> None:  # what the command tree gets
            k.interactions.put_nowait(interaction)

        await client.login(fake.token)
        connection = asyncio.create_task(client.connect(reconnect=False))
        await asyncio.wait_for(client.wait_until_ready(), 30)
        yield k
    finally:
        await client.close()
        if "connection" in locals():
            await asyncio.wait([connection])
        endpoints.restore(saved)
        await fake.stop()


@contextlib.asynccontextmanager
async def implementation(kind: str, tmp_path) -> AsyncIterator[Kind]:
    match kind:
        case "edit" | "edit-skipping":
            yield EditKind(skip_progress=kind == "edit-skipping")
        case "console":
            yield ConsoleKind(tmp_path)
        case "discord-channel" | "discord-interaction":
            async with discord_implementation(kind.removeprefix("discord-")) as k:
                yield k
        case _:
            transport = {"slack-native": NATIVE, "slack-edit": EDIT, "slack-post": POST}[kind]
            async with FakeSlack() as slack:
                k = SlackKind(slack, transport)
                try:
                    yield k
                finally:
                    await k.client.close() if hasattr(k.client, "close") else None


@pytest.fixture(params=KINDS)
def kind(request) -> str:
    return request.param


# ---- helpers -----------------------------------------------------------------------------------------


async def feed(stream: ReplyStream, text: str, k: Kind, step: int = 7) -> None:
    """The model writes `text` in small deltas; the stream's own tasks get to run between them."""
    for i in range(0, len(text), step):
        await stream.text(text[i:i + step])
        for _ in range(3):
            await asyncio.sleep(0)
        if isinstance(k, SlackKind) and i % (step * 6) == 0:
            await asyncio.sleep(0.005)


def balanced(message: str) -> bool:
    return sum(is_fence_line(line) for line in message.split("\n")) % 2 == 0


def whole(k: Kind) -> str:
    return unsplit(k.read()) if k.messages else k.read()[0]


PROSE = " ".join(f"word{i}" for i in range(150)) + "."
CODE = ("Here is the loop:\n\n```python\n" + "".join(f"print('line {i}')\n" for i in range(40))
        + "```\n\nThat prints forty lines.")


def watch(stream: ReplyStream, k: Kind) -> list[tuple[str, str, list[str]]]:
    seen: list[tuple[str, str, list[str]]] = []
    stream.lifetime.on_ending(lambda state: seen.append(("ending", state, k.read())))
    stream.lifetime.on_ended(lambda state: seen.append(("ended", state, k.read())))
    return seen


# ---- every character, in messages that render on their own --------------------------------------------


@pytest.mark.parametrize("answer", [PROSE, CODE], ids=["prose", "code"])
async def test_the_reader_sees_the_whole_answer_in_messages_that_each_render_whole(kind, answer, tmp_path):
    async with implementation(kind, tmp_path) as k:
        stream = await k.open()
        events = watch(stream, k)
        await feed(stream, answer, k)
        await stream.close()
        await k.settle()
        assert whole(k) == answer
        assert not k.streaming()
        if k.messages:
            assert all(balanced(m) for m in k.read()), k.read()
        if kind in ("edit", "edit-skipping", "slack-native", "slack-post", "discord-channel",
                    "discord-interaction") and answer is CODE:
            assert len(k.read()) >= 2                     # the code block was split across messages
        assert [(e, s) for e, s, _ in events] == [("ending", "finished"), ("ended", "finished")]
        assert unsplit(events[-1][2]) == answer if k.messages else True  # complete when the end is announced
        assert stream.lifetime.state == "finished"
        assert k.reserved() == 0


async def test_the_first_words_are_shown_before_the_answer_is_complete(kind, tmp_path):
    if kind == "slack-post":
        pytest.skip("post when ready shows finished parts only, by design")
    async with implementation(kind, tmp_path) as k:
        stream = await k.open()
        await stream.text("Basil, tomato")
        await k.settle()
        shown = whole(k).replace(CURSOR, "")
        assert shown == "Basil, tomato"
        await stream.text(" and salt.")
        await stream.close()
        await k.settle()
        assert whole(k) == "Basil, tomato and salt."


# ---- the tail -----------------------------------------------------------------------------------------


async def test_footnotes_follow_the_answer_after_a_blank_line(kind, tmp_path):
    async with implementation(kind, tmp_path) as k:
        stream = await k.open()
        await feed(stream, "Opening hours are 9 to 5 [1].", k)
        await stream.close("[1] handbook.md")
        await k.settle()
        assert whole(k) == "Opening hours are 9 to 5 [1].\n\n[1] handbook.md"
        assert k.reserved() == 0


async def test_an_answer_without_words_says_so(kind, tmp_path):
    async with implementation(kind, tmp_path) as k:
        stream = await k.open()
        await stream.close()
        await k.settle()
        assert whole(k) == "(no answer)"
        assert k.reserved() == 0


async def test_a_failure_keeps_the_text_and_ends_with_one_notice_outside_the_code(kind, tmp_path):
    async with implementation(kind, tmp_path) as k:
        stream = await k.open()
        events = watch(stream, k)
        await feed(stream, "Let me run it:\n\n```python\nwhile True:", k)
        await stream.fail("OpenAI had a server error (500)")
        await k.settle()
        assert whole(k) == "Let me run it:\n\n```python\nwhile True:\n```\n\n⚠️ OpenAI had a server error (500)"
        assert not k.streaming()
        assert [(e, s) for e, s, _ in events] == [("ending", "failed"), ("ended", "failed")]
        assert k.reserved() == 0


async def test_a_failure_before_any_words_is_the_notice_alone(kind, tmp_path):
    async with implementation(kind, tmp_path) as k:
        stream = await k.open()
        await stream.fail("Rate limited by OpenAI, try again in a minute.")
        await k.settle()
        assert whole(k) == "⚠️ Rate limited by OpenAI, try again in a minute."
        assert k.reserved() == 0


async def test_tool_progress_never_ends_up_in_the_answer(kind, tmp_path):
    async with implementation(kind, tmp_path) as k:
        stream = await k.open()
        await stream.status(ToolUpdate("ci_1", "code_interpreter", "running", "Running code"))
        await k.settle()
        await stream.status(ToolUpdate("ci_1", "code_interpreter", "done", "Running code"))
        await feed(stream, "It is 42.", k)
        await stream.close()
        await k.settle()
        if k.messages:
            assert whole(k) == "It is 42."
        else:   # the console prints tool progress on lines of its own, before the answer
            assert whole(k).endswith("\nIt is 42.")
        assert k.reserved() == 0


# ---- stopping -----------------------------------------------------------------------------------------


async def test_a_stopped_reply_keeps_its_text_ends_with_a_note_and_takes_no_more_text(kind, tmp_path):
    async with implementation(kind, tmp_path) as k:
        stream = await k.open()
        events = watch(stream, k)
        await feed(stream, "First part.", k)
        await k.settle()
        stream.lifetime.stop()
        with pytest.raises(ReplyStopped):
            await stream.text(" More that nobody wants.")
        await stream.close()      # what the service does when the model stops
        await k.settle()
        shown = whole(k)
        assert "(no answer)" not in shown and "⚠️" not in shown
        # the text so far stays, with a short note saying why it ends there
        assert shown.startswith("First part.") and shown.endswith("⏹️ stopped")
        assert not k.streaming()
        assert stream.lifetime.state == "stopped"
        assert [e for e, _, _ in events] == ["ending", "ended"]
        assert k.reserved() == 0


# ---- targets that skip progress edits -----------------------------------------------------------------


@pytest.mark.parametrize("step", [1, 3, 7, 11])
async def test_edits_a_target_skipped_are_made_up_for_by_the_final_text(step, tmp_path):
    # The strictest target: every progress edit is skipped (Discord drops those still queued when the
    # final text is ready). What it shows in the end must still be the whole answer, message by message.
    async with implementation("edit-skipping", tmp_path) as k:
        stream = await k.open()
        await feed(stream, PROSE + "\n\n" + CODE, k, step=step)
        await stream.close()
        assert unsplit(k.read()) == PROSE + "\n\n" + CODE
        assert not k.streaming()


async def test_a_discord_progress_edit_dropped_for_the_final_text_is_not_taken_as_shown(tmp_path):
    # Other replies in the channel hold its whole budget, so the reply's progress edit waits for a slot;
    # the answer ends meanwhile and the edit is dropped (the final text supersedes it). The target must
    # say it was not shown: here the dropped edit is the first message's undecorated final part (the
    # answer stopped just past the split point), which the final render would otherwise think is there.
    async with implementation("discord-channel", tmp_path) as k:
        stream = await k.open()
        answer = PROSE[:DiscordKind.LIMITS.max_chars + 4]
        await stream.text(answer[:10])                       # posted at once: "word0 word ▌"
        pacer = k.pacers.channel(int(k.channel_id))
        held = 0
        while pacer.try_acquire():                           # every slot in flight for other replies
            held += 1
        await stream.text(answer[10:])
        await k.fake.wait_for(lambda: pacer.waiting == 1, 30)  # the progress edit queues behind them
        closing = asyncio.create_task(stream.close())
        await k.fake.wait_for(lambda: pacer.waiting_urgent == 1, 30)  # its final edit now waits instead
        for _ in range(held):
            pacer.give_back()
        await closing
        assert unsplit(k.read()) == answer
        assert not k.streaming()
