"""The Store contract: what the bot remembers across messages, restarts and processes — written once, run
against every implementation (the `stores` fixture in conftest.py).

Each `stores.open()` is a new connection to the test's database: a restarted process, or a second one."""
from __future__ import annotations

import asyncio

import pytest

from core.model import ConversationKey, Usage
from core.store.protocol import (AnswerRecord, FeedbackRow, ConversationRecord, FileRecord, HistoryItem, InflightReply, KnowledgeFile,
                                 ToolCallRecord, UsageRow)

DAY = 24 * 3600.0


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def key(channel: str = "C1", thread: str = "", user: str = "U1", platform: str = "slack") -> ConversationKey:
    return ConversationKey(platform=platform, workspace="T1", channel=channel, thread=thread, user=user)


# ---- lifecycle -----------------------------------------------------------------------------------


async def test_a_fresh_database_opens_at_a_schema_version_and_reopens_with_its_data(stores):
    async with stores.open() as store:
        version = await store.schema_version()
        assert version >= 1
        await store.set_preference("assistant:slack:T1:C1:U1", "coder")
    async with stores.open() as store:
        assert await store.schema_version() == version
        assert await store.get_preference("assistant:slack:T1:C1:U1") == "coder"


async def test_a_closed_store_says_so(stores):
    store = stores.new()
    with pytest.raises(RuntimeError, match="not open"):
        await store.claim_event("slack", "Ev1")
    await store.open()
    await store.close()
    await store.close()  # closing twice is harmless
    with pytest.raises(RuntimeError, match="not open"):
        await store.get_preference("x")


# ---- conversations -------------------------------------------------------------------------------


async def test_conversation_is_found_again_after_a_restart(stores):
    clock = Clock()
    meta = {"platform": "slack", "channel": "C1", "user_id": "U1", "user_name": "Zoë 上海"}
    async with stores.open(clock=clock) as store:
        assert await store.get_conversation(key(), "coder") is None
        await store.save_conversation(key(), "coder", "conv_abc", meta)

    clock.now += 60
    async with stores.open(clock=clock) as store:  # the process restarted
        record = await store.get_conversation(key(), "coder")
        assert record == ConversationRecord(
            key=key().as_string(), assistant="coder", backend_id="conv_abc", metadata=meta,
            vector_store_id=None, created_at=clock.now - 60, updated_at=clock.now - 60)
        # Same place, other assistant or other user: a different conversation.
        assert await store.get_conversation(key(), "docs") is None
        assert await store.get_conversation(key(user="U2"), "coder") is None


async def test_saving_again_points_to_the_new_conversation_and_keeps_the_vector_store(stores):
    clock = Clock()
    async with stores.open(clock=clock) as store:
        await store.save_conversation(key(), "coder", "conv_1", {"a": "1"})
        clock.now += 5
        await store.set_conversation_vector_store(key(), "coder", "vs_9")
        clock.now += 5
        await store.save_conversation(key(), "coder", "conv_2", {"a": "2"})
        record = await store.get_conversation(key(), "coder")
        assert (record.backend_id, record.metadata, record.vector_store_id) == ("conv_2", {"a": "2"}, "vs_9")
        assert record.updated_at - record.created_at == 10
        # A vector store for a conversation that does not exist changes nothing.
        await store.set_conversation_vector_store(key(channel="gone"), "coder", "vs_x")
        assert await store.count_conversations() == 1


async def test_delete_conversation_starts_over(stores):
    async with stores.open() as store:
        await store.save_conversation(key(), "coder", "conv_1", {})
        await store.save_conversation(key(), "docs", "conv_2", {})
        assert await store.delete_conversation(key(), "coder") is True
        assert await store.delete_conversation(key(), "coder") is False
        assert await store.get_conversation(key(), "coder") is None
        assert (await store.get_conversation(key(), "docs")).backend_id == "conv_2"


async def test_a_pending_conversation_is_kept_across_a_restart_until_it_is_made(stores):
    # A new thread's first answer went out before its conversation existed: the row names the stored answer the
    # conversation is to be made from; a crash before it is made leaves that for the thread's next message.
    async with stores.open() as store:
        await store.save_conversation(key(), "coder", "resp_first", {"a": "1"}, pending=True)
        await store.set_conversation_vector_store(key(), "coder", "vs_1")
    async with stores.open() as store:   # restarted
        record = await store.get_conversation(key(), "coder")
        assert (record.backend_id, record.pending, record.vector_store_id) == ("resp_first", True, "vs_1")
        assert [r.pending for r in await store.list_conversations()] == [True]
        await store.save_answer(answer("a1", conversation_id="resp_first"))
        await store.save_conversation(key(), "coder", "conv_made", {"a": "1"})
        assert await store.relink_answers("resp_first", "conv_made") == 1
        assert await store.relink_answers("", "conv_made") == 0
    async with stores.open() as store:
        record = await store.get_conversation(key(), "coder")
        assert (record.backend_id, record.pending, record.vector_store_id) == ("conv_made", False, "vs_1")
        assert (await store.get_answer("a1")).conversation_id == "conv_made"
        assert await store.delete_answers("conv_made") == 1


