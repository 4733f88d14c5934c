"""End to end through the console: a user attaches files, the stand-in OpenAI answers, the console shows it.

The real composition (ChatService + OpenAIBackend + AttachmentRouter + KnowledgeSync + SqliteStore) over the
real AsyncOpenAI against bots/standins (FakeOpenAI).
"""
from __future__ import annotations

import io
import re

import pytest
from openai import AsyncOpenAI

from bots.console.chat import ConsoleChat
from core.backends.openai.backend import OpenAIBackend
from core.backends.openai.files import OpenAIFileBackend
from core.config.schema import Config
from core.files.attachments import AttachmentRouter
from core.files.knowledge import KnowledgeSync
from core.chat.service import ChatService
from core.store.sqlite import SqliteStore
from core.tools.registry import ToolRegistry
from bots.standins.openai_files_routes import FakeOpenAIFiles
from bots.standins.openai_server import CodeRun, FileSearchHit, GeneratedFile, ScriptedResponse

CSV = b"city,temp\nShanghai,25\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64


class Console:
    def __init__(self, tmp_path, config: Config, fake: FakeOpenAIFiles, store: SqliteStore):
        self.out = io.StringIO()
        self.tmp = tmp_path
        self.client = AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)
        files = OpenAIFileBackend(self.client)
        self.knowledge = KnowledgeSync(files, store)
        backend = OpenAIBackend(self.client, ToolRegistry.from_config(config), max_retries=0)
        self.service = ChatService(config, store, {"openai": backend}, files=AttachmentRouter(files, store),
                                   knowledge=self.knowledge)
        self.files_dir = tmp_path / "received"

    async def says(self, assistant: str, *lines: str) -> str:
        start = self.out.tell()
        chat = ConsoleChat(self.service, user="alice", assistant=assistant, out=self.out, files_dir=self.files_dir)

        async def feed():
            for line in lines:
                yield line + "\n"
        await chat.run(feed())
        out = self.out.getvalue()[start:]
        assert "Something went wrong" not in out, out
        return out

    def file(self, name: str, data: bytes) -> str:
        path = self.tmp / name
        path.write_bytes(data)
        return str(path)


@pytest.fixture
async def console(tmp_path):
    (tmp_path / "handbook.md").write_text("# Handbook\nHoliday policy: 25 days a year.\n")
    config = Config(default_assistant="math", base_dir=tmp_path, assistants={
        "math": {"name": "math", "model": "gpt-test", "tools": [{"type": "code_interpreter"}]},
        "docs": {"name": "docs", "model": "gpt-test", "vision": False,
                 "tools": [{"type": "file_search", "files": ["handbook.md"], "max_num_results": 4}]},
    })
    async with FakeOpenAIFiles() as fake, SqliteStore(tmp_path / "tb.db") as store:
        c = Console(tmp_path, config, fake, store)
        c.fake = fake
        yield c
        await c.client.close()


def tools_of(body: dict, kind: str) -> dict:
    return next(t for t in body["tools"] if t["type"] == kind)


async def test_csv_goes_to_the_code_interpreter_and_the_chart_comes_back(console):
    fake = console.fake
    fake.script(ScriptedResponse(text="Here is the chart.",
                                 code=CodeRun("df.plot()", file=GeneratedFile("chart.png", PNG))))
    path = console.file("temps.csv", CSV)
    out = await console.says("math", f"/attach {path}", "plot the temperatures")
    (upload,) = fake.uploads()
    assert upload == {"purpose": "user_data", "filename": "temps.csv"}
    (body,) = fake.response_requests()
    file_id = next(iter(fake.files))
    assert tools_of(body, "code_interpreter")["container"]["file_ids"] == [file_id]
    assert "Here is the chart." in out
    assert (console.files_dir / "chart.png").read_bytes() == PNG


async def test_a_link_to_a_generated_file_becomes_the_path_it_was_saved_to(console):
    console.fake.script(ScriptedResponse(text="Plotted.\n\n[Download the chart](sandbox:/mnt/data/chart.png)",
                                         delta_size=3, code=CodeRun("df.plot()", file=GeneratedFile("chart.png", PNG))))
    out = await console.says("math", "plot the temperatures")
    saved = console.files_dir / "chart.png"
    assert saved.read_bytes() == PNG
    assert f"[Download the chart]({saved})" in out and "sandbox" not in out


