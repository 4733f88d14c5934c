"""Web search on Discord: the stand-in OpenAI searches and cites pages with url_citation annotations; the reply
shows the answer with its sources as numbered markdown links (which Discord renders as links)."""
from __future__ import annotations

from core.config.schema import AssistantConfig
from tests.fakes.discord_world import world
from bots.standins.openai_server import ScriptedResponse, WebSearch, WebSource

ANSWER = "Python 3.14 came out in October 2025."


async def test_web_search_sources_are_links_under_the_answer(tmp_path):
    async with world(tmp_path) as w:
        scout = AssistantConfig.model_validate({**w.config.assistants["food"].model_dump(),
                                                "tools": [{"type": "web_search"}]})
        w.config = w.config.model_copy(update={"assistants": {**w.config.assistants, "food": scout}})
        w.service.apply_config(w.config)
        w.openai.script(ScriptedResponse(text=ANSWER, web_search=WebSearch("python 3.14 release", (
            WebSource("What's new in Python 3.14 [docs]", "https://docs.python.org/3/whatsnew/3.14.html",
                      cites=ANSWER),))))
        general = w.channel("general")
        await w.discord.user_message(general, w.discord.alice, "when did Python 3.14 come out?", mention_bot=True)
        await w.final_answer(general, f"{ANSWER}\n\n[1] [What's new in Python 3.14 (docs)]"
                                      "(https://docs.python.org/3/whatsnew/3.14.html)")
        assert w.openai.response_requests()[0]["tools"] == [{"type": "web_search"}]