async def test_list_and_count_conversations(stores):
    clock = Clock()
    async with stores.open(clock=clock) as store:
        assert await store.list_conversations() == []
        for i in range(3):
            clock.now += 1
            await store.save_conversation(key(thread=f"{i}"), "coder", f"conv_{i}", {})
        assert await store.count_conversations() == 3
        assert [r.backend_id for r in await store.list_conversations()] == ["conv_0", "conv_1", "conv_2"]


async def test_cached_reads_follow_writes_even_when_they_race(stores):
    """A store may cache what it reads on every message; a read racing a write must not keep the old value."""
    async with stores.open() as store:
        k = ConversationKey("slack", "T1", "C1", "1.1", "")
        assert await store.get_preference("assistant:x") is None
        await asyncio.gather(store.get_preference("assistant:x"), store.set_preference("assistant:x", "math"),
                             store.get_preference("assistant:x"))
        assert await store.get_preference("assistant:x") == "math"
        assert await store.get_conversation(k, "food") is None
        await asyncio.gather(store.get_conversation(k, "food"), store.save_conversation(k, "food", "conv_1", {}),
                             store.get_conversation(k, "food"))
        assert (await store.get_conversation(k, "food")).backend_id == "conv_1"
        await store.set_conversation_vector_store(k, "food", "vs_1")
        assert (await store.get_conversation(k, "food")).vector_store_id == "vs_1"
        assert await store.delete_conversation(k, "food")
        assert await store.get_conversation(k, "food") is None
        assert await store.thread_assistant("slack", "C1", "1.1") is None
        await asyncio.gather(store.thread_assistant("slack", "C1", "1.1"),
                             store.mark_thread("slack", "C1", "1.1", "food", ttl=3600),
                             store.thread_assistant("slack", "C1", "1.1"))
        assert await store.thread_assistant("slack", "C1", "1.1") == "food"
    async with stores.open() as store:  # and what was written is what a new process reads
        assert await store.get_preference("assistant:x") == "math"
        assert await store.thread_assistant("slack", "C1", "1.1") == "food"


# ---- preferences, thread markers, reply roots, containers, sync digests --------------------------


async def test_preference_set_changed_and_cleared(stores):
    async with stores.open() as store:
        assert await store.get_preference("slack:T1:C1:U1") is None
        await store.set_preference("slack:T1:C1:U1", "coder")
        await store.set_preference("slack:T1:C1:U1", "docs")
    async with stores.open() as store:
        assert await store.get_preference("slack:T1:C1:U1") == "docs"
        await store.set_preference("slack:T1:C1:U1", None)
        assert await store.get_preference("slack:T1:C1:U1") is None
        await store.set_preference("slack:T1:C1:U1", None)  # clearing nothing is fine


async def test_a_thread_marker_names_its_assistant_until_it_expires(stores):
    clock = Clock()
    async with stores.open(clock=clock) as store:
        assert await store.thread_assistant("slack", "C1", "1.1") is None
        await store.mark_thread("slack", "C1", "1.1", "food", ttl=3600)
        await store.mark_thread("discord", "C1", "1.1", "math", ttl=3600)   # per platform
        assert await store.thread_assistant("slack", "C1", "1.1") == "food"
        assert await store.thread_assistant("slack", "C1", "1.2") is None
        assert await store.thread_assistant("slack", "C2", "1.1") is None
        clock.now += 1800
        await store.mark_thread("slack", "C1", "1.1", "docs", ttl=3600)     # answered again: moved, renewed
    clock.now += 3000   # 4800 s after the first mark, 3000 s after the second
    async with stores.open(clock=clock) as store:
        assert await store.thread_assistant("slack", "C1", "1.1") == "docs"
        assert await store.thread_assistant("discord", "C1", "1.1") is None   # expired
        clock.now += 601
        assert await store.thread_assistant("slack", "C1", "1.1") is None     # a long-running process sees it too


async def test_reply_roots_are_remembered_until_they_expire(stores):
    clock = Clock()
    async with stores.open(clock=clock) as store:
        assert await store.reply_root("discord", "42") is None
        await store.save_reply_root("discord", "42", "7", ttl=DAY)
        await store.save_reply_root("discord", "43", "7", ttl=2 * DAY)
    async with stores.open(clock=clock) as store:
        assert await store.reply_root("discord", "42") == "7"
        assert await store.reply_root("slack", "42") is None
        clock.now += DAY + 1
        assert await store.reply_root("discord", "42") is None
        assert await store.reply_root("discord", "43") == "7"


