"""A new thread's first answer does not wait for POST /v1/conversations: with no spare conversation ready, the first
turn goes with `store: true` and no conversation, and the conversation is made from that turn's items after the
answer (core/backends/openai/first_turn.py). The real OpenAI backend and AsyncOpenAI against the stand-in, the real
stores (SQLite and PostgreSQL).

Each test reads as: someone starts a thread -> they see the answer; their next message -> the model reads the first
exchange as history."""
from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest
from openai import AsyncOpenAI, DefaultAioHttpClient

from core.admin.conversations import ConversationAdmin
from core.backends.openai.backend import OpenAIBackend
from core.backends.openai.files import OpenAIFileBackend
from core.backends.openai.first_turn import NOT_RUN
from core.backends.openai.conversations import OpenAIConversations
from core.chat.routing import conversation_key
from core.chat.service import ChatService
from core.config.schema import AssistantConfig, Config
from core.files.attachments import AttachmentRouter
from core.model import Author, InboundMessage
from core.store.postgres import PostgresStore
from core.store.sqlite import SqliteStore
from bots.standins.openai_script import CodeRun
from bots.standins.openai_server import FakeOpenAI, FunctionCall, ScriptedResponse
from tests.backends.test_openai_backend import StubRegistry
from tests.support.ports import RecordingTarget

FOOD = AssistantConfig(name="food", model="gpt-test", scope="thread", instructions="You are a food expert.")
ANALYST = AssistantConfig(name="analyst", model="gpt-test", scope="thread", tools=[{"type": "code_interpreter"}])
WEATHER = AssistantConfig(name="weather", model="gpt-test", scope="thread",
                          tools=[{"type": "function", "function": "tests.backends.test_openai_backend:query_weather"}])


@pytest.fixture
async def fake():
    async with FakeOpenAI() as f:
        yield f


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request, tmp_path):
    """Opens the store (again, as after a restart) on the same database."""
    if request.param == "sqlite":
        return lambda: SqliteStore(tmp_path / "tb.db")
    url = request.getfixturevalue("postgres_url")
    return lambda: PostgresStore(url)


@contextlib.asynccontextmanager
async def bot(fake, open_store, assistant: AssistantConfig = FOOD, erase=None):
    """A process: its store, its OpenAI backend (no spares ready), its service (`erase`: for reset_deletes)."""
    client = AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0,
                         http_client=DefaultAioHttpClient())
    backend = OpenAIBackend(client, StubRegistry(), spare_conversations=0)
    async with open_store() as store:
        service = ChatService(Config(default_assistant=assistant.name, assistants={assistant.name: assistant}),
                              store, {"openai": backend}, erase=erase)
        try:
            yield service
        finally:
            await backend.aclose()


def mention(text: str, *, message_id: str, thread: str = "100.1", user: str = "U1") -> InboundMessage:
    return InboundMessage(platform="slack", workspace="T1", channel="C1", author=Author(user, f"user {user}"),
                          text=text, thread=thread, mentions_bot=True, message_id=message_id)


def texts(items: list[dict]) -> list[tuple[str, str]]:
    """A model's context as (role or type, text) pairs."""
    out = []
    for item in items:
        if item.get("type", "message") == "message":
            content = item["content"]
            text = content if isinstance(content, str) else "".join(p.get("text", "") for p in content)
            out.append((item["role"], text))
        else:
            out.append((item["type"], item.get("output") or item.get("name") or ""))
    return out


def calls(fake) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in fake.requests if r.path.startswith("/v1/conversations")
            or r.path.startswith("/v1/responses")]


async def row(service: ChatService, msg: InboundMessage, assistant: AssistantConfig = FOOD):
    return await service.store.get_conversation(conversation_key(assistant, msg), assistant.name)


async def test_a_new_thread_is_answered_first_and_its_next_message_reads_the_first_exchange(fake, open_store):
    root = mention("What goes with basil?", message_id="100.1")
    async with bot(fake, open_store) as service:
        first = RecordingTarget()
        await service.handle(root, first)
        assert first.shown == "You said: What goes with basil?"
        # the answer's request left without waiting for a conversation; the conversation was made after it
        assert calls(fake)[:2] == [("POST", "/v1/responses"), ("POST", "/v1/conversations")]
        request = fake.response_requests()[0]
        assert "conversation" not in request and request["store"] is True
        assert request["prompt_cache_key"].startswith("conv-") and "C1" not in request["prompt_cache_key"]
        key = request["prompt_cache_key"]
        record = await row(service, root)
        assert record.pending is False and record.backend_id in fake.conversations
        assert fake.conversations[record.backend_id]["metadata"]["channel"] == "C1"
        assert fake.conversations[record.backend_id]["metadata"]["user_name"] == "user U1"

        second = RecordingTarget()
        await service.handle(mention("And with mint?", message_id="100.2"), second)
        assert second.shown == "You said: And with mint?"
        request = fake.response_requests()[1]
        assert request["conversation"] == record.backend_id and request["prompt_cache_key"] == key
        assert texts(fake.contexts[-1]) == [("user", "What goes with basil?"),
                                            ("assistant", "You said: What goes with basil?"),
                                            ("user", "And with mint?")]
        assert [m for m, p in calls(fake)].count("POST") == 3   # no second conversation


