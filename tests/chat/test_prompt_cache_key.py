"""One `prompt_cache_key` per conversation, from its first turn on: a thread's first turn may go before its
conversation exists (core/backends/openai/first_turn.py), and a key that switched to the conversation's id at the
second turn made OpenAI's prompt cache miss there. The real ChatService, OpenAIBackend and AsyncOpenAI against the
stand-in OpenAI; each request's body as the stand-in received it."""
from __future__ import annotations

import pytest

from tests.chat.test_first_turn import FOOD, bot, fake, mention, row  # noqa: F401 (fake: a fixture)
from tests.support.ports import RecordingTarget


@pytest.fixture(params=["sqlite"])
def open_store(request, tmp_path):
    from core.store.sqlite import SqliteStore
    return lambda: SqliteStore(tmp_path / "tb.db")


def keys(fake) -> list[str]:
    return [r["prompt_cache_key"] for r in fake.response_requests()]


async def test_every_turn_of_a_thread_has_the_key_of_its_first_and_another_thread_has_another(fake, open_store):
    async with bot(fake, open_store) as service:
        for n, text in enumerate(("Basil or mint?", "And for a salad?", "How much?")):
            await service.handle(mention(text, message_id=f"100.{n + 1}", thread="100.1"), RecordingTarget())
        made = await row(service, mention("", message_id="100.1", thread="100.1"))
        # turn 1 went before its conversation existed; turns 2 and 3 in it — one key all the way
        assert [r.get("conversation") for r in fake.response_requests()] == [None, made.backend_id, made.backend_id]
        first, second, third = keys(fake)
        assert first == second == third
        assert "C1" not in first and "100.1" not in first and "U1" not in first   # no platform id in the clear

        await service.handle(mention("Thyme or oregano?", message_id="200.1", thread="200.1"), RecordingTarget())
        await service.handle(mention("Dried?", message_id="200.2", thread="200.1"), RecordingTarget())
        other_first, other_second = keys(fake)[3:]
        assert other_first == other_second != first


async def test_people_sharing_a_channel_conversation_share_its_key(fake, open_store):
    channel = FOOD.model_copy(update={"scope": "channel"})
    async with bot(fake, open_store, channel) as service:
        await service.handle(mention("Is sumac sour?", message_id="300.1", thread="", user="U1"), RecordingTarget())
        await service.handle(mention("With fish?", message_id="300.2", thread="", user="U2"), RecordingTarget())
        assert len(set(keys(fake))) == 1