async def test_a_container_counts_as_new_once_per_life(stores):
    clock = Clock()
    async with stores.open(clock=clock) as store:
        assert await store.touch_container("cntr_1", ttl=1200) is True
        clock.now += 1000
        assert await store.touch_container("cntr_1", ttl=1200) is False   # still alive: its life is extended
        clock.now += 1000
        assert await store.touch_container("cntr_1", ttl=1200) is False   # 2000 s, but used 1000 s ago
        assert await store.touch_container("cntr_2", ttl=1200) is True
        clock.now += 1201
        assert await store.touch_container("cntr_1", ttl=1200) is True    # expired meanwhile: a new session


async def test_concurrent_touches_of_a_new_container_count_it_once(stores):
    async with stores.open() as a, stores.open() as b:
        results = await asyncio.gather(*(s.touch_container("cntr_x", ttl=1200) for _ in range(10) for s in (a, b)))
        assert results.count(True) == 1


async def test_sync_digests_per_platform_and_scope(stores):
    async with stores.open() as store:
        assert await store.get_sync_digest("discord", "1:global") is None
        await store.save_sync_digest("discord", "1:global", "abc")
        await store.save_sync_digest("discord", "1:42", "def")
        await store.save_sync_digest("discord", "1:global", "xyz")
    async with stores.open() as store:
        assert await store.get_sync_digest("discord", "1:global") == "xyz"
        assert await store.get_sync_digest("discord", "1:42") == "def"
        assert await store.get_sync_digest("slack", "1:global") is None


async def test_expired_rows_are_pruned_and_the_rest_stays(stores):
    clock = Clock()
    async with stores.open(clock=clock) as store:
        await store.mark_thread("slack", "C1", "1.1", "food", ttl=3600)
        await store.mark_thread("slack", "C1", "1.2", "food", ttl=5 * 3600)
        await store.save_reply_root("discord", "42", "7", ttl=3600)
        await store.set_preference("assistant:slack:T1:C1:U1", "math")
    clock.now += 3601
    async with stores.open(clock=clock) as store:  # pruned when opened
        await store.prune_events()
        assert await store.thread_assistant("slack", "C1", "1.1") is None
        assert await store.thread_assistant("slack", "C1", "1.2") == "food"
        assert await store.reply_root("discord", "42") is None
        assert await store.get_preference("assistant:slack:T1:C1:U1") == "math"


# ---- de-duplication ------------------------------------------------------------------------------


async def test_an_event_is_claimed_once_also_after_a_restart(stores):
    async with stores.open() as store:
        assert await store.claim_event("slack", "Ev123") is True
        assert await store.claim_event("slack", "Ev123") is False  # Slack's retry of the same event
        assert await store.claim_event("discord", "Ev123") is True  # keys are per platform
    async with stores.open() as store:
        assert await store.claim_event("slack", "Ev123") is False


async def test_fifty_concurrent_claims_of_one_event_have_one_winner(stores):
    async with stores.open() as store:
        results = await asyncio.gather(*(store.claim_event("slack", "C1:1700.0001") for _ in range(50)))
        assert results.count(True) == 1


async def test_two_processes_on_one_database_have_one_winner(stores):
    # Two stores = two connections, like `teambridge run` started twice against the same database.
    async with stores.open() as a, stores.open() as b:
        results = await asyncio.gather(*(s.claim_event("slack", f"Ev{i}") for i in range(20) for s in (a, b)))
        assert results.count(True) == 20


async def test_old_processed_events_are_forgotten(stores):
    clock = Clock()
    async with stores.open(clock=clock) as store:
        assert await store.claim_event("slack", "old") is True
        clock.now += 6 * DAY
        assert await store.claim_event("slack", "recent") is True
    clock.now += 2 * DAY  # "old" is now 8 days old, "recent" 2 days
    async with stores.open(clock=clock) as store:  # pruned when opened
        assert await store.claim_event("slack", "recent") is False
        assert await store.claim_event("slack", "old") is True   # forgotten: a retry this late is a new event
        # A process that keeps running prunes too.
        clock.now += 8 * DAY
        assert await store.claim_event("slack", "new") is True
        assert await store.claim_event("slack", "recent") is True


# ---- uploaded files ------------------------------------------------------------------------------