async def test_a_first_turn_with_a_tool_round_makes_its_conversation_before_the_second_request(fake, open_store):
    fake.script(ScriptedResponse(function_calls=(FunctionCall("query_weather", '{"city":"上海"}', "call_1"),)))
    root = mention("Weather in 上海?", message_id="200.1", thread="200.1")
    async with bot(fake, open_store, WEATHER) as service:
        target = RecordingTarget()
        await service.handle(root, target)
        assert "The tool returned:" in target.shown and "Sunny" in target.shown
        assert calls(fake)[:3] == [("POST", "/v1/responses"), ("POST", "/v1/conversations"),
                                   ("POST", "/v1/responses")]
        first, second = fake.response_requests()[:2]
        assert "conversation" not in first
        record = await row(service, root, WEATHER)
        assert second["conversation"] == record.backend_id and not record.pending
        assert [i["type"] for i in second["input"]] == ["function_call_output"]   # the call is in the conversation

        await service.handle(mention("And 北京?", message_id="200.2", thread="200.1"), RecordingTarget())
        assert texts(fake.contexts[-1]) == [("user", "Weather in 上海?"), ("function_call", "query_weather"),
                                            ("function_call_output", target.shown[len("The tool returned: "):]),
                                            ("assistant", target.shown), ("user", "And 北京?")]


async def test_a_conversation_not_made_after_the_first_answer_is_made_by_the_next_message(fake, open_store, caplog):
    # OpenAI refuses to make the conversation after the answer (the process could as well have died there): the
    # thread keeps the stored answer, and its next message — in a restarted process — still reads the exchange.
    root = mention("Is saffron worth it?", message_id="300.1", thread="300.1")
    fake.fail_next(500, path="/v1/conversations")
    async with bot(fake, open_store) as service:
        target = RecordingTarget()
        with caplog.at_level(logging.WARNING, logger="teambridge.service"):
            await service.handle(root, target)
        assert target.shown == "You said: Is saffron worth it?" and target.notices == []
        [line] = [r.getMessage() for r in caplog.records if "could not make the conversation" in r.getMessage()]
        assert "stored answer and its next message tries again" in line
        record = await row(service, root)
        assert record.pending is True and record.backend_id in fake.responses
        assert fake.conversations == {}

    async with bot(fake, open_store) as service:   # restarted: nothing of the first turn held in memory
        target = RecordingTarget()
        await service.handle(mention("How much per dish?", message_id="300.2", thread="300.1"), target)
        assert target.shown == "You said: How much per dish?"
        assert ("GET", f"/v1/responses/{record.backend_id}/input_items") in calls(fake)
        made = await row(service, root)
        assert made.pending is False and made.backend_id in fake.conversations
        assert fake.response_requests()[-1]["conversation"] == made.backend_id
        assert texts(fake.contexts[-1]) == [("user", "Is saffron worth it?"),
                                            ("assistant", "You said: Is saffron worth it?"),
                                            ("user", "How much per dish?")]
        # the first answer belongs to the conversation made: erasing it erases that answer too
        assert await service.store.delete_answers(made.backend_id) == 2


async def test_forgetting_a_person_whose_thread_has_no_conversation_yet_deletes_the_stored_answer(fake, open_store):
    root = mention("Pesto without pine nuts?", message_id="400.1", thread="400.1", user="U7")
    fake.fail_next(500, path="/v1/conversations")
    async with bot(fake, open_store) as service:
        await service.handle(root, RecordingTarget())
        record = await row(service, root)
        assert record.pending
        client = AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)
        admin = ConversationAdmin(service.config, service.store, {"openai": OpenAIConversations(client)})
        [listed] = await admin.list(user="U7")
        assert (listed.id, listed.pending) == (record.backend_id, True)
        shown = await admin.items(listed)
        assert [(i.role, i.text) for i in shown] == [("user", "Pesto without pine nuts?"),
                                                      ("assistant", "You said: Pesto without pine nuts?")]
        report = await admin.delete(await admin.list(user="U7"), forget_user="U7")   # what /forget U7 does
        assert report.deleted == (record.backend_id,)
        assert ("DELETE", f"/v1/responses/{record.backend_id}") in calls(fake)
        assert record.backend_id not in fake.responses
        assert await row(service, root) is None
        await client.close()

        # the thread starts afresh: its next message is a first turn again
        await service.handle(mention("Still there?", message_id="400.2", thread="400.1", user="U7"),
                             RecordingTarget())
        assert texts(fake.contexts[-1]) == [("user", "Still there?")]


