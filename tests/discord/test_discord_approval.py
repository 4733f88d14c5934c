"""Approval of an MCP tool call in Discord: a reply with Approve / Deny buttons (message components), clicked
through real component interactions into discord.py; the stand-in OpenAI asks for the tool, a real MCP server
(streamable HTTP) runs it — or not."""
from __future__ import annotations

import contextlib
import json

from openai import AsyncOpenAI

from bots.discord.client import DiscordAdapter
from bots.discord.pacing import Pacers
from core.backends.openai.backend import OpenAIBackend
from core.chat.service import ChatService
from core.config.schema import Config
from core.store.sqlite import SqliteStore
from core.tools.mcp import McpServers
from core.tools.registry import ToolRegistry
from bots.standins.discord_server import FakeDiscord
from tests.fakes.mcp_tickets import Seen, build_server, serve_http
from bots.standins.openai_server import FakeOpenAI, FunctionCall, ScriptedResponse

TICKET = json.dumps({"title": "VPN broken @everyone"})


@contextlib.asynccontextmanager
async def world(tmp_path, *, timeout: float = 300):
    seen = Seen()
    discord = FakeDiscord(channel_limit=5, channel_period=0.5)
    await discord.start()
    discord.guild = discord.add_guild("Team", ("general",))
    discord.alice = discord.add_user("alice")
    discord.bob = discord.add_user("bob")
    discord.boss = discord.add_user("boss", admin=True)
    servers = None
    try:
        async with FakeOpenAI() as openai, serve_http(build_server(seen)) as tickets, \
                SqliteStore(tmp_path / "tb.db") as store:
            config = Config.model_validate({
                "default_assistant": "helpdesk", "base_dir": tmp_path, "database": str(tmp_path / "tb.db"),
                "approvals": {"timeout_seconds": timeout},
                "mcp_servers": {"tickets": {"url": tickets.url}},
                "assistants": {"helpdesk": {"name": "helpdesk", "model": "gpt-test", "tools": [
                    {"type": "mcp", "server": "tickets", "require_approval": "always"}]}}})
            servers = McpServers(config.mcp_servers, {})
            await servers.start()
            await servers.wait_ready(10)
            client = AsyncOpenAI(base_url=openai.base_url, api_key="sk-test", max_retries=0)
            backend = OpenAIBackend(client, ToolRegistry.from_config(config, mcp=servers), max_retries=0)
            service = ChatService(config, store, {"openai": backend})
            env = discord.env() | {"TEAMBRIDGE_DB": str(tmp_path / "tb.db")}
            adapter = DiscordAdapter.from_env(service, env, guild_ready_timeout=0.05,
                                              pacers=Pacers(channel_limit=5, channel_period=0.5), store=store)
            await adapter.start()
            openai.script(ScriptedResponse(function_calls=(FunctionCall("create_ticket", TICKET),)))
            try:
                yield discord, discord.channel_id(discord.guild, "general"), seen
            finally:
                await adapter.stop()
                await backend.aclose()   # its HTTP sessions and the client
    finally:
        if servers is not None:
            await servers.aclose()
        await discord.stop()


async def approval_request(discord, channel):
    return await discord.wait_for(
        lambda: next((m for m in discord.messages_in(channel, by_bot=True)
                      if any(b.get("label") == "Approve" for b in m.buttons())), None), timeout=20)


async def answered(discord, channel, text):
    return await discord.wait_for(lambda: text in discord.bot_text(channel), timeout=20)


async def test_a_stranger_is_refused_and_the_asker_approves(tmp_path):
    async with world(tmp_path) as (discord, channel, seen):
        asked = await discord.user_message(channel, discord.alice, "file a ticket please", mention_bot=True)
        request = await approval_request(discord, channel)
        assert request.reference_id == asked   # a reply to the question, where the conversation is
        assert "🔐 **create_ticket** on **tickets** needs approval to run (asked by alice" in request.content
        assert 'title: "VPN broken @everyone"' in request.content
        assert request.payload.get("mentions", []) == [] and not request.payload.get("mention_everyone")
        assert [b["label"] for b in request.buttons()] == ["Approve", "Deny"]

        refused = await discord.click(request, "Approve", discord.bob)
        await discord.wait_for(lambda: refused.callbacks, timeout=30)
        assert refused.callbacks[0]["flags"] & 64 and "not yours to approve" in refused.callbacks[0]["content"]
        assert seen.calls == []

        await discord.click(request, "Approve", discord.alice)
        await answered(discord, channel, "The tool returned: Created ticket #201: VPN broken @everyone")
        assert seen.calls == [("create_ticket", {"title": "VPN broken @everyone", "body": ""})]
        assert f"✅ approved by <@{discord.alice['id']}>" in request.content and request.buttons() == []


async def test_an_admin_denies_and_the_answer_goes_on(tmp_path):
    async with world(tmp_path) as (discord, channel, seen):
        await discord.user_message(channel, discord.alice, "file a ticket please", mention_bot=True)
        request = await approval_request(discord, channel)
        await discord.click(request, "Deny", discord.boss)
        await answered(discord, channel, "was not run: the user denied it")
        assert "🚫 denied by" in request.content and request.buttons() == []
        assert seen.calls == []


async def test_an_unanswered_request_times_out(tmp_path):
    async with world(tmp_path, timeout=0.5) as (discord, channel, seen):
        await discord.user_message(channel, discord.alice, "file a ticket please", mention_bot=True)
        request = await approval_request(discord, channel)
        await answered(discord, channel, "nobody approved it in time")
        await discord.wait_for(lambda: "⏱️ No answer in time — it was not run" in request.content, timeout=30)
        assert request.buttons() == [] and seen.calls == []