async def test_a_file_is_uploaded_once_per_purpose(stores):
    clock = Clock()
    sha = "a" * 64
    async with stores.open(clock=clock) as store:
        assert await store.get_file(sha, "assistants") is None
        await store.save_file(sha, "assistants", "file-1", "data.csv", 120)
        await store.save_file(sha, "vision", "file-2", "data.csv", 120)
    async with stores.open(clock=clock) as store:
        assert await store.get_file(sha, "assistants") == "file-1"
        assert await store.get_file(sha, "vision") == "file-2"
        assert await store.list_files() == [
            FileRecord(sha256=sha, purpose="assistants", file_id="file-1", name="data.csv", size=120,
                       created_at=clock.now),
            FileRecord(sha256=sha, purpose="vision", file_id="file-2", name="data.csv", size=120,
                       created_at=clock.now),
        ]
        # The backend lost file-1: it is deleted here, and the next upload of the same bytes is remembered.
        await store.delete_file("file-1")
        assert await store.get_file(sha, "assistants") is None
        await store.save_file(sha, "assistants", "file-3", "data.csv", 120)
        await store.save_file(sha, "assistants", "file-4", "data.csv", 120)  # a concurrent upload won later
        assert await store.get_file(sha, "assistants") == "file-4"
        assert len(await store.list_files()) == 2


# ---- usage ---------------------------------------------------------------------------------------


async def test_usage_rows_in_a_time_window(stores):
    clock = Clock(1000.0)
    async with stores.open(clock=clock) as store:
        for i in range(5):  # turns at t=1000, 1010, ..., 1040
            await store.record_usage(assistant="coder", platform="slack", workspace="T1", channel="C1",
                                     user=f"U{i}", model="gpt-5-mini",
                                     usage=Usage(input_tokens=100 + i, cached_tokens=10, output_tokens=20,
                                                 tool_calls=i, code_interpreter_sessions=1))
            clock.now += 10
    async with stores.open(clock=clock) as store:   # e.g. `teambridge usage` in another process
        rows = await store.usage_rows(1010.0, 1030.0)  # since inclusive, until exclusive
        assert [r.user for r in rows] == ["U1", "U2"]
        assert rows[0] == UsageRow(id=rows[0].id, ts=1010.0, assistant="coder", platform="slack", workspace="T1",
                                   channel="C1", user="U1", model="gpt-5-mini", input_tokens=101, cached_tokens=10,
                                   output_tokens=20, tool_calls=1, code_interpreter_sessions=1)
        assert await store.usage_rows(2000.0, 3000.0) == []
        assert sum(r.input_tokens for r in await store.usage_rows(0, 10_000)) == 510


async def test_a_forgotten_users_usage_rows_keep_their_cost_under_a_digest(stores):
    async with stores.open() as store:
        for user in ("U1", "U2", "U1"):
            await store.record_usage(assistant="coder", platform="slack", workspace="T1", channel="C1", user=user,
                                     model="gpt-5-mini", usage=Usage(input_tokens=100, output_tokens=10))
        assert await store.forget_usage_user("U1", "forgotten-abc") == 2
        assert await store.forget_usage_user("U9", "forgotten-def") == 0
    async with stores.open() as store:
        rows = await store.usage_rows(0, 1e12)
        assert sorted(r.user for r in rows) == ["U2", "forgotten-abc", "forgotten-abc"]
        assert sum(r.input_tokens for r in rows) == 300


# ---- replies in flight ---------------------------------------------------------------------------


async def test_replies_in_flight_survive_a_crash(stores):
    clock = Clock()
    store = stores.new(clock=clock)
    await store.open()
    a = await store.add_inflight("slack", "C1", "1700.0001", "1699.0000")
    b = await store.add_inflight("discord", "42", "99", None)
    c = await store.add_inflight("slack", "C2", "1700.0002", None)
    await store.remove_inflight(c)  # that answer finished
    # Never closed: the next process after a kill -9 sees every write that returned.
    async with stores.open(clock=clock) as after:
        assert [(r.id, r.platform, r.channel, r.message_id, r.thread, r.started_at)
                for r in await after.list_inflight()] == [
            (a, "slack", "C1", "1700.0001", "1699.0000", clock.now),
            (b, "discord", "42", "99", None, clock.now),
        ]
        assert all(isinstance(r, InflightReply) for r in await after.list_inflight())
        assert [r.id for r in await after.list_inflight("discord")] == [b]
        await after.remove_inflight(a)  # marked interrupted
        await after.remove_inflight(a)  # twice is harmless
        assert [r.id for r in await after.list_inflight()] == [b]
    await store.close()


# ---- knowledge -----------------------------------------------------------------------------------


