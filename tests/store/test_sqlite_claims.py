"""SQLite event claims decided in memory and written behind (core/store/claims.py, core/store/sqlite.py).

A held SQLite thread (a statement that does not return until the test lets it) stands for a connection busy
with a burst's other work: a mention's request must reach the model all the same, a redelivery must still be
dropped, and what was claimed meanwhile must be in the database once the thread is free — and after a close."""
from __future__ import annotations

import asyncio
import threading
from contextlib import asynccontextmanager
from typing import AsyncIterator

from bots.standins.openai_server import ScriptedResponse
from bots.standins.slack_server import FakeSlack
from core.store.sqlite import SqliteStore
from tests.fakes.discord_world import world as make_world
from tests.fakes.slack_harness import running_bot
from tests.support.ports import ScriptedBackend
from core.model import Completed, TextDelta, Usage


@asynccontextmanager
async def held(store: SqliteStore) -> AsyncIterator[None]:
    """The store's SQLite thread runs a statement that returns only when the block is left."""
    entered, release = threading.Event(), threading.Event()

    def hold() -> int:
        entered.set()
        release.wait(60)
        return 1

    await store._require()._connection.create_function("hold", 0, hold)
    holding = asyncio.ensure_future(store._fetch("SELECT hold()"))
    while not entered.is_set():
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        release.set()
        await holding


async def claimed(store: SqliteStore, platform: str) -> list[str]:
    rows = await store._fetch("SELECT event_key FROM processed_events WHERE platform = ? ORDER BY event_key",
                              (platform,))
    return [r[0] for r in rows]


async def test_a_mention_reaches_the_model_while_the_sqlite_thread_is_busy_and_its_claim_is_written_after(tmp_path):
    async with make_world(tmp_path) as w:
        ch = w.channel("general")
        w.openai.script(ScriptedResponse(text="Basil."))
        async with held(w.store):
            mid = await w.discord.user_message(ch, w.discord.alice, "what goes with tomatoes?", mention_bot=True)
            # the request leaves with the database's thread still held: nothing on the way waits for it
            await w.discord.wait_for(lambda: len(w.openai.response_requests()) == 1)
            (body,) = w.openai.response_requests()
            assert "what goes with tomatoes?" in str(body["input"])
            # the same message again (Discord replays it after a resume): dropped from memory, still held
            await w.discord.dispatch("MESSAGE_CREATE", w.discord.messages[mid].payload)
        await w.final_answer(ch, "Basil.")
        assert mid in await claimed(w.store, "discord")
        await asyncio.sleep(0.2)   # a second answer, had there been one, would have asked the model by now
        assert len(w.openai.response_requests()) == 1
        assert [m.content for m in w.discord.messages_in(ch, by_bot=True)] == ["Basil."]


async def test_a_redelivery_after_a_restart_is_dropped_by_a_new_store_on_the_same_file(tmp_path):
    async with make_world(tmp_path) as w:
        ch = w.channel("general")
        w.openai.script(ScriptedResponse(text="Once."))
        mid = await w.discord.user_message(ch, w.discord.alice, "answer once", mention_bot=True)
        await w.final_answer(ch, "Once.")
        await w.stop()
        await w.store.close()
        async with SqliteStore(tmp_path / "tb.db") as fresh:   # the restarted process's store
            w.store = fresh
            await w.start()
            async with held(fresh):   # decided from what the new store read at open, not by a statement
                await w.discord.dispatch("MESSAGE_CREATE", w.discord.messages[mid].payload)
                w.openai.script(ScriptedResponse(text="Next."))
                await w.discord.user_message(ch, w.discord.alice, "next one", mention_bot=True)
                await w.discord.wait_for(lambda: len(w.openai.response_requests()) == 2)
            await w.discord.wait_for(lambda: any(m.content == "Next." for m in w.discord.messages_in(ch, by_bot=True)))
            assert [m.content for m in w.discord.messages_in(ch, by_bot=True)] == ["Once.", "Next."]
            await w.stop()
            w.store = SqliteStore(tmp_path / "tb.db")   # (the world's exit closes it)


async def test_slacks_copies_and_retries_of_a_mention_are_answered_once_also_by_a_restarted_process(tmp_path):
    # Slack sends a channel mention twice (app_mention and its message copy: one key) and retries it; the
    # adapter's own memory drops what it saw itself (bots/slack/arrivals.py), so a restarted process with an
    # adapter that saw nothing yet shows the store's claims: read at open, decided without a statement.
    backend = ScriptedBackend([TextDelta("once"), Completed(usage=Usage(input_tokens=1, output_tokens=1))],
                              [TextDelta("next"), Completed(usage=Usage(input_tokens=1, output_tokens=1))],
                              [TextDelta("twice?!"), Completed(usage=Usage(input_tokens=1, output_tokens=1))])
    slack = await FakeSlack().start()
    try:
        await _answer_once_then_restart(tmp_path, backend, slack)
    finally:
        await slack.close()


async def _answer_once_then_restart(tmp_path, backend: ScriptedBackend, slack: FakeSlack) -> None:
    async with running_bot(tmp_path / "db", backend, slack=slack):
        ts = await slack.user_says("C1", "<@UBOT> hi")   # app_mention + message, same channel and ts
        await slack.wait_for(lambda: slack.thread_text("C1", ts) == "once", what="answer")
    async with running_bot(tmp_path / "db", backend, slack=slack) as bot:
        async with held(bot.store):
            event = slack._event("AppMentionPayload", user="U1", text="<@UBOT> hi", ts=ts, event_ts=ts,
                                 channel="C1", team="T0TEAM")
            env = await slack.deliver(slack.event_callback(event), retry_attempt=2)
            await slack.wait_ack(env)
            later = await slack.user_says("C1", "<@UBOT> and now?")   # both copies again, for a new mention
            await slack.wait_for(lambda: len(backend.turns) == 2, what="the model asked")
        await slack.wait_for(lambda: slack.thread_text("C1", later) == "next", what="answer")
        await asyncio.sleep(0.2)   # a third answer, had there been one, would have asked the model by now
        assert len(backend.turns) == 2
        assert [m.text for m in slack.bot_messages("C1")] == ["once", "next"]
        assert len(await claimed(bot.store, "slack")) == 2


