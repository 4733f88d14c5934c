"""What the bot sends to Discord's REST API is what Discord's OpenAPI describes (bots/standins/specs/discord): message
bodies validate against MessageCreateRequest / MessageEditRequestPartial, snowflakes in message_reference are
strings, and an edit carries only fields Edit Message has (no `tts`)."""
from __future__ import annotations

import re

from tests.discord.test_discord_fake_spec import SPEC, check
from tests.fakes.discord_world import world
from bots.standins.openai_server import ScriptedResponse

LONG = "\n".join(f"Step {i}: stir the sauce and taste it again." for i in range(70))   # two messages
EDIT_FIELDS = set(SPEC["components"]["schemas"]["MessageEditRequestPartial"]["properties"])


async def test_message_posts_and_edits_are_bodies_discord_documents(tmp_path):
    async with world(tmp_path) as w:
        ch = w.channel("general")
        w.openai.script(ScriptedResponse(text=LONG, delta_size=200))
        await w.discord.user_message(ch, w.discord.alice, "the whole recipe", mention_bot=True)
        await w.final_answer(ch, LONG)
        message_route = re.compile(rf"/channels/{ch}/messages(/\d+)?$")
        sent = [r for r in w.discord.request_bodies if message_route.search(r["path"])]
        posts = [r["body"] for r in sent if r["method"] == "POST"]
        edits = [r["body"] for r in sent if r["method"] == "PATCH"]
        assert len(posts) >= 2 and edits
        for body in posts:
            check("MessageCreateRequest", body)
            ref = body["message_reference"]
            assert all(isinstance(ref[k], str) for k in ("message_id", "channel_id", "guild_id") if k in ref)
        for body in edits:
            check("MessageEditRequestPartial", body)
            assert set(body) <= EDIT_FIELDS, set(body) - EDIT_FIELDS