async def test_knowledge_store_and_files(stores):
    async with stores.open() as store:
        assert await store.get_knowledge_store("docs") is None
        assert await store.list_knowledge_files("docs") == []
        await store.save_knowledge_store("docs", "vs_1")
        await store.save_knowledge_file("docs", "knowledge/b.md", "b" * 64, "file-b", "in_progress")
        await store.save_knowledge_file("docs", "knowledge/a.pdf", "a" * 64, "file-a", "completed")
        await store.save_knowledge_file("other", "knowledge/a.pdf", "a" * 64, "file-x", "completed")
    async with stores.open() as store:
        assert await store.get_knowledge_store("docs") == "vs_1"
        assert await store.list_knowledge_files("docs") == [
            KnowledgeFile(path="knowledge/a.pdf", sha256="a" * 64, file_id="file-a", status="completed"),
            KnowledgeFile(path="knowledge/b.md", sha256="b" * 64, file_id="file-b", status="in_progress"),
        ]
        await store.save_knowledge_file("docs", "knowledge/b.md", "b" * 64, "file-b", "failed",
                                        error="unsupported_file")
        await store.delete_knowledge_file("docs", "knowledge/a.pdf")
        assert await store.list_knowledge_files("docs") == [
            KnowledgeFile(path="knowledge/b.md", sha256="b" * 64, file_id="file-b", status="failed",
                          error="unsupported_file")]
        await store.save_knowledge_store("docs", "vs_2")  # the old vector store expired at the backend
        assert await store.get_knowledge_store("docs") == "vs_2"
        assert len(await store.list_knowledge_files("other")) == 1


# ---- local history -------------------------------------------------------------------------------


async def test_history_is_appended_in_order_condensed_and_deleted(stores):
    async with stores.open() as store:
        assert await store.load_history("local_1") == []
        await store.append_history("local_1", [HistoryItem({"role": "user", "content": "Hi 上海"}, tokens=3),
                                               HistoryItem({"role": "assistant", "content": "Hello"}, tokens=2)])
        await store.append_history("local_2", [HistoryItem({"role": "user", "content": "other"})])
        await store.append_history("local_1", [HistoryItem({"role": "user", "content": "again"}, tokens=1)])
        await store.append_history("local_1", [])
    async with stores.open() as store:
        items = await store.load_history("local_1")
        assert [(i.data["content"], i.tokens) for i in items] == [("Hi 上海", 3), ("Hello", 2), ("again", 1)]
        assert [i.seq for i in items] == sorted(i.seq for i in items) and len({i.seq for i in items}) == 3
        await store.replace_history("local_1", [HistoryItem({"role": "system", "content": "summary"}, tokens=5),
                                                HistoryItem({"role": "user", "content": "again"}, tokens=1)])
        await store.append_history("local_1", [HistoryItem({"role": "assistant", "content": "ok"})])
        assert [i.data["content"] for i in await store.load_history("local_1")] == ["summary", "again", "ok"]
        await store.delete_history("local_1")
        assert await store.load_history("local_1") == []
        assert len(await store.load_history("local_2")) == 1


async def test_a_failing_replace_keeps_the_old_history_and_nobody_elses_write_is_lost(stores):
    async with stores.open() as store:
        await store.append_history("c", [HistoryItem({"n": 1}), HistoryItem({"n": 2})])

        async def failing_replace() -> None:
            # the second item cannot be stored: the replacement must not half happen
            await store.replace_history("c", [HistoryItem({"n": 3}), HistoryItem({"bad": object()})])

        async def claims() -> list[bool]:
            await asyncio.sleep(0)
            return list(await asyncio.gather(*(store.claim_event("slack", f"E{i}") for i in range(10))))

        results = await asyncio.gather(failing_replace(), claims(), return_exceptions=True)
        assert isinstance(results[0], TypeError)
        assert results[1] == [True] * 10
        assert [i.data for i in await store.load_history("c")] == [{"n": 1}, {"n": 2}]
        assert [await store.claim_event("slack", f"E{i}") for i in range(10)] == [False] * 10


async def test_concurrent_appends_keep_every_item(stores):
    async with stores.open() as a, stores.open() as b:
        await asyncio.gather(*(s.append_history("c", [HistoryItem({"i": i, "s": n})])
                               for i in range(10) for n, s in enumerate((a, b))))
        items = await a.load_history("c")
        assert sorted((i.data["i"], i.data["s"]) for i in items) == [(i, n) for i in range(10) for n in (0, 1)]


# ---- many answers at once ------------------------------------------------------------------------


async def test_hundreds_of_concurrent_answers_share_one_store(stores):
    async with stores.open() as store:
        async def answer(i: int) -> int:
            assert await store.claim_event("slack", f"Ev{i}")
            k = key(thread=str(i))
            if await store.get_conversation(k, "coder") is None:
                await store.save_conversation(k, "coder", f"conv_{i}", {"n": str(i)})
            inflight = await store.add_inflight("slack", "C1", f"{i}.0", str(i))
            await store.mark_thread("slack", "C1", str(i), "coder", ttl=3600)
            await store.record_usage(assistant="coder", platform="slack", workspace="T1", channel="C1",
                                     user="U1", model="m", usage=Usage(input_tokens=1, output_tokens=2))
            await store.remove_inflight(inflight)
            return inflight

        ids = await asyncio.gather(*(answer(i) for i in range(300)))
        assert len(set(ids)) == 300
        assert await store.count_conversations() == 300
        assert await store.list_inflight() == []
        assert len(await store.usage_rows(0, float("inf"))) == 300
        assert await store.thread_assistant("slack", "C1", "299") == "coder"


