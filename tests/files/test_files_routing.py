"""A user attaches files -> what the assistant gets: vision images, code interpreter files, a searchable store.

Drives AttachmentRouter over the real AsyncOpenAI (OpenAIFileBackend) against the stand-in OpenAI server,
with the real SqliteStore.
"""
from __future__ import annotations

import asyncio
import base64
import io
import zipfile

import pytest
from openai import AsyncOpenAI

from core.backends.openai.files import OpenAIFileBackend
from core.config.schema import AssistantConfig
from core.files.attachments import AttachmentRouter, PreparedInputs
from core.model import Attachment, ConversationKey, UserFacingError
from core.store.sqlite import SqliteStore
from bots.standins.openai_files_routes import FakeOpenAIFiles

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"
CSV = b"city,temp\nShanghai,25\nBeijing,19\n"

KEY = ConversationKey("console", "", "term", "", "alice")

MATH = AssistantConfig(name="math", model="gpt-test", tools=[{"type": "code_interpreter"}])
DOCS = AssistantConfig(name="docs", model="gpt-test", tools=[{"type": "file_search"}], vision=False)
FOOD = AssistantConfig(name="food", model="gpt-test", vision=False)
SEEING = AssistantConfig(name="seeing", model="gpt-test", files={"max_image_mb": 1})


class Reads:
    """Attachments whose download the test can count (the adapter binds read() to a platform download)."""

    def __init__(self) -> None:
        self.count = 0

    def attach(self, name: str, data: bytes, *, size: int | None | str = "auto",
               content_type: str | None = None) -> Attachment:
        async def read() -> bytes:
            self.count += 1
            return data
        return Attachment(name=name, size=len(data) if size == "auto" else size, content_type=content_type,
                          read=read)


@pytest.fixture
async def fake():
    async with FakeOpenAIFiles() as server:
        yield server


@pytest.fixture
async def store(tmp_path):
    async with SqliteStore(tmp_path / "tb.db") as s:
        for name in ("math", "docs", "food", "seeing"):
            await s.save_conversation(KEY, name, f"conv_{name}", {"platform": "console"})
        yield s


@pytest.fixture
async def router(fake, store):
    client = AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)
    yield AttachmentRouter(OpenAIFileBackend(client), store)
    await client.close()


@pytest.fixture
def reads():
    return Reads()


async def test_small_image_goes_inline_as_vision_input(router, fake, reads):
    got = await router.prepare(SEEING, [reads.attach("cat.png", PNG)], KEY, {})
    assert got.images[0].data_url == "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert fake.uploads() == []   # nothing to clean up later


async def test_big_image_is_uploaded_once_for_vision(fake, store, reads):
    client = AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)
    router = AttachmentRouter(OpenAIFileBackend(client), store, inline_image_max_bytes=16)
    first = await router.prepare(SEEING, [reads.attach("cat.png", PNG)], KEY, {})
    second = await router.prepare(SEEING, [reads.attach("same-cat.png", PNG)], KEY, {})
    await client.close()
    assert first.images[0].file_id and first.images == second.images
    assert fake.uploads() == [{"purpose": "vision", "filename": "cat.png"}]


async def test_csv_goes_to_the_code_interpreter_and_is_uploaded_once(router, fake, reads):
    first = await router.prepare(MATH, [reads.attach("temps.csv", CSV)], KEY, {})
    again = await router.prepare(MATH, [reads.attach("temps-copy.csv", CSV)], KEY, {})
    assert first == PreparedInputs(container_file_ids=first.container_file_ids)
    assert len(first.container_file_ids) == 1 and again.container_file_ids == first.container_file_ids
    assert fake.uploads() == [{"purpose": "user_data", "filename": "temps.csv"}]
    assert fake.files[first.container_file_ids[0]].data == CSV


async def test_pdf_goes_to_the_conversations_own_expiring_vector_store(router, fake, store, reads):
    got = await router.prepare(DOCS, [reads.attach("handbook.pdf", PDF)], KEY, {"user": "alice"})
    (vs_id,) = got.vector_store_ids
    vs = fake.vector_stores[vs_id]
    assert vs["expires_after"] == {"anchor": "last_active_at", "days": 7}
    assert vs["metadata"]["assistant"] == "docs" and vs["metadata"]["user"] == "alice"
    (vs_file,) = fake.vector_store_files[vs_id].values()
    assert vs_file["status"] == "completed"
    assert fake.files[vs_file["id"]].obj["purpose"] == "assistants"
    assert (await store.get_conversation(KEY, "docs")).vector_store_id == vs_id
    # Later turns keep searching the earlier uploads, and more uploads join the same store.
    assert (await router.prepare(DOCS, [], KEY, {})).vector_store_ids == (vs_id,)
    more = await router.prepare(DOCS, [reads.attach("notes.md", b"# Notes\nShip on Fridays.\n")], KEY, {})
    assert more.vector_store_ids == (vs_id,) and len(fake.vector_store_files[vs_id]) == 2
    assert len(fake.vector_stores) == 1


async def test_many_documents_are_added_as_one_batch(router, fake, reads):
    docs = [reads.attach(f"part{i}.md", f"# Part {i}\n".encode()) for i in range(3)]
    got = await router.prepare(DOCS, docs, KEY, {})
    assert len(fake.batches) == 1
    assert {f["status"] for f in fake.vector_store_files[got.vector_store_ids[0]].values()} == {"completed"}


async def test_a_file_named_png_that_is_a_pdf_is_treated_as_a_pdf(router, fake, reads):
    got = await router.prepare(DOCS, [reads.attach("scan.png", PDF, content_type="image/png")], KEY, {})
    assert got.vector_store_ids and not got.images
    assert fake.uploads() == [{"purpose": "assistants", "filename": "scan.pdf"}]


