"""Approval of an MCP tool call in Slack: a message with Approve / Deny buttons in the thread, clicked through
real block_actions payloads (Socket Mode and HTTP mode) into the real bolt app; the stand-in OpenAI asks for
the tool, a real MCP server (streamable HTTP) runs it — or not."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json

from openai import AsyncOpenAI

from core.backends.openai.backend import OpenAIBackend
from core.config.schema import Config
from core.tools.mcp import McpServers
from core.tools.registry import ToolRegistry
from tests.fakes.mcp_tickets import Seen, build_server, serve_http
from bots.standins.openai_server import FakeOpenAI, FunctionCall, ScriptedResponse
from bots.slack.target import StreamSettings
from tests.fakes.slack_harness import running_bot

TICKET = json.dumps({"title": "VPN <!channel> broken"})


@contextlib.asynccontextmanager
async def world(tmp_path, *, mode: str = "socket", timeout: float = 300, stream: StreamSettings | None = None):
    seen = Seen()
    async with FakeOpenAI() as openai, serve_http(build_server(seen)) as tickets:
        config = Config.model_validate({
            "default_assistant": "helpdesk", "base_dir": tmp_path, "admins": ["U3"],
            "approvals": {"timeout_seconds": timeout},
            "mcp_servers": {"tickets": {"url": tickets.url}},
            "assistants": {"helpdesk": {"name": "helpdesk", "model": "gpt-test", "tools": [
                {"type": "mcp", "server": "tickets", "require_approval": ["create_ticket"]}]}},
            "slack": {"mode": mode}})
        servers = McpServers(config.mcp_servers, {})
        await servers.start()
        await servers.wait_ready(10)
        client = AsyncOpenAI(base_url=openai.base_url, api_key="sk-test", max_retries=0)
        backend = OpenAIBackend(client, ToolRegistry.from_config(config, mcp=servers), max_retries=0)
        try:
            extra = {"stream": stream} if stream is not None else {}
            async with running_bot(tmp_path / "tb.db", backend, config=config, mode=mode, **extra) as bot:
                openai.script(ScriptedResponse(function_calls=(FunctionCall("create_ticket", TICKET),)))
                yield bot, seen
        finally:
            await backend.aclose()   # its HTTP sessions and the client
            await servers.aclose()


async def approval_message(bot, thread):
    return await bot.slack.wait_for(
        lambda: next((m for m in bot.slack.bot_messages("C1", thread) if m.buttons()), None), 20, "approval message")


async def answered(bot, thread, text):
    return await bot.slack.wait_for(lambda: text in bot.slack.thread_text("C1", thread), 20, text)


async def test_an_approval_prompt_is_not_followed_by_a_thinking_status(tmp_path):
    # the prompt is the reply's first message: "is thinking…" (due a second after the mention) must not appear
    # under it while the person decides
    async with world(tmp_path, stream=StreamSettings(flush_interval=0.05, status_delay=1.0)) as (bot, seen):
        thread = await bot.slack.user_says("C1", "<@UBOT> please file a ticket about the VPN", user="U1")
        request = await approval_message(bot, thread)
        await asyncio.sleep(1.5)   # past the delay, nobody has clicked yet
        # Nothing set under the prompt, or what was on its way when the prompt went out taken back. (On a busy
        # machine the prompt may come after the delay: a status shown before it is cleared by Slack when the app
        # replies, which the prompt is.)
        order = [(m, a) for m, a in bot.slack.calls if m in ("chat.postMessage", "assistant.threads.setStatus")]
        prompt_at = next(i for i, (m, a) in enumerate(order) if m == "chat.postMessage" and a.get("channel") == "C1")
        after = [a["status"] for m, a in order[prompt_at + 1:] if m == "assistant.threads.setStatus"]
        assert after == [] or after[-1] == "", after
        await bot.slack.click(request, "Approve", user="U1")
        await answered(bot, thread, "The tool returned: Created ticket #201: VPN ")


async def test_asker_approves_after_a_stranger_is_refused(tmp_path):
    async with world(tmp_path) as (bot, seen):
        thread = await bot.slack.user_says("C1", "<@UBOT> please file a ticket about the VPN", user="U1")
        request = await approval_message(bot, thread)
        assert "🔐 *create_ticket* on *tickets* needs approval to run (asked by alice" in request.text
        # the model's arguments are shown as data: Slack's control characters escaped, no @channel
        assert 'title: "VPN &lt;!channel&gt; broken"' in request.text and "<!channel>" not in request.text
        assert [b["text"]["text"] for b in request.buttons()] == ["Approve", "Deny"]

        await bot.slack.click(request, "Approve", user="U2")
        refusal = await bot.slack.wait_for(lambda: bot.slack.ephemerals, 10, "ephemeral refusal")
        assert refusal[0]["user"] == "U2" and "not yours to approve" in refusal[0]["text"]
        assert seen.calls == []

        await bot.slack.click(request, "Approve", user="U1")
        await answered(bot, thread, "The tool returned: Created ticket #201: VPN ")
        assert seen.calls == [("create_ticket", {"title": "VPN <!channel> broken", "body": ""})]
        assert "✅ `create_ticket` approved by <@U1>" in request.text and request.buttons() == []


async def test_admin_denies_in_http_mode_and_the_answer_goes_on(tmp_path):
    async with world(tmp_path, mode="http") as (bot, seen):
        thread = await bot.slack.user_says("C1", "<@UBOT> please file a ticket", user="U1")
        request = await approval_message(bot, thread)
        assert await bot.slack.click(request, "Deny", user="U3") == "200"
        await answered(bot, thread, "was not run: the user denied it")
        assert "🚫 `create_ticket` denied by <@U3> — it was not run" in request.text
        assert seen.calls == []


async def test_unanswered_request_times_out_and_a_late_click_is_told_so(tmp_path):
    async with world(tmp_path, timeout=0.5) as (bot, seen):
        thread = await bot.slack.user_says("C1", "<@UBOT> please file a ticket", user="U1")
        request = await approval_message(bot, thread)
        stale = dataclasses.replace(request)   # as a client that has not refreshed still shows it, buttons and all
        await answered(bot, thread, "nobody approved it in time")
        assert "⏱️ No answer in time — `create_ticket` was not run" in request.text and request.buttons() == []
        await bot.slack.click(stale, "Approve", user="U1")
        late = await bot.slack.wait_for(lambda: bot.slack.ephemerals, 10, "ephemeral answer to a late click")
        assert late[0]["user"] == "U1" and "no longer waiting" in late[0]["text"]
        assert seen.calls == []
