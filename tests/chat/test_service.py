"""ChatService with fakes of our own ports: routing, conversations, de-dup, one turn at a time, errors, shutdown."""
from __future__ import annotations

import asyncio

import pytest

from core.config.schema import AssistantConfig, ChannelRoute, Config, SlackConfig
from core.model import Author, BackendError, Citation, Completed, InboundMessage, TextDelta, ToolUpdate, Usage
from core.chat.service import INTERRUPTED_NOTICE, SHUTTING_DOWN_NOTICE, ChatService
from core.store.sqlite import SqliteStore
from tests.support.ports import RecordingAdapter, RecordingTarget, ScriptedBackend


def make_config(**overrides) -> Config:
    assistants = {
        "food": AssistantConfig(name="food", model="gpt-test", scope="thread"),
        "math": AssistantConfig(name="math", model="gpt-test", scope="channel_user"),
    }
    return Config(default_assistant="food", assistants=assistants, **overrides)


def slack_msg(text: str, *, user="U1", channel="C1", thread=None, mention=True, event_id=None, direct=False,
              assistant=None) -> InboundMessage:
    return InboundMessage(platform="slack", workspace="T1", channel=channel, author=Author(user, f"user {user}"),
                          text=text, thread=thread, mentions_bot=mention, is_direct=direct, event_id=event_id,
                          assistant=assistant)


