"""Web search on Slack: the stand-in OpenAI searches and cites pages with url_citation annotations; the thread
shows the answer with its sources as numbered links."""
from __future__ import annotations

from openai import AsyncOpenAI

from core.backends.openai.backend import OpenAIBackend
from core.config.schema import Config
from core.tools.registry import ToolRegistry
from bots.standins.openai_server import FakeOpenAI, ScriptedResponse, WebSearch, WebSource
from tests.fakes.slack_harness import running_bot

ANSWER = "Python 3.14 came out in October 2025."
SEARCH = WebSearch("python 3.14 release", (
    WebSource("What's new in Python 3.14", "https://docs.python.org/3/whatsnew/3.14.html", cites=ANSWER),))


async def test_web_search_sources_are_links_under_the_answer(tmp_path):
    config = Config.model_validate({"default_assistant": "scout", "assistants": {
        "scout": {"name": "scout", "model": "gpt-test", "tools": [{"type": "web_search"}]}}})
    async with FakeOpenAI() as openai:
        client = AsyncOpenAI(base_url=openai.base_url, api_key="sk-test", max_retries=0)
        backend = OpenAIBackend(client, ToolRegistry.from_config(config), max_retries=0)
        try:
            for native in (True, False):   # Slack's stream and post + edits render the same links
                async with running_bot(tmp_path / f"tb-{native}.db", backend,
                                       config=config.model_copy(update={"slack": config.slack.model_copy(
                                           update={"native_streaming": native})})) as bot:
                    openai.script(ScriptedResponse(text=ANSWER, web_search=SEARCH))
                    thread = await bot.slack.user_says("C1", "<@UBOT> when did Python 3.14 come out?")
                    expected = (f"{ANSWER}\n\n[1] [What's new in Python 3.14]"
                                "(https://docs.python.org/3/whatsnew/3.14.html)")
                    await bot.slack.wait_for(lambda: any(
                        expected in m.text and not m.streaming for m in bot.slack.bot_messages("C1", thread)),
                        20, "the answer with its source")
        finally:
            await backend.aclose()   # its HTTP sessions and the client