async def test_claims_decided_while_the_thread_is_busy_are_in_the_database_after_close(tmp_path):
    store = SqliteStore(tmp_path / "tb.db")
    await store.open()
    events = [f"Ev{i:03d}" for i in range(50)]
    async with held(store):
        # decided at once, in memory, with the database's thread held
        assert await asyncio.gather(*(store.claim_event("slack", e) for e in events)) == [True] * 50
        assert await asyncio.gather(*(store.claim_event("slack", e) for e in events)) == [False] * 50
        closing = asyncio.ensure_future(store.close())   # SIGTERM: the process closes its store
        await asyncio.sleep(0.1)
        assert not closing.done()   # ... and waits for the claims still to be written
    await closing
    async with SqliteStore(tmp_path / "tb.db") as again:
        assert await claimed(again, "slack") == events
        assert await asyncio.gather(*(again.claim_event("slack", e) for e in events)) == [False] * 50
        assert await again.claim_event("slack", "Ev999") is True


async def test_a_reply_in_a_conversation_reaches_the_model_while_the_sqlite_thread_is_busy(tmp_path):
    # The conversation's row, as this process wrote it, is read from memory (core/store/cache.py): the reply's
    # request does not wait for a statement.
    async with make_world(tmp_path) as w:
        ch = w.channel("general")
        w.openai.script(ScriptedResponse(text="Try carbonara."), ScriptedResponse(text="A Frascati."))
        await w.discord.user_message(ch, w.discord.alice, "pick a pasta", mention_bot=True)
        (first,) = await w.final_answer(ch, "Try carbonara.")
        for _ in range(600):   # the first turn's conversation is made after its answer
            if [r for r in await w.store.list_conversations() if not r.pending]:
                break
            await asyncio.sleep(0.05)
        async with held(w.store):
            await w.discord.user_message(ch, w.discord.alice, "and a wine?", reply_to=first.id)
            await w.discord.wait_for(lambda: len(w.openai.response_requests()) == 2)
        await w.discord.wait_for(lambda: any(m.content == "A Frascati." for m in w.discord.messages_in(ch, by_bot=True)))
        one, two = w.openai.response_requests()
        assert w.openai.conversation_of(one) == w.openai.conversation_of(two)   # the same conversation


async def test_a_restarted_store_reads_every_claim_a_page_at_a_time(tmp_path, monkeypatch):
    """The week's claims are read in pages when the store opens (a busy week never sits in memory as one list):
    every page counts — the first and the last claim are both "already claimed" after the restart."""
    import core.store.sqlite as sqlite_store
    monkeypatch.setattr(sqlite_store, "CLAIMS_PAGE", 7)
    keys = [f"m{i:03d}" for i in range(50)]
    async with SqliteStore(tmp_path / "tb.db") as store:
        for k in keys:
            assert await store.claim_event("discord", k)
    async with SqliteStore(tmp_path / "tb.db") as fresh:
        async with held(fresh):   # decided from memory alone: nothing may wait for the held thread
            answers = await asyncio.wait_for(
                asyncio.gather(*(fresh.claim_event("discord", k) for k in (keys[0], keys[24], keys[-1]))), 10)
            assert answers == [False, False, False]
            assert await asyncio.wait_for(fresh.claim_event("discord", "new-one"), 10) is True


def test_a_full_filter_generation_makes_way_for_a_new_one_and_still_knows_its_keys(monkeypatch):
    """A busy bot fills a generation long before its week ends: a new one starts (or false positives would send
    nearly every new event to the database), and the keys of the full one are still not new."""
    import core.store.claims as claims
    monkeypatch.setattr(claims, "GENERATION_CAPACITY", 100)
    memory = claims.MemoryClaims(7 * 86400.0, window=0.0)   # no exact window: the filters alone answer
    now = 1_000_000.0
    first = [f"e{i}" for i in range(100)]
    assert all(memory.decide("slack", k, now) is True for k in first)
    assert memory.decide("slack", "e100", now + 1) is True
    assert len(memory._seen) == 2
    assert all(memory.decide("slack", k, now + 2) is None for k in first)   # maybe seen: the database decides


async def test_close_waits_for_an_hourly_prune_in_progress(tmp_path, caplog):
    """The hourly prune runs beside the claims, awaited by nobody: close() lets it finish before the connection
    goes, and it never leaves an unretrieved exception behind."""
    import gc
    from core.store.sql import EVENT_PRUNE_INTERVAL
    now = [2_000_000.0]
    store = SqliteStore(tmp_path / "tb.db", clock=lambda: now[0])
    await store.open()
    await store.claim_event("discord", "a")
    now[0] += EVENT_PRUNE_INTERVAL + 1
    async with held(store):
        await store.claim_event("discord", "b")   # starts the prune, queued behind the held thread
        assert store._pruning is not None and not store._pruning.done()
    await store.close()
    assert store._pruning.done() and store._pruning.exception() is None
    gc.collect()
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage() or r.exc_info]
