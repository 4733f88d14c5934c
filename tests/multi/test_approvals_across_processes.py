"""Approval clicks across processes: two bots on one PostgreSQL database share the stand-in Slack, which spreads
its Socket Mode envelopes over their two connections, so a click may reach the process that is not waiting for
it. The real bolt apps, a real MCP server (streamable HTTP) and the stand-in OpenAI, as in
tests/slack/test_slack_approval.py."""
from __future__ import annotations

import contextlib
import dataclasses
import json

from openai import AsyncOpenAI

from core.backends.openai.backend import OpenAIBackend
from core.config.schema import Config
from core.store.postgres import PostgresStore
from core.tools.mcp import McpServers
from core.tools.registry import ToolRegistry
from tests.fakes.mcp_tickets import Seen, build_server, serve_http
from bots.standins.openai_server import FakeOpenAI, FunctionCall, ScriptedResponse
from tests.fakes.slack_harness import running_bot
from bots.standins.slack_server import FakeSlack

TICKET = json.dumps({"title": "VPN broken"})


@contextlib.asynccontextmanager
async def two_processes(tmp_path, postgres_url: str, *, timeout: float = 300):
    seen = Seen()
    async with FakeOpenAI() as openai, serve_http(build_server(seen)) as tickets, FakeSlack() as slack:
        slack.spread = True
        config = Config.model_validate({
            "default_assistant": "helpdesk", "base_dir": tmp_path, "admins": ["U3"],
            "approvals": {"timeout_seconds": timeout},
            "mcp_servers": {"tickets": {"url": tickets.url}},
            "assistants": {"helpdesk": {"name": "helpdesk", "model": "gpt-test", "tools": [
                {"type": "mcp", "server": "tickets", "require_approval": ["create_ticket"]}]}}})
        async with contextlib.AsyncExitStack() as stack:
            bots = []
            for name in ("p1", "p2"):
                servers = McpServers(config.mcp_servers, {})
                await servers.start()
                stack.push_async_callback(servers.aclose)
                await servers.wait_ready(10)
                client = AsyncOpenAI(base_url=openai.base_url, api_key="sk-test", max_retries=0)
                stack.push_async_callback(client.close)
                backend = OpenAIBackend(client, ToolRegistry.from_config(config, mcp=servers), max_retries=0)
                store = await stack.enter_async_context(PostgresStore(postgres_url, owner=name))
                bots.append(await stack.enter_async_context(
                    running_bot(tmp_path / name, backend, slack=slack, config=config, store=store)))
            await slack.wait_connected(timeout=60, count=2)
            for bot in bots:   # both processes hear the other's signals before the first click
                await bot.store.signals().start()
            openai.script(ScriptedResponse(function_calls=(FunctionCall("create_ticket", TICKET),)))
            yield slack, seen


async def approval_message(slack: FakeSlack, thread: str):
    return await slack.wait_for(
        lambda: next((m for m in slack.bot_messages("C1", thread) if m.buttons()), None), what="approval message")


async def test_clicks_are_decided_by_the_waiting_process_whichever_process_slack_gives_them_to(tmp_path,
                                                                                              postgres_url):
    async with two_processes(tmp_path, postgres_url) as (slack, seen):
        thread = await slack.user_says("C1", "<@UBOT> please file a ticket about the VPN", user="U1")
        request = await approval_message(slack, thread)
        # Slack hands consecutive envelopes to the two connections in turn: of these two clicks, one reaches
        # the process that waits for the decision and one the process that does not
        await slack.click(request, "Approve", user="U2")
        refusal = await slack.wait_for(lambda: slack.ephemerals, what="ephemeral refusal")
        assert refusal[0]["user"] == "U2" and "not yours to approve" in refusal[0]["text"]
        assert seen.calls == []

        await slack.click(request, "Approve", user="U1")
        await slack.wait_for(lambda: "The tool returned: Created ticket #201" in slack.thread_text("C1", thread),
                             what="the answer after the approval")
        assert seen.calls == [("create_ticket", {"title": "VPN broken", "body": ""})]
        assert "✅ `create_ticket` approved by <@U1>" in request.text and request.buttons() == []
        assert len(slack.ephemerals) == 1   # the approval itself is not answered with "no longer waiting"


async def test_a_click_nobody_waits_for_any_more_is_told_so_by_either_process(tmp_path, postgres_url):
    async with two_processes(tmp_path, postgres_url, timeout=5) as (slack, seen):
        thread = await slack.user_says("C1", "<@UBOT> please file a ticket", user="U1")
        request = await approval_message(slack, thread)
        stale = dataclasses.replace(request)   # as a client that has not refreshed still shows it
        await slack.wait_for(lambda: "nobody approved it in time" in slack.thread_text("C1", thread),
                             what="the answer after the time ran out")
        await slack.click(stale, "Approve", user="U1")
        await slack.click(stale, "Deny", user="U1")   # the next envelope: the other process
        late = await slack.wait_for(lambda: len(slack.ephemerals) == 2 and slack.ephemerals, what="two answers")
        assert all(e["user"] == "U1" and "no longer waiting" in e["text"] for e in late)
        assert seen.calls == []