async def test_the_same_file_attached_twice_is_uploaded_once(console):
    path = console.file("temps.csv", CSV)
    await console.says("math", f"/attach {path}", "sum it", f"/attach {path}", "and the mean?")
    assert len(fake_uploads := console.fake.uploads()) == 1, fake_uploads
    first, second = console.fake.response_requests()
    assert tools_of(first, "code_interpreter")["container"]["file_ids"] == \
        tools_of(second, "code_interpreter")["container"]["file_ids"]


async def test_pdf_is_searchable_and_the_answer_cites_the_knowledge_file(console):
    fake = console.fake
    (report,) = await console.knowledge.sync(console.service.config)
    handbook_id = next(fid for fid, f in fake.files.items() if f.obj["filename"] == "handbook.md")
    fake.script(ScriptedResponse(text="You get 25 days.",
                                 file_search=FileSearchHit(handbook_id, "handbook.md", "25 days a year")))
    out = await console.says("docs", f"/attach {console.file('policy.pdf', b'%PDF-1.7 holiday policy')}",
                             "how many holidays?")
    (body,) = fake.response_requests()
    store_ids = tools_of(body, "file_search")["vector_store_ids"]
    assert store_ids[0] == report.vector_store_id and len(store_ids) == 2   # knowledge + this conversation's
    assert "You get 25 days." in out
    assert re.search(r"\[1\] handbook\.md", out)


async def test_an_unsupported_file_is_named_and_the_text_still_answered(console):
    out = await console.says("docs", f"/attach {console.file('report.exe', b'MZ' + bytes(64))}",
                             "what is our holiday policy?")
    notice, answer = out.split("Answering your message without it.\n")
    assert "⚠️ report.exe: this assistant can't read that kind of file. It accepts documents (pdf, docx, md" in notice
    assert answer.startswith("You said: what is our holiday policy?")   # the text reached the model
    (body,) = console.fake.response_requests()
    (item,) = body["input"]
    text = " ".join(part["text"] for part in item["content"])
    assert text.startswith("what is our holiday policy?\n[Attachment “report.exe” could not be given to you:")
    assert console.fake.uploads() == []


async def test_the_good_file_goes_on_when_another_is_refused(console):
    out = await console.says("math", f"/attach {console.file('temps.csv', CSV)}",
                             f"/attach {console.file('tool.exe', b'MZ' + bytes(64))}", "sum the temperatures")
    assert "⚠️ tool.exe: this assistant can't read that kind of file." in out
    assert "You said: sum the temperatures" in out
    assert console.fake.uploads() == [{"purpose": "user_data", "filename": "temps.csv"}]
    (body,) = console.fake.response_requests()
    assert len(tools_of(body, "code_interpreter")["container"]["file_ids"]) == 1


async def test_a_file_the_search_index_rejects_is_named_and_the_question_answered(console):
    console.fake.fail_filename("scan.pdf", message="The file could not be parsed.")
    out = await console.says("docs", f"/attach {console.file('scan.pdf', b'%PDF-1.4 broken')}", "summarise")
    assert "⚠️ scan.pdf: couldn't be prepared for search (The file could not be parsed.).\n" \
           "Answering your message without it." in out
    assert "You said: summarise" in out


async def test_an_upload_the_file_service_refuses_costs_only_that_file(console):
    console.fake.fail_next(500, times=3, path="/v1/files", message="upstream down")
    out = await console.says("math", f"/attach {console.file('temps.csv', CSV)}", "plot it")
    assert "⚠️ temps.csv: couldn't be handed to the model (" in out
    assert "You said: plot it" in out


async def test_a_document_uploaded_earlier_stays_searchable_on_later_turns(console):
    await console.says("docs", f"/attach {console.file('policy.pdf', b'%PDF-1.7 holiday policy')}",
                       "read this", "and what did it say about holidays?")
    first, second = console.fake.response_requests()
    assert tools_of(second, "file_search")["vector_store_ids"] == tools_of(first, "file_search")["vector_store_ids"]