# ---- replies in flight across processes ----------------------------------------------------------


async def test_a_dead_processs_replies_are_taken_once_after_its_lease(stores):
    clock = Clock()
    a = stores.new(clock=clock, owner="proc-a")
    await a.open()
    cut = await a.add_inflight("slack", "C1", "1.0", None)
    await a.add_inflight("discord", "D1", "2", None)
    # proc-a is killed here: no close, its lease is not renewed.
    async with stores.open(clock=clock, owner="proc-b") as b, stores.open(clock=clock, owner="proc-c") as c:
        mine = await b.add_inflight("slack", "C2", "3.0", None)
        assert await b.take_orphaned_inflight("slack") == []        # proc-a may still be alive
        clock.now += 31                                              # past its lease
        await b.renew_lease()                                        # (b and c live on: they renew theirs)
        await c.renew_lease()
        # b and c sweep at the same moment: each orphan goes to one of them
        taken_b, taken_c = await asyncio.gather(b.take_orphaned_inflight("slack"), c.take_orphaned_inflight("slack"))
        assert [r.id for r in taken_b + taken_c] == [cut]
        assert (taken_b + taken_c)[0].owner == "proc-a"
        # b's own reply is not an orphan for c: b is alive
        assert await c.take_orphaned_inflight("slack") == []
        assert [r.id for r in await b.list_inflight("slack")] == [mine]
        assert [r.message_id for r in await c.take_orphaned_inflight("discord")] == ["2"]
    await a.close()


async def test_a_restarted_process_takes_its_own_replies_at_start(stores):
    clock = Clock()
    a = stores.new(clock=clock, owner="worker-1")
    await a.open()
    left = await a.add_inflight("slack", "C1", "1.0", "0.9")
    # killed; restarted at once under the same name: its lease is still live, but the replies are its own
    async with stores.open(clock=clock, owner="worker-1") as again, stores.open(clock=clock, owner="other") as other:
        assert await other.take_orphaned_inflight("slack") == []
        taken = await again.take_orphaned_inflight("slack", own=True)
        assert [(r.id, r.channel, r.message_id, r.thread) for r in taken] == [(left, "C1", "1.0", "0.9")]
        assert await again.take_orphaned_inflight("slack", own=True) == []
    await a.close()


async def test_a_cleanly_closed_process_leaves_no_lease(stores):
    clock = Clock()
    async with stores.open(clock=clock, owner="p1") as p1:
        await p1.add_inflight("slack", "C1", "1.0", None)   # e.g. the platform never confirmed; left behind
    async with stores.open(clock=clock, owner="p2") as p2:
        assert [r.message_id for r in await p2.take_orphaned_inflight("slack")] == ["1.0"]


# ---- one turn at a time, across processes --------------------------------------------------------


async def test_turns_of_one_conversation_take_turns_across_processes(stores):
    async with stores.open(owner="a") as a, stores.open(owner="b") as b:
        # An SQLite database has one process: its turns are serialized in that process.
        locks_a = a.turn_locks()
        locks_b = b.turn_locks() if stores.shared else locks_a
        order: list[str] = []
        inside = 0

        async def turn(locks, name: str, key: str) -> None:
            nonlocal inside
            async with locks.hold(key):
                inside += 1
                if key == "conv-1":
                    assert inside == 1, "two turns of one conversation at once"
                order.append(f"{name} in")
                await asyncio.sleep(0.02)
                order.append(f"{name} out")
                inside -= 1

        await asyncio.gather(turn(locks_a, "a1", "conv-1"), turn(locks_b, "b1", "conv-1"),
                             turn(locks_a, "a2", "conv-1"), turn(locks_b, "b2", "conv-1"))
        # each "in" is directly followed by its own "out"
        assert all(order[i].split()[0] == order[i + 1].split()[0] for i in range(0, len(order), 2))
        assert len(order) == 8


# ---- signals between the processes sharing the store ------------------------------------------


