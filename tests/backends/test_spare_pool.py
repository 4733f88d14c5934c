"""The spare conversations' pool (core/backends/openai/spares.py) under steady traffic and at a shutdown while the
model server does not answer: the configured spares come back between new threads, and a stop never waits out
its patience for a server that has not answered a single create."""
from __future__ import annotations

import asyncio
import logging

import pytest
from openai import AsyncOpenAI

from bots.standins.openai_server import FakeOpenAI
from core.backends.openai import spares
from core.backends.openai.backend import OpenAIBackend
from core.backends.openai.spares import MemoryLedger


class NoTools:
    def specs_for(self, assistant) -> list:
        return []

    async def call(self, name: str, arguments_json: str, *, turn=None) -> str:   # pragma: no cover - no tools here
        raise AssertionError(name)


async def _until(condition, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.01)


async def test_the_configured_spares_come_back_while_new_threads_keep_coming(monkeypatch):
    # New threads keep coming, never a pause: the pool's part above its configured size waits for a pause (it
    # would make spares in the middle of a burst), but the configured spares themselves are made again at once.
    monkeypatch.setattr(spares, "QUIET_SECONDS", 3600.0)
    async with FakeOpenAI() as fake:
        client = AsyncOpenAI(base_url=fake.base_url, api_key="sk-test")
        ledger = MemoryLedger()
        backend = OpenAIBackend(client, NoTools(), spare_conversations=2, spare_ledger=ledger)
        pool = fake.base_url.rstrip("/")
        backend.prepare()
        await _until(lambda: _count(ledger, pool, 2))
        for i in range(6):   # more new threads than the configured size: the demand is above it from now on
            await backend.create_conversation({"channel": f"C{i}"})
            await _until(lambda: _count(ledger, pool, 2))   # back to the configured two before the next one
        await backend.aclose()
        assert await ledger.count_spares(pool) == 0   # and the unused ones deleted at the end
        await client.close()


async def _count(ledger: MemoryLedger, pool: str, want: int) -> bool:
    return await ledger.count_spares(pool) >= want


async def test_a_stop_does_not_wait_out_its_patience_for_a_model_server_that_never_answered(monkeypatch, caplog):
    # A server that accepts connections and never answers (a start that fails while OpenAI hangs, then exits).
    monkeypatch.setattr(spares, "SHUTDOWN_SECONDS", 3600.0)   # were this waited out, the test would hang
    held: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-test", max_retries=0)
    backend = OpenAIBackend(client, NoTools(), spare_conversations=4)
    backend.prepare()
    await asyncio.sleep(0.2)   # the first create is on its way and gets no answer
    with caplog.at_level(logging.WARNING, logger="core.backends.openai.spares"):
        await asyncio.wait_for(backend.aclose(), timeout=60)
    assert any("did not answer" in r.getMessage() for r in caplog.records)
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


class CountingLedger(MemoryLedger):
    def __init__(self) -> None:
        super().__init__()
        self.takes = 0

    async def take_spare(self, pool: str) -> str | None:
        self.takes += 1
        return await super().take_spare(pool)


async def test_a_burst_of_new_threads_asks_an_empty_pool_once_until_a_spare_is_recorded(monkeypatch):
    # Taking a spare is a write to the database in front of a new thread's first request: when the pool is empty,
    # the threads of a burst don't each ask again (they go without a conversation: first_turn.py) until the
    # pool has recorded a spare.
    monkeypatch.setattr(spares, "QUIET_SECONDS", 3600.0)
    async with FakeOpenAI() as fake:
        client = AsyncOpenAI(base_url=fake.base_url, api_key="sk-test")
        ledger = CountingLedger()
        backend = OpenAIBackend(client, NoTools(), spare_conversations=2, spare_ledger=ledger)
        burst = [await backend.ready_conversation({"channel": f"C{i}"}) for i in range(5)]
        assert burst == [None] * 5 and ledger.takes == 1
        await _until(lambda: _count(ledger, fake.base_url.rstrip("/"), 1))   # the pool fills in the background
        taken: list[str | None] = []

        async def spare_taken() -> bool:   # (the pool notes the spare a moment after the ledger has it)
            taken.append(await backend.ready_conversation({"channel": "C9"}))
            return taken[-1] is not None

        await _until(spare_taken)
        assert taken[-1] in fake.conversations and ledger.takes == 2   # the empty pool was asked once before
        await backend.aclose()
        await client.close()