async def test_a_thread_whose_stored_first_answer_is_gone_goes_on_in_a_new_conversation(fake, open_store, caplog):
    # The conversation was not made after the first answer, and OpenAI no longer has that answer (stored responses
    # expire; a cut-off one may never have been kept): the thread is not stuck on it — it goes on without it.
    root = mention("Fennel or anise?", message_id="500.1", thread="500.1")
    fake.fail_next(500, path="/v1/conversations")
    async with bot(fake, open_store) as service:
        await service.handle(root, RecordingTarget())
        record = await row(service, root)
        assert record.pending
    fake.responses.pop(record.backend_id)
    async with bot(fake, open_store) as service:
        target = RecordingTarget()
        with caplog.at_level(logging.WARNING):
            await service.handle(mention("Which is milder?", message_id="500.2", thread="500.1"), target)
        assert target.shown == "You said: Which is milder?" and target.notices == []
        assert any("is gone at OpenAI" in r.getMessage() for r in caplog.records)
        made = await row(service, root)
        assert not made.pending and made.backend_id in fake.conversations
        assert texts(fake.contexts[-1]) == [("user", "Which is milder?")]


async def test_reset_and_the_retention_sweep_erase_a_thread_whose_conversation_is_not_made_yet(fake, open_store):
    # reset_deletes and the retention sweep go through the same erase as /forget: the stored first answer is
    # deleted at OpenAI (DELETE /v1/responses/{id}), and the thread's record with it.
    forgetful = FOOD.model_copy(update={"reset_deletes": True})
    fake.fail_next(500, path="/v1/conversations", times=2)
    admins: list[ConversationAdmin] = []
    async with bot(fake, open_store, forgetful, erase=lambda record: admins[0].erase(record)) as service:
        client = AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)
        admins.append(ConversationAdmin(service.config, service.store, {"openai": OpenAIConversations(client)},
                                        clock=lambda: 4e9))   # far in the future: every conversation is idle
        admin = admins[0]
        reset_here = mention("Capers or olives?", message_id="600.1", thread="600.1")
        swept = mention("Salt before or after?", message_id="700.1", thread="700.1", user="U8")
        for msg in (reset_here, swept):
            await service.handle(msg, RecordingTarget())
        first, second = await row(service, reset_here), await row(service, swept)
        assert first.pending and second.pending

        assert await service.reset(mention("/reset", message_id="600.2", thread="600.1")) == \
            "Started a new conversation with food."
        assert await row(service, reset_here) is None and first.backend_id not in fake.responses
        report = await admin.sweep(days=30)
        assert report.deleted == (second.backend_id,)
        assert await row(service, swept) is None and second.backend_id not in fake.responses
        await client.close()


async def test_a_first_turn_stopped_between_its_tool_call_and_the_conversation_leaves_no_call_without_output(
        fake, open_store):
    # The model called a tool, and making the conversation for the second request failed: the turn ends there.
    # The conversation made afterwards from the stored answer must not hold a call without its output — OpenAI
    # refuses such a conversation on every later request ("No tool output found"), and the thread would be dead.
    fake.script(ScriptedResponse(function_calls=(FunctionCall("query_weather", '{"city":"Oslo"}', "call_9"),)))
    fake.fail_next(500, path="/v1/conversations")
    root = mention("Weather in Oslo?", message_id="600.1", thread="600.1")
    async with bot(fake, open_store, WEATHER) as service:
        await service.handle(root, RecordingTarget())
        record = await row(service, root, WEATHER)
        assert record is not None and not record.pending       # made after the failed turn, from the stored answer

        target = RecordingTarget()
        await service.handle(mention("And tomorrow?", message_id="600.2", thread="600.1"), target)
        assert target.shown == "You said: And tomorrow?" and target.notices == []
        assert texts(fake.contexts[-1]) == [("user", "Weather in Oslo?"), ("function_call", "query_weather"),
                                            ("function_call_output", NOT_RUN), ("user", "And tomorrow?")]