async def test_txt_prefers_the_code_interpreter_else_file_search(router, fake, reads):
    text = b"plain notes\n"
    math = await router.prepare(MATH, [reads.attach("notes.txt", text)], KEY, {})
    docs = await router.prepare(DOCS, [reads.attach("notes.txt", text)], KEY, {})
    assert math.container_file_ids and not math.vector_store_ids
    assert docs.vector_store_ids and not docs.container_file_ids
    assert [u["purpose"] for u in fake.uploads()] == ["user_data", "assistants"]


async def test_unsupported_type_names_the_file_and_what_the_assistant_takes(router, fake, reads):
    got = await router.prepare(MATH, [reads.attach("report.exe", b"MZ\x90\x00" + b"\x00" * 60)], KEY, {})
    (refused,) = got.refused
    assert refused.reason.startswith("report.exe: this assistant can't read that kind of file.")
    assert "data files for code (csv, xlsx, json" in refused.reason
    assert fake.uploads() == []


async def test_image_for_an_assistant_without_vision_or_tools(router, reads):
    got = await router.prepare(DOCS, [reads.attach("cat.png", PNG)], KEY, {})
    (refused,) = got.refused
    assert refused.reason == ("cat.png: this assistant can't read that kind of file. It accepts documents "
                                 "(pdf, docx, md, txt, html, ..., up to 50 MB).")


async def test_plain_chat_assistant_takes_no_files(router, reads):
    got = await router.prepare(FOOD, [reads.attach("menu.csv", CSV)], KEY, {})
    (refused,) = got.refused
    assert refused.reason.startswith("menu.csv: this assistant can't read files.")
    assert reads.count == 0


async def test_oversized_file_is_refused_before_it_is_downloaded(router, fake, reads):
    huge = reads.attach("big.csv", b"", size=80 * 1024 * 1024)
    got = await router.prepare(MATH, [huge], KEY, {})
    (refused,) = got.refused
    assert refused.reason == "big.csv is 80.0 MB; this assistant takes data files up to 50 MB."
    assert reads.count == 0 and fake.uploads() == []


async def test_oversized_file_of_unknown_size_is_refused_after_reading(router, fake, reads):
    big = PNG + b"\x00" * (1024 * 1024)
    got = await router.prepare(SEEING, [reads.attach("photo.png", big, size=None)], KEY, {})
    (refused,) = got.refused
    assert refused.reason == "photo.png is 1.0 MB; this assistant takes images up to 1 MB."
    assert reads.count == 1 and fake.uploads() == []


async def test_one_bad_attachment_is_left_out_and_the_others_go_on(router, fake, reads):
    got = await router.prepare(MATH, [reads.attach("temps.csv", CSV), reads.attach("x.exe", b"MZ" + b"\0" * 8)],
                               KEY, {})
    (refused,) = got.refused
    assert refused.name == "x.exe" and refused.reason.startswith("x.exe:")
    assert fake.uploads() == [{"purpose": "user_data", "filename": "temps.csv"}]
    assert len(got.container_file_ids) == 1


async def test_a_failed_download_is_left_out_with_its_reason(router, fake, reads):
    async def broken() -> bytes:
        raise UserFacingError("Could not download notes.md from Slack (HTTP 403).")
    bad = Attachment(name="notes.md", size=10, content_type="text/markdown", read=broken)
    got = await router.prepare(DOCS, [bad, reads.attach("a.md", b"# A\n")], KEY, {})
    assert [r.reason for r in got.refused] == ["Could not download notes.md from Slack (HTTP 403)."]
    assert got.vector_store_ids and fake.uploads() == [{"purpose": "assistants", "filename": "a.md"}]


async def test_failed_vector_store_processing_names_the_file_and_reason(router, fake, reads):
    fake.fail_filename("broken.pdf", code="invalid_file", message="The file could not be parsed.")
    got = await router.prepare(DOCS, [reads.attach("broken.pdf", PDF)], KEY, {})
    (refused,) = got.refused
    assert refused.reason == "broken.pdf: couldn't be prepared for search (The file could not be parsed.)."


async def test_expired_conversation_store_is_replaced(router, fake, store, reads):
    first = await router.prepare(DOCS, [reads.attach("a.md", b"# A\n")], KEY, {})
    del fake.vector_stores[first.vector_store_ids[0]]          # expired at OpenAI (expires_after)
    del fake.vector_store_files[first.vector_store_ids[0]]
    second = await router.prepare(DOCS, [reads.attach("b.md", b"# B\n")], KEY, {})
    assert second.vector_store_ids != first.vector_store_ids
    assert (await store.get_conversation(KEY, "docs")).vector_store_id == second.vector_store_ids[0]


async def test_docx_is_recognised_from_its_zip_parts(router, fake, reads):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<w:document/>")
    got = await router.prepare(DOCS, [reads.attach("minutes", buf.getvalue())], KEY, {})
    assert got.vector_store_ids
    assert fake.uploads() == [{"purpose": "assistants", "filename": "minutes.docx"}]


async def test_the_same_bytes_attached_in_two_conversations_at_once_are_uploaded_once(router, fake, store, reads):
    other = ConversationKey("console", "", "term", "", "bob")
    await store.save_conversation(other, "math", "conv_bob", {})
    a, b = await asyncio.gather(router.prepare(MATH, [reads.attach("a.csv", CSV)], KEY, {}),
                                router.prepare(MATH, [reads.attach("b.csv", CSV)], other, {}))
    assert a.container_file_ids == b.container_file_ids
    assert len(fake.uploads()) == 1
