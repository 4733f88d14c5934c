"""An admin looks at and cleans up what teambridge stored at OpenAI: `files list|delete`, `knowledge status`."""
from __future__ import annotations

import re

import pytest
from openai import AsyncOpenAI

from core.backends.openai.files import OpenAIFileBackend
from core.config.schema import AssistantConfig, Config
from core.files.attachments import AttachmentRouter
from core.admin.housekeeping import files_delete, files_list, knowledge_status
from core.files.knowledge import KnowledgeSync
from core.model import Attachment, ConversationKey
from core.store.sqlite import SqliteStore
from bots.standins.openai_files_routes import FakeOpenAIFiles

KEY = ConversationKey("console", "", "term", "", "alice")
MATH = AssistantConfig(name="math", model="gpt-test", tools=[{"type": "code_interpreter"}])


def attach(name: str, data: bytes) -> Attachment:
    async def read() -> bytes:
        return data
    return Attachment(name=name, size=len(data), content_type=None, read=read)


@pytest.fixture
async def env(tmp_path):
    (tmp_path / "handbook.md").write_text("# Handbook\n")
    (tmp_path / "faq.md").write_text("# FAQ\n")
    config = Config(default_assistant="math", base_dir=tmp_path, assistants={
        "math": MATH,
        "docs": {"name": "docs", "model": "gpt-test", "tools": [{"type": "file_search", "files": ["*.md"]}]},
    })
    async with FakeOpenAIFiles() as fake, SqliteStore(tmp_path / "tb.db") as store:
        client = AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)
        backend = OpenAIFileBackend(client)
        await store.save_conversation(KEY, "math", "conv_1", {})
        yield config, fake, store, backend
        await client.close()


async def test_files_list_shows_only_what_teambridge_uploaded(env):
    config, fake, store, backend = env
    await backend.upload("someone-elses.txt", b"not ours", "user_data")      # another app, same project
    await AttachmentRouter(backend, store).prepare(MATH, [attach("temps.csv", b"a,b\n1,2\n")], KEY, {})
    await KnowledgeSync(backend, store).sync(config)
    text = await files_list(backend, store)
    assert "someone-elses.txt" not in text
    lines = [re.split(r"\s{2,}", line) for line in text.splitlines()]
    assert lines[0] == ["ID", "NAME", "SIZE", "PURPOSE", "CREATED"]
    names = {cells[1]: cells[3] for cells in lines[1:-1]}
    assert names == {"temps.csv": "user_data", "handbook.md": "assistants", "faq.md": "assistants"}
    assert text.splitlines()[-1].startswith("3 file(s),")


async def test_files_delete_all_removes_ours_and_knowledge_sync_restores(env):
    config, fake, store, backend = env
    theirs = await backend.upload("someone-elses.txt", b"not ours", "user_data")
    await AttachmentRouter(backend, store).prepare(MATH, [attach("temps.csv", b"a,b\n1,2\n")], KEY, {})
    sync = KnowledgeSync(backend, store)
    await sync.sync(config)

    text = await files_delete(backend, store, "--all", config=config)
    assert text.splitlines()[-1] == "3 file(s) deleted."
    assert list(fake.files) == [theirs]
    assert await files_list(backend, store) == "teambridge has not uploaded any files."
    # The knowledge files were forgotten too, so the next sync uploads them again.
    (report,) = await sync.sync(config)
    assert {e.action for e in report.entries} == {"added"}


async def test_files_delete_leaves_files_it_did_not_create(env):
    config, fake, store, backend = env
    theirs = await backend.upload("someone-elses.txt", b"not ours", "user_data")
    text = await files_delete(backend, store, [theirs])
    assert f"{theirs}: not a file teambridge uploaded; left alone" in text
    assert theirs in fake.files


async def test_knowledge_status_shows_each_file(env):
    config, fake, store, backend = env
    assert await knowledge_status(config, store, backend) == \
        "docs: no vector store yet (run `teambridge knowledge sync`)"
    fake.fail_filename("faq.md", message="The file could not be parsed.")
    (report,) = await KnowledgeSync(backend, store).sync(config)
    text = await knowledge_status(config, store, backend)
    assert text.splitlines()[0].startswith(f"docs: vector store {report.vector_store_id} (completed, ")
    assert "  failed      faq.md: The file could not be parsed." in text.splitlines()
    assert "  completed   handbook.md" in text.splitlines()