async def test_a_first_turn_with_code_made_late_keeps_the_call_and_its_output(fake, open_store):
    # A code interpreter call's `outputs` is required even when null, and a stored response shows it only when
    # asked (`include`): the conversation made late from it must be accepted, with the run's output in it.
    fake.script(ScriptedResponse(text="The mean is 2.", code=CodeRun("print(sum([1,2,3])/3)", logs="2.0")))
    fake.fail_next(500, path="/v1/conversations")
    root = mention("Mean of 1, 2, 3?", message_id="700.1", thread="700.1")
    async with bot(fake, open_store, ANALYST) as service:
        await service.handle(root, RecordingTarget())
        assert (await row(service, root, ANALYST)).pending

    async with bot(fake, open_store, ANALYST) as service:   # restarted: made from what OpenAI kept
        target = RecordingTarget()
        await service.handle(mention("And the median?", message_id="700.2", thread="700.1"), target)
        assert target.notices == [] and target.shown == "You said: And the median?"
        made = await row(service, root, ANALYST)
        assert not made.pending
        [run] = [i for i in fake.conversation_items[made.backend_id] if i.get("type") == "code_interpreter_call"]
        assert run["outputs"] == [{"type": "logs", "logs": "2.0"}]


async def test_items_openai_refuses_fall_back_to_the_exchange_as_people_read_it(fake, open_store, caplog):
    # A refusal (400) of the first turn's items as a conversation would be the same on every try: the thread goes
    # on with the exchange's messages, and says so once in the log.
    fake.script(ScriptedResponse(function_calls=(FunctionCall("query_weather", '{"city":"Rome"}', "call_3"),)))
    root = mention("Weather in Rome?", message_id="800.1", thread="800.1")
    async with bot(fake, open_store, WEATHER) as service:
        fake.fail_next(500, path="/v1/conversations")          # the tool round's conversation: not made
        fake.fail_next(400, path="/v1/conversations")          # … and the items refused afterwards
        with caplog.at_level(logging.WARNING):
            await service.handle(root, RecordingTarget())
        assert any("refused the items" in r.getMessage() for r in caplog.records)
        made = await row(service, root, WEATHER)
        assert made is not None and not made.pending
        await service.handle(mention("Thanks!", message_id="800.2", thread="800.1"), RecordingTarget())
        assert texts(fake.contexts[-1]) == [("user", "Weather in Rome?"), ("user", "Thanks!")]


async def test_a_thread_forgotten_while_its_first_answer_is_written_is_not_brought_back(fake, open_store):
    # /forget (or an admin's delete) does not wait for a turn: it erases the pending thread and its stored answer
    # while the answer is still being written. The conversation the turn then makes from the answer's items is
    # deleted again, and the thread stays forgotten.
    release = asyncio.Event()
    fake.script(ScriptedResponse(text="Toasted sunflower seeds work well.", hold=release, hold_after=2))
    root = mention("Pesto without pine nuts?", message_id="900.1", thread="900.1", user="U9")
    async with bot(fake, open_store) as service:
        answering = asyncio.ensure_future(service.handle(root, RecordingTarget()))
        record = None
        for _ in range(3000):                               # the answer has started: the thread's row is pending
            record = await row(service, root)
            if record is not None and record.pending:
                break
            await asyncio.sleep(0.01)
        assert record is not None and record.pending
        client = AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)
        admin = ConversationAdmin(service.config, service.store, {"openai": OpenAIConversations(client)})
        await admin.delete(await admin.list(user="U9"), forget_user="U9")   # what /forget U9 does
        await client.close()
        release.set()
        await answering
        assert await row(service, root) is None
        assert fake.conversations == {}                     # made from the answer, then deleted again
        await service.handle(mention("Still there?", message_id="900.2", thread="900.1", user="U9"),
                             RecordingTarget())
        assert texts(fake.contexts[-1]) == [("user", "Still there?")]


async def test_a_new_threads_first_message_reads_nothing_from_the_store_before_its_request(fake, open_store):
    # A thread this message starts has no history and no earlier uploads: nothing to read in front of the
    # request (in a burst, every read is a wait for the store in front of every new thread's first request).
    client = AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)
    backend = OpenAIBackend(client, StubRegistry(), spare_conversations=0)
    async with open_store() as store:
        service = ChatService(Config(default_assistant="food", assistants={"food": FOOD}), store, {"openai": backend},
                              files=AttachmentRouter(OpenAIFileBackend(client), store))
        reads: list[int] = []   # how many requests the model had received at each read of a thread's row
        read = store.get_conversation

        async def get_conversation(*args, **kwargs):
            reads.append(len(fake.response_requests()))
            return await read(*args, **kwargs)

        store.get_conversation = get_conversation  # type: ignore[method-assign]
        try:
            first = RecordingTarget()
            await service.handle(mention("What goes with basil?", message_id="100.1"), first)
            assert first.shown == "You said: What goes with basil?"
            assert 0 not in reads
            second = RecordingTarget()   # its next message reads the thread's row, and goes on in its conversation
            await service.handle(mention("And with mint?", message_id="100.2"), second)
            assert second.shown == "You said: And with mint?"
            assert fake.response_requests()[1]["conversation"] in fake.conversations
        finally:
            await backend.aclose()