async def until(condition, timeout: float = 20.0) -> None:
    """Wait (bounded) for something the service does in the background."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out waiting"
        await asyncio.sleep(0.005)


@pytest.fixture
async def store(tmp_path):
    async with SqliteStore(tmp_path / "tb.db") as s:
        yield s


async def test_mention_gets_the_model_answer_and_the_thread_keeps_its_conversation(store):
    backend = ScriptedBackend()
    service = ChatService(make_config(), store, {"openai": backend})
    first, second = RecordingTarget(), RecordingTarget()
    await service.handle(slack_msg("hello", thread="100.1"), first)
    await service.handle(slack_msg("and again", thread="100.1"), second)
    assert first.shown == "You said: hello"
    assert second.shown == "You said: and again"
    assert [t.conversation_id for t in backend.turns] == ["conv_1", "conv_1"]
    assert backend.conversations[0]["user_id"] == "U1" and backend.conversations[0]["channel"] == "C1"
    assert backend.conversations[0]["user_name"] == "user U1"


async def test_conversation_is_resumed_after_a_restart(tmp_path):
    async with SqliteStore(tmp_path / "tb.db") as store:
        backend = ScriptedBackend()
        await ChatService(make_config(), store, {"openai": backend}).handle(slack_msg("one", thread="1.1"),
                                                                             RecordingTarget())
    async with SqliteStore(tmp_path / "tb.db") as store:
        backend2 = ScriptedBackend()
        await ChatService(make_config(), store, {"openai": backend2}).handle(slack_msg("two", thread="1.1"),
                                                                              RecordingTarget())
    assert backend2.conversations == []  # nothing created: the stored conversation was resumed
    assert backend2.turns[0].conversation_id == "conv_1"


async def test_the_same_event_delivered_twice_is_answered_once(store):
    backend = ScriptedBackend()
    service = ChatService(make_config(), store, {"openai": backend})
    target = RecordingTarget()
    await asyncio.gather(*(service.handle(slack_msg("hi", event_id="C1:1.0"), target) for _ in range(3)))
    assert len(backend.turns) == 1
    assert target.shown == "You said: hi"


async def test_channel_chatter_is_ignored_but_follow_ups_in_the_bots_thread_are_answered(store):
    backend = ScriptedBackend()
    service = ChatService(make_config(), store, {"openai": backend})
    ignored = RecordingTarget()
    await service.handle(slack_msg("lunch?", mention=False), ignored)
    assert ignored.messages == [] and backend.turns == []
    await service.handle(slack_msg("@bot start", thread="5.5"), RecordingTarget())
    follow = RecordingTarget()
    await service.handle(slack_msg("more please", thread="5.5", mention=False), follow)
    assert follow.shown == "You said: more please"


class _SlowMarkerStore:
    """The real store, with the thread-marker write slowed down as a busy shared database would."""

    def __init__(self, store) -> None:
        self._store = store

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def mark_thread(self, *args, **kwargs) -> None:
        await asyncio.sleep(0.3)
        await self._store.mark_thread(*args, **kwargs)


class _WatchedTarget(RecordingTarget):
    """Sends a follow-up without a mention to another process the moment the first text shows."""

    def __init__(self, other: ChatService, follow: RecordingTarget) -> None:
        super().__init__()
        self._other, self._follow = other, follow
        self.sent: asyncio.Task | None = None

    async def post(self, text: str) -> str:
        message_id = await super().post(text)
        if self.sent is None:
            self.sent = asyncio.ensure_future(self._other.handle(
                slack_msg("and a follow-up", thread="7.7", mention=False), self._follow))
        return message_id


async def test_a_follow_up_sent_the_moment_the_answer_shows_is_answered_by_another_process(store):
    # the thread marker is what tells every process the thread is the bot's: it is stored before the first word
    slow = _SlowMarkerStore(store)
    first = ChatService(make_config(), slow, {"openai": ScriptedBackend()})
    other = ChatService(make_config(), store, {"openai": ScriptedBackend()})
    follow = RecordingTarget()
    watched = _WatchedTarget(other, follow)
    await first.handle(slack_msg("@bot start", thread="7.7"), watched)
    await watched.sent
    assert follow.shown == "You said: and a follow-up"


async def test_open_channel_answers_without_a_mention(store):
    config = make_config(slack=SlackConfig(channels={"C9": ChannelRoute(assistant="math",
                                                                         respond_without_mention=True)}))
    backend = ScriptedBackend()
    service = ChatService(config, store, {"openai": backend})
    target = RecordingTarget()
    await service.handle(slack_msg("2+2", channel="C9", mention=False), target)
    assert target.shown == "You said: 2+2"
    assert backend.turns[0].assistant.name == "math"


async def test_messages_in_one_conversation_wait_their_turn_none_dropped(store):
    backend = ScriptedBackend()
    backend.gate = asyncio.Event()
    service = ChatService(make_config(), store, {"openai": backend})
    a, b = RecordingTarget(), RecordingTarget()
    first = asyncio.create_task(service.handle(slack_msg("first", thread="7.7"), a))
    second = asyncio.create_task(service.handle(slack_msg("second", thread="7.7"), b))
    await until(lambda: backend.turns)
    await asyncio.sleep(0.05)
    assert [t.text for t in backend.turns] == ["first"]  # the second waits for the first to finish
    backend.gate.set()
    await asyncio.gather(first, second)
    assert a.shown == "You said: first" and b.shown == "You said: second"


async def test_backend_error_ends_the_reply_with_a_notice_keeping_the_text(store):
    backend = ScriptedBackend([TextDelta("Half an ans"), BackendError("The model is overloaded (429). Try again.")])
    service = ChatService(make_config(), store, {"openai": backend})
    target = RecordingTarget()
    await service.handle(slack_msg("hi"), target)
    assert target.shown.startswith("Half an ans")
    assert "⚠️ The model is overloaded (429). Try again." in target.shown


async def test_tool_progress_citations_and_usage(store):
    backend = ScriptedBackend([
        ToolUpdate("fs1", "file_search", "running", "Searching files"),
        ToolUpdate("fs1", "file_search", "done", "Searching files"),
        TextDelta("Bertha is the espresso machine."),
        Citation(1, "handbook.md", file_id="file-1"),
        Completed(Usage(input_tokens=120, cached_tokens=20, output_tokens=30, tool_calls=1)),
    ])
    service = ChatService(make_config(), store, {"openai": backend})
    target = RecordingTarget()
    await service.handle(slack_msg("who is Bertha?"), target)
    assert target.shown.startswith("Bertha is the espresso machine.")
    assert "handbook.md" in target.shown and "Searching files" not in target.shown
    rows = await store.usage_rows(0, 1e12)
    assert [(r.input_tokens, r.cached_tokens, r.output_tokens, r.tool_calls) for r in rows] == [
        (120, 20, 30, 1)]


async def test_unknown_assistant_is_refused_clearly(store):
    service = ChatService(make_config(), store, {"openai": ScriptedBackend()})
    target = RecordingTarget()
    await service.handle(slack_msg("hi", assistant="nope"), target)
    assert target.messages == []
    assert "nope" in target.notices[0][0] and "food" in target.notices[0][0]


async def test_reset_starts_a_new_conversation(store):
    backend = ScriptedBackend()
    service = ChatService(make_config(), store, {"openai": backend})
    await service.handle(slack_msg("one", thread="1.1"), RecordingTarget())
    assert "new conversation" in await service.reset(slack_msg("", thread="1.1"))
    await service.handle(slack_msg("two", thread="1.1"), RecordingTarget())
    assert [t.conversation_id for t in backend.turns] == ["conv_1", "conv_2"]


async def test_choose_assistant_applies_to_the_next_message(store):
    backend = ScriptedBackend()
    service = ChatService(make_config(), store, {"openai": backend})
    assert "math" in await service.choose_assistant(slack_msg(""), "math")
    await service.handle(slack_msg("2+2"), RecordingTarget())
    assert backend.turns[0].assistant.name == "math"
    assert "no assistant" in (await service.choose_assistant(slack_msg(""), "chef")).lower()


async def test_shutdown_interrupts_answers_past_the_grace_period_and_refuses_new_ones(store):
    backend = ScriptedBackend([TextDelta("Working on it"), Completed(Usage())])
    backend.gate = asyncio.Event()  # never set: the answer hangs
    service = ChatService(make_config(), store, {"openai": backend})
    target = RecordingTarget()
    task = asyncio.create_task(service.handle(slack_msg("long one"), target))
    await until(lambda: target.messages)
    assert await service.shutdown(grace=0.05) == 1
    assert task.done()
    assert target.shown.startswith("Working on it") and INTERRUPTED_NOTICE in target.shown
    assert await store.list_inflight() == []
    late = RecordingTarget()
    await service.handle(slack_msg("anyone?"), late)
    assert late.notices == [(SHUTTING_DOWN_NOTICE, True)]


async def test_replies_left_in_flight_by_a_crash_are_marked_on_the_next_start(store):
    await store.add_inflight("slack", "C1", "111.222", "100.1")
    await store.add_inflight("discord", "D1", "999", None)
    adapter = RecordingAdapter()
    service = ChatService(make_config(), store, {"openai": ScriptedBackend()})
    assert await service.recover_interrupted(adapter) == 1
    assert adapter.marked == [("C1", "111.222", "100.1")]
    assert [r.platform for r in await store.list_inflight()] == ["discord"]


async def test_admins_can_reset_someone_elses_conversation_and_others_cannot(store):
    config = make_config(admins=["ADMIN"])
    backend = ScriptedBackend()
    service = ChatService(config, store, {"openai": backend})
    await service.handle(slack_msg("hi", user="U2", channel="D2", direct=True), RecordingTarget())
    refused = await service.reset(slack_msg("", user="U3", channel="D2", direct=True), user="U2")
    assert refused == "Only admins can reset someone else's conversation."
    done = await service.reset(slack_msg("", user="ADMIN", channel="D2", direct=True), user="U2")
    assert done == "Reset U2's conversation with food."
    await service.handle(slack_msg("again", user="U2", channel="D2", direct=True), RecordingTarget())
    assert [t.conversation_id for t in backend.turns] == ["conv_1", "conv_2"]


async def test_a_code_interpreter_container_reused_by_the_next_turn_is_billed_once(store):
    def answer(sessions_reported: int) -> list:
        return [TextDelta("6765"), Completed(Usage(10, 0, 5, 1, sessions_reported), containers=("cntr_1",))]
    backend = ScriptedBackend(answer(1), answer(1), [TextDelta("new box"),
                                                     Completed(Usage(10, 0, 5, 1, 1), containers=("cntr_2",))])
    service = ChatService(make_config(), store, {"openai": backend})
    for text in ("fib 20", "fib 21", "fresh"):
        await service.handle(slack_msg(text, thread="4.4"), RecordingTarget())
    rows = await store.usage_rows(0, 1e12)
    assert [r.code_interpreter_sessions for r in rows] == [1, 0, 1]


async def test_the_turn_lock_and_the_event_claim_are_the_injected_ones(store):
    """The composition root decides how turns are serialized and events claimed (e.g. in a shared database)."""
    from contextlib import asynccontextmanager

    class RecordingLocks:
        def __init__(self) -> None:
            self.held: list[str] = []

        @asynccontextmanager
        async def hold(self, key: str):
            self.held.append(key)
            yield

    class SeenElsewhere:
        """Another process claimed event Ev2 already."""

        async def claim_event(self, platform: str, event_key: str) -> bool:
            return event_key != "Ev2"

    locks = RecordingLocks()
    service = ChatService(make_config(), store, {"openai": ScriptedBackend()}, turn_locks=locks,
                          claims=SeenElsewhere())
    first, second = RecordingTarget(), RecordingTarget()
    await service.handle(slack_msg("hello", thread="100.1", event_id="Ev1"), first)
    await service.handle(slack_msg("hello again", thread="100.1", event_id="Ev2"), second)
    assert first.shown == "You said: hello" and second.shown == ""
    assert len(locks.held) == 1 and "100.1" in locks.held[0] and locks.held[0].endswith("#food")
    assert await service.claim("slack", "Ev2") is False


async def test_an_indicator_that_fails_costs_one_log_line_and_the_answer_comes_all_the_same(store, caplog):
    class NoTyping(RecordingTarget):
        async def typing(self) -> None:   # (awaited in the answer's way: it must not end the answer)
            self.typing_calls += 1
            raise RuntimeError("typing endpoint gone")

    target = NoTyping()
    await ChatService(make_config(), store, {"openai": ScriptedBackend()}).handle(slack_msg("hi", thread="1.1"), target)
    assert target.shown == "You said: hi" and target.notices == [] and target.typing_calls == 1
    (failure,) = [r for r in caplog.records if r.exc_info]
    assert failure.message.startswith("the typing indicator failed for slack|T1|C1|1.1")


async def test_a_sandbox_link_split_over_later_deltas_is_rewritten_never_shown(store):
    """Text after the answer's first words takes its own way to the reply (turn.py); a generated file's link
    split across those later deltas must still become the file as posted, never the model's sandbox path."""
    from core.model import OutboundFile
    backend = ScriptedBackend([TextDelta("Plotted. "), TextDelta("[Download the chart](sand"),
                               TextDelta("box:/mnt/data/c.png) and more."),
                               OutboundFile("c.png", b"\x89PNG", "image/png"), Completed(Usage(10, 0, 5))])
    service = ChatService(make_config(), store, {"openai": backend})
    target = RecordingTarget()
    await service.handle(slack_msg("plot it", thread="9.1"), target)
    assert [f.name for f in target.uploads] == ["c.png"]
    assert target.shown.startswith("Plotted. ") and "Download the chart" in target.shown
    assert target.shown.endswith(" and more.")
    assert "sandbox:" not in target.shown and "/mnt/data" not in target.shown