async def test_a_signal_reaches_every_listener_of_its_topic_in_every_process_sharing_the_store(stores):
    async with stores.open(owner="a") as a, stores.open(owner="b") as b:
        sig_a = a.signals()
        sig_b = b.signals() if stores.shared else sig_a   # an SQLite database has one process
        assert sig_a.shared is stores.shared
        heard: dict[str, list[str]] = {"a": [], "b": [], "other topic": []}
        arrived = asyncio.Event()

        def hear(who: str):
            def handler(payload: str) -> None:
                heard[who].append(payload)
                if heard["a"] and heard["b"]:
                    arrived.set()
            return handler

        stop_a = sig_a.listen("click", hear("a"))
        sig_b.listen("click", hear("b"))
        sig_b.listen("stop", hear("other topic"))
        await sig_a.start()
        await sig_b.start()
        await sig_b.publish("click", '{"key": "k1", "user": "Zoë 上海"}')
        await asyncio.wait_for(arrived.wait(), 10)
        assert heard["a"] == heard["b"] == ['{"key": "k1", "user": "Zoë 上海"}']   # the publisher hears it too
        assert heard["other topic"] == []
        stop_a()
        arrived.clear()
        heard["b"].clear()
        await sig_a.publish("click", "k2")
        await asyncio.wait_for(_until(lambda: heard["b"] == ["k2"]), 10)
        assert heard["a"] == ['{"key": "k1", "user": "Zoë 上海"}']   # stopped listening: k2 not heard


async def _until(condition) -> None:
    while not condition():
        await asyncio.sleep(0.01)


# ---- the audit trail of tool calls ----------------------------------------------------------------


async def test_tool_calls_are_kept_in_order_and_read_back_by_period(stores):
    def call(at: float, tool: str, **kw) -> ToolCallRecord:
        fields = dict(at=at, conversation="conv_1", platform="slack", channel="C1", user="U1",
                      assistant="helpdesk", tool=tool, server="tickets", arguments_sha256="ab" * 32,
                      approval="not_needed", approved_by="", outcome="ok", duration_ms=12)
        return ToolCallRecord(**{**fields, **kw})

    first = call(1000.0, "search_tickets")
    second = call(1000.0, "create_ticket", approval="approved", approved_by="U2", duration_ms=250)
    third = call(5000.0, "delete_ticket", approval="denied", approved_by="U1", outcome="not_run", duration_ms=0)
    async with stores.open() as store:
        for record in (first, second, third):
            await store.record_tool_call(record)
    async with stores.open() as store:   # another process reads them
        assert await store.tool_calls(0, 10_000) == [first, second, third]
        assert await store.tool_calls(1000.0, 5000.0) == [first, second]   # since <= at < until
        assert await store.tool_calls(6000.0, 7000.0) == []


async def test_spare_conversations_are_kept_across_a_restart_and_each_is_taken_once(stores):
    async with stores.open() as store:
        for cid in ("conv_a", "conv_b", "conv_c"):
            await store.add_spare("https://api.openai.com/v1", cid)
        await store.add_spare("http://127.0.0.1:9/v1", "conv_other_server")
        assert await store.count_spares("https://api.openai.com/v1") == 3
    async with stores.open() as a, stores.open() as b:  # after a crash: the next process finds them
        taken = await asyncio.gather(*(s.take_spare("https://api.openai.com/v1") for _ in range(4) for s in (a, b)))
        assert sorted(t for t in taken if t) == ["conv_a", "conv_b", "conv_c"]  # each once, none twice
        assert await a.count_spares("https://api.openai.com/v1") == 0
        assert await b.take_spare("http://127.0.0.1:9/v1") == "conv_other_server"
        assert await b.take_spare("http://127.0.0.1:9/v1") is None


async def test_the_last_bursts_demand_for_spares_is_kept_for_the_next_start_per_server(stores):
    async with stores.open() as store:
        assert await store.spare_demand("https://api.openai.com/v1") == 0      # nothing known yet
        await store.save_spare_demand("https://api.openai.com/v1", 200)
        await store.save_spare_demand("https://api.openai.com/v1", 120)       # the last burst's, not the largest
        await store.save_spare_demand("http://127.0.0.1:9/v1", 7)
    async with stores.open() as store:                                        # the next start reads it
        assert await store.spare_demand("https://api.openai.com/v1") == 120
        assert await store.spare_demand("http://127.0.0.1:9/v1") == 7


def answer(answer_id: str = "a1", **fields) -> AnswerRecord:
    base = dict(id=answer_id, platform="slack", workspace="T1", channel="C1", thread="1.0", message_id="1.1",
                assistant="food", model="gpt-test", user="U1", user_name="alice", question="what is 1+1?",
                is_direct=False, outcome="answered", at=1_700_000_000.0)
    return AnswerRecord(**{**base, **fields})


