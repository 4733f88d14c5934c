"""Knowledge sync never stops the bot: absolute globs work (the resolver `teambridge check` uses), and a sync
that fails for one assistant (OpenAI refuses the key) is reported for that assistant while everything else
starts — `teambridge run` answers, `teambridge chat` answers, no traceback."""
from __future__ import annotations

import signal

import pytest
from openai import AsyncOpenAI

from core.backends.openai.files import OpenAIFileBackend
from core.config.files import resolve_files as files_check
from core.config.schema import Config
from core.files.knowledge import KnowledgeSync, resolve_files
from core.store.sqlite import SqliteStore
from tests.console_harness import openai_env, teambridge
from bots.standins.openai_files_routes import FakeOpenAIFiles
from bots.standins.openai_server import ScriptedResponse
from bots.standins.slack_server import FakeSlack
from tests.run_harness import RunProcess


@pytest.fixture
def srv_docs(tmp_path):
    """Files outside the config's directory, named by an absolute glob (like /srv/docs/*.md)."""
    docs = tmp_path / "srv" / "docs"
    docs.mkdir(parents=True)
    (docs / "handbook.md").write_text("# Handbook\nHoliday policy: 25 days.\n")
    (docs / "faq.md").write_text("# FAQ\nQ: Where is the office?\n")
    (tmp_path / "conf").mkdir()
    return docs


def config(base, files) -> Config:
    return Config(default_assistant="food", base_dir=base, assistants={
        "food": {"name": "food", "model": "gpt-test"},
        "docs": {"name": "docs", "model": "gpt-test", "tools": [{"type": "file_search", "files": files}]},
    })


async def test_an_absolute_glob_is_synced_like_teambridge_check_sees_it(tmp_path, srv_docs):
    cfg = config(tmp_path / "conf", [f"{srv_docs}/*.md", "missing/*.md"])
    checked = files_check(cfg, cfg.assistants["docs"].tool("file_search"))
    local, problems = resolve_files(cfg, cfg.assistants["docs"])
    assert sorted(local.values()) == checked == sorted(srv_docs.glob("*.md"))
    assert [(p.path, p.reason) for p in problems] == [("missing/*.md", "no file matches this pattern")]
    async with FakeOpenAIFiles() as fake, SqliteStore(tmp_path / "tb.db") as store:
        client = AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)
        (report,) = await KnowledgeSync(OpenAIFileBackend(client), store).sync(cfg)
        await client.close()
    assert {e.path: e.action for e in report.entries} == {
        f"{srv_docs}/faq.md": "added", f"{srv_docs}/handbook.md": "added", "missing/*.md": "failed"}


async def test_a_sync_refused_by_openai_is_reported_for_that_assistant(tmp_path, srv_docs):
    cfg = config(tmp_path / "conf", [f"{srv_docs}/*.md"])
    async with FakeOpenAIFiles() as fake, SqliteStore(tmp_path / "tb.db") as store:
        fake.fail_next(401, times=50, path="/v1/vector_stores", message="Incorrect API key provided")
        fake.fail_next(401, times=50, path="/v1/files", message="Incorrect API key provided")
        client = AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)
        (report,) = await KnowledgeSync(OpenAIFileBackend(client), store).sync(cfg)
        await client.close()
    assert report.assistant == "docs" and not report.ok
    [entry] = report.entries
    assert entry.action == "failed" and ("401" in entry.reason or "key" in entry.reason.lower())


RUN_CONFIG = """
default_assistant: food
shutdown_grace_seconds: 5
assistants:
  food:
    model: gpt-4.1-mini
  docs:
    model: gpt-4.1-mini
    tools:
      - type: file_search
        files: ["{docs}/*.md"]
slack:
  enabled: true
  mode: socket
discord:
  enabled: false
"""


async def test_teambridge_run_starts_and_answers_when_a_knowledge_sync_fails(tmp_path, srv_docs):
    async with FakeOpenAIFiles() as openai:
        slack = await FakeSlack().start()
        bot = RunProcess(tmp_path / "conf", openai, slack=slack, config=RUN_CONFIG.format(docs=srv_docs))
        try:
            openai.fail_next(401, times=50, path="/v1/vector_stores", message="Incorrect API key provided")
            openai.fail_next(401, times=50, path="/v1/files", message="Incorrect API key provided")
            await (await bot.start()).wait_running()
            openai.script(ScriptedResponse(text="Still here."))
            ts = await slack.user_says("C1", f"<@{slack.bot_user_id}> hello")
            await slack.wait_for(lambda: "Still here." in slack.thread_text("C1", ts), 20)
            code, log = await bot.stop(signal.SIGTERM)
        finally:
            await bot.kill()
            await slack.close()
    assert code == 0, log
    assert "docs: vector store" in log and "failed" in log
    assert "Traceback" not in log and "NotImplementedError" not in log


async def test_teambridge_chat_answers_when_a_knowledge_sync_fails(tmp_path, srv_docs):
    conf = tmp_path / "conf"
    (conf / "config.yaml").write_text(RUN_CONFIG.format(docs=srv_docs))
    async with FakeOpenAIFiles() as openai:
        openai.fail_next(401, times=50, path="/v1/vector_stores", message="Incorrect API key provided")
        openai.fail_next(401, times=50, path="/v1/files", message="Incorrect API key provided")
        openai.script(ScriptedResponse(text="Hello from the console."))
        run = await teambridge("chat", "--config", str(conf / "config.yaml"), cwd=conf, stdin="hi\n",
                               env=openai_env(openai, tmp_path))
    assert run.code == 0, run.err
    assert "Hello from the console." in run.out
    assert "Traceback" not in run.err and "docs:" in run.err
