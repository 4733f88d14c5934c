"""The stand-in Discord answers in the shapes of the official OpenAPI spec (bots/standins/specs/discord/openapi.json,
the routes we use, copied from discord/discord-api-spec)."""
from __future__ import annotations

import json

import aiohttp
import jsonschema
import pytest

from bots.standins import SPECS
from bots.standins.discord_server import FakeDiscord

SPEC = json.loads((SPECS / "discord" / "openapi.json").read_text())


def check(name: str, data) -> None:
    schema = {"$ref": f"#/components/schemas/{name}", "components": SPEC["components"]}
    jsonschema.Draft202012Validator(schema).validate(data)


@pytest.fixture
async def fake():
    server = await FakeDiscord(channel_limit=2, channel_period=5.0).start()
    server.guild = server.add_guild("Team", ("general",))
    yield server
    await server.stop()


async def test_rest_responses_match_the_spec(fake):
    ch = fake.channel_id(fake.guild, "general")
    headers = {"Authorization": f"Bot {fake.token}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.get(f"{fake.api_url}/users/@me") as r:
            assert r.headers["Content-Type"] == "application/json"
            check("UserPIIResponse", await r.json())
        async with http.get(f"{fake.api_url}/gateway/bot") as r:
            check("GatewayBotResponse", await r.json())
        async with http.post(f"{fake.api_url}/channels/{ch}/messages", json={"content": "hi"}) as r:
            msg = await r.json()
            check("MessageResponse", msg)
            assert r.headers["X-RateLimit-Limit"] == "2" and r.headers["X-RateLimit-Remaining"] == "1"
        async with http.post(f"{fake.api_url}/channels/{ch}/messages/{msg['id']}/threads",
                             json={"name": "t"}) as r:
            check("ThreadResponse", await r.json())
        async with http.patch(f"{fake.api_url}/channels/{ch}/messages/{msg['id']}", json={"content": "x"}) as r:
            assert r.headers["X-RateLimit-Remaining"] == "0"
        async with http.patch(f"{fake.api_url}/channels/{ch}/messages/{msg['id']}", json={"content": "y"}) as r:
            assert r.status == 429 and r.headers["X-RateLimit-Scope"] == "user" and r.headers["Via"]
            check("RatelimitedResponse", await r.json())
        async with http.post(f"{fake.api_url}/channels/{ch}/messages", json={"content": "z" * 2001}) as r:
            assert r.status in (400, 429)
    assert fake.messages[msg["id"]].content == "x" and fake.messages[msg["id"]].edits == 1
    assert len(fake.rate_limited) >= 1