async def test_answers_and_their_ratings_survive_a_restart_one_rating_per_person(stores):
    clock = Clock()
    async with stores.open(clock=clock) as store:
        assert await store.get_answer("a1") is None
        await store.save_answer(answer("a1"))
        await store.save_answer(answer("a2", channel="D9", thread=None, is_direct=True, outcome="stopped"))
        assert await store.rate_answer("a1", "U2", 1) is None
        clock.now += 10
        assert await store.rate_answer("a1", "U2", -1) == 1        # a second click changes it
        assert await store.rate_answer("a1", "U3", 1) is None
        clock.now += 10
        assert await store.rate_answer("a2", "U1", -1) is None
    async with stores.open(clock=clock) as store:                     # restarted
        assert await store.get_answer("a1") == answer("a1")
        assert await store.get_answer("a2") == answer("a2", channel="D9", thread=None, is_direct=True,
                                                        outcome="stopped")
        rows = await store.feedback_rows(0, clock.now + 1)
        assert rows == [
            FeedbackRow(1_700_000_010.0, "a1", "slack", "T1", "C1", "1.0", "1.1", "food", "gpt-test", "U1", "U2", -1),
            FeedbackRow(1_700_000_010.0, "a1", "slack", "T1", "C1", "1.0", "1.1", "food", "gpt-test", "U1", "U3", 1),
            FeedbackRow(1_700_000_020.0, "a2", "slack", "T1", "D9", None, "1.1", "food", "gpt-test", "U1", "U1", -1),
        ]
        assert [r.answer_id for r in await store.feedback_rows(1_700_000_015.0, clock.now + 1)] == ["a2"]
        # the answer saved again when it ended (its model as billed, its first message) keeps its ratings
        await store.save_answer(answer("a1", model="gpt-test-2024", message_id="1.5"))
        assert (await store.get_answer("a1")).model == "gpt-test-2024"
        assert len(await store.feedback_rows(0, clock.now + 1)) == 3


async def test_concurrent_clicks_of_one_person_leave_one_rating(stores):
    async with stores.open() as store, stores.open() as other:
        await store.save_answer(answer("a1"))
        await asyncio.gather(*(s.rate_answer("a1", "U2", 1 if i % 2 else -1)
                               for i, s in enumerate([store, other] * 10)))
        rows = await store.feedback_rows(0, 4e9)
        assert len(rows) == 1 and rows[0].user == "U2" and rows[0].rating in (1, -1)


async def test_a_forgotten_persons_questions_go_and_their_ratings_stay_under_a_digest(stores):
    async with stores.open() as store:
        await store.save_answer(answer("a1", user="U1", user_name="alice", question="my secret recipe?"))
        await store.save_answer(answer("a2", user="U2", user_name="bob", question="bob's question"))
        await store.rate_answer("a1", "U2", 1)
        await store.rate_answer("a2", "U1", -1)
        assert await store.forget_answers_user("U1", "digest-1") == 2     # one answer asked, one rating given
    async with stores.open() as store:
        forgotten = await store.get_answer("a1")
        assert (forgotten.user, forgotten.user_name, forgotten.question) == ("digest-1", "", "")
        assert (await store.get_answer("a2")).question == "bob's question"
        rows = await store.feedback_rows(0, 4e9)
        assert sorted((r.answer_id, r.asker, r.user, r.rating) for r in rows) == [
            ("a1", "digest-1", "U2", 1), ("a2", "U2", "digest-1", -1)]


async def test_retention_blanks_old_questions_and_keeps_the_ratings(stores):
    async with stores.open() as store:
        await store.save_answer(answer("old", at=1000.0, question="old question"))
        await store.save_answer(answer("new", at=5000.0, question="new question"))
        await store.rate_answer("old", "U2", 1)
        assert await store.forget_questions(2000.0) == 1
        assert await store.forget_questions(2000.0) == 0
        assert (await store.get_answer("old")).question == ""
        assert (await store.get_answer("new")).question == "new question"
        assert len(await store.feedback_rows(0, 4e9)) == 1


async def test_an_erased_conversations_answers_and_ratings_go_with_it_and_the_others_stay(stores):
    async with stores.open() as store:
        await store.save_answer(answer("a1", conversation_id="conv_gone"))
        await store.save_answer(answer("a2", conversation_id="conv_gone", outcome="stopped"))
        await store.save_answer(answer("b1", conversation_id="conv_kept"))
        await store.save_answer(answer("old", conversation_id=""))    # recorded before answers were linked
        for answer_id in ("a1", "a2", "b1", "old"):
            await store.rate_answer(answer_id, "U2", 1)
        await store.rate_answer("a1", "U3", -1)
        assert (await store.get_answer("b1")).conversation_id == "conv_kept"

        assert await store.delete_answers("conv_gone") == 2
        assert await store.delete_answers("conv_gone") == 0
        assert await store.delete_answers("") == 0                      # unlinked answers are nobody's
    async with stores.open() as store:                                  # restarted: it stays so
        assert await store.get_answer("a1") is None and await store.get_answer("a2") is None
        rows = await store.feedback_rows(0, 4e9)
        assert sorted((r.answer_id, r.user) for r in rows) == [("b1", "U2"), ("old", "U2")]
        assert await store.forget_answers_user("U3", "digest-3") == 0     # U3's only rating went with a1
