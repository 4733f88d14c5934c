"""`teambridge knowledge sync`: the docs assistant's files -> its vector store, only what changed, per-file report."""
from __future__ import annotations

import pytest
from openai import AsyncOpenAI

from core.backends.openai.files import OpenAIFileBackend
from core.config.schema import Config
from core.files.knowledge import KnowledgeSync
from core.store.sqlite import SqliteStore
from bots.standins.openai_files_routes import FakeOpenAIFiles


def make_config(base_dir, files, chunking=None) -> Config:
    tool = {"type": "file_search", "files": files}
    if chunking:
        tool["chunking"] = chunking
    return Config(default_assistant="food", base_dir=base_dir, assistants={
        "food": {"name": "food", "model": "gpt-test"},
        "docs": {"name": "docs", "model": "gpt-test", "tools": [tool]},
    })


@pytest.fixture
async def fake():
    async with FakeOpenAIFiles() as server:
        yield server


@pytest.fixture
async def store(tmp_path):
    async with SqliteStore(tmp_path / "tb.db") as s:
        yield s


@pytest.fixture
async def sync(fake, store):
    client = AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)
    yield KnowledgeSync(OpenAIFileBackend(client), store)
    await client.close()


@pytest.fixture
def kb(tmp_path):
    d = tmp_path / "kb"
    d.mkdir()
    (d / "handbook.md").write_text("# Handbook\nHoliday policy: 25 days.\n")
    (d / "faq.md").write_text("# FAQ\nQ: Where is the office?\n")
    (d / "pricing.md").write_text("# Pricing\nPro: 10 EUR.\n")
    return tmp_path


def actions(report) -> dict[str, str]:
    return {e.path: e.action for e in report.entries}


async def test_first_sync_creates_the_store_and_uploads_every_file(sync, fake, store, kb):
    (report,) = await sync.sync(make_config(kb, ["kb/*.md"], {"max_chunk_size_tokens": 400,
                                                             "chunk_overlap_tokens": 100}))
    assert report.assistant == "docs" and report.ok
    assert actions(report) == {"kb/faq.md": "added", "kb/handbook.md": "added", "kb/pricing.md": "added"}
    assert await sync.vector_store_ids("docs") == [report.vector_store_id]
    assert await sync.vector_store_ids("food") == []
    vs_files = fake.vector_store_files[report.vector_store_id]
    assert len(vs_files) == 3 and {f["status"] for f in vs_files.values()} == {"completed"}
    assert {u["purpose"] for u in fake.uploads()} == {"assistants"}
    # The configured chunking reached OpenAI, the store has no expiry (it is the assistant's knowledge).
    batch_body = next(r.body for r in fake.requests if r.path.endswith("/file_batches") and r.method == "POST")
    assert batch_body["chunking_strategy"] == {"type": "static", "static": {"max_chunk_size_tokens": 400,
                                                                          "chunk_overlap_tokens": 100}}
    assert fake.vector_stores[report.vector_store_id]["metadata"] == {"teambridge": "knowledge",
                                                                       "assistant": "docs"}
    assert report.lines()[0] == (f"docs: vector store {report.vector_store_id} - 3 added, 0 updated, "
                                 "0 unchanged, 0 removed, 0 failed")
    assert "  added     kb/faq.md" in report.lines()


async def test_second_sync_uploads_only_what_changed_and_deletes_what_was_removed(sync, fake, kb):
    config = make_config(kb, ["kb/*.md"])
    (first,) = await sync.sync(config)
    old_ids = {f["id"] for f in fake.vector_store_files[first.vector_store_id].values()}
    old_pricing = next(fid for fid in old_ids if fake.files[fid].obj["filename"] == "pricing.md")
    old_faq = next(fid for fid in old_ids if fake.files[fid].obj["filename"] == "faq.md")
    uploads_before = len(fake.uploads())

    (kb / "kb" / "pricing.md").write_text("# Pricing\nPro: 12 EUR.\n")
    (kb / "kb" / "faq.md").unlink()
    (kb / "kb" / "onboarding.md").write_text("# Onboarding\nDay one: laptop.\n")
    (second,) = await sync.sync(config)

    assert second.vector_store_id == first.vector_store_id and len(fake.vector_stores) == 1
    assert actions(second) == {"kb/faq.md": "removed", "kb/handbook.md": "unchanged",
                               "kb/onboarding.md": "added", "kb/pricing.md": "updated"}
    assert [u["filename"] for u in fake.uploads()[uploads_before:]] == ["onboarding.md", "pricing.md"]
    # Replaced and removed files are gone from the store and from Files (billed storage).
    assert old_pricing not in fake.files and old_faq not in fake.files
    in_store = sorted(fake.files[fid].obj["filename"] for fid in fake.vector_store_files[first.vector_store_id])
    assert in_store == ["handbook.md", "onboarding.md", "pricing.md"]
    assert fake.files[next(fid for fid in fake.vector_store_files[first.vector_store_id]
                           if fake.files[fid].obj["filename"] == "pricing.md")].data == b"# Pricing\nPro: 12 EUR.\n"

    (third,) = await sync.sync(config)
    assert set(actions(third).values()) == {"unchanged"}
    assert len(fake.uploads()) == uploads_before + 2


async def test_a_file_that_fails_processing_is_reported_and_retried_next_time(sync, fake, kb):
    fake.fail_filename("pricing.md", code="unsupported_file", message="The file type is not supported.")
    config = make_config(kb, ["kb/*.md"])
    (report,) = await sync.sync(config)
    assert not report.ok
    assert actions(report)["kb/pricing.md"] == "failed"
    assert "  failed    kb/pricing.md: The file type is not supported." in report.lines()
    assert actions(report)["kb/handbook.md"] == "added"

    fake.stop_failing("pricing.md")
    (again,) = await sync.sync(config)
    assert actions(again) == {"kb/faq.md": "unchanged", "kb/handbook.md": "unchanged", "kb/pricing.md": "added"}


async def test_missing_files_and_empty_globs_are_reported(sync, kb):
    (report,) = await sync.sync(make_config(kb, ["kb/handbook.md", "kb/gone.md", "docs/*.pdf"]))
    assert actions(report) == {"kb/handbook.md": "added", "kb/gone.md": "failed", "docs/*.pdf": "failed"}
    reasons = {e.path: e.reason for e in report.entries}
    assert reasons == {"kb/handbook.md": "", "kb/gone.md": "file not found",
                       "docs/*.pdf": "no file matches this pattern"}


async def test_a_deleted_vector_store_is_rebuilt(sync, fake, kb):
    config = make_config(kb, ["kb/handbook.md"])
    (first,) = await sync.sync(config)
    del fake.vector_stores[first.vector_store_id]
    del fake.vector_store_files[first.vector_store_id]
    (second,) = await sync.sync(config)
    assert second.vector_store_id != first.vector_store_id
    assert actions(second) == {"kb/handbook.md": "added"}
    assert await sync.vector_store_ids("docs") == [second.vector_store_id]


async def test_sync_of_one_named_assistant(sync, kb):
    assert await sync.sync(make_config(kb, ["kb/*.md"]), "food") == []
    (report,) = await sync.sync(make_config(kb, ["kb/*.md"]), "docs")
    assert report.assistant == "docs"
