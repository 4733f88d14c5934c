"""MCP tools in `teambridge chat`, `teambridge mcp list` and `teambridge audit`, through the real CLI: the stand-in
OpenAI asks for an MCP tool, a real MCP server (stdio, started by teambridge) runs it after a y/N prompt."""
from __future__ import annotations

import asyncio
import io
import json
import sys
from pathlib import Path

import pytest

from bots.console.approval import ConsoleApprover, LineSource
from core.tools.approval import ApprovalRequest
from tests.console_harness import openai_env, teambridge
from bots.standins.openai_server import FakeOpenAI, FunctionCall, ScriptedResponse, WebSearch, WebSource

TICKETS_SCRIPT = str(Path(__file__).resolve().parents[1] / "fakes" / "mcp_tickets.py")


def write_config(tmp_path: Path, extra_servers: str = "") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"""default_assistant: helpdesk
mcp_servers:
  tickets:
    command: [{json.dumps(sys.executable)}, {json.dumps(TICKETS_SCRIPT)}]
    env: {{TICKETS_LOG: TEST_TICKETS_LOG}}
{extra_servers}
assistants:
  helpdesk:
    model: gpt-test
    instructions: You file tickets.
    tools:
      - type: mcp
        server: tickets
        allowed_tools: [search_tickets, create_ticket]
        require_approval: [create_ticket]
  chef:
    model: gpt-test
""", encoding="utf-8")
    return path


@pytest.fixture
async def fake():
    async with FakeOpenAI() as fake:
        yield fake


def env_for(fake, tmp_path: Path) -> dict[str, str]:
    return {**openai_env(fake, tmp_path), "TEST_TICKETS_LOG": str(tmp_path / "calls.jsonl")}


def ticket_call() -> ScriptedResponse:
    return ScriptedResponse(function_calls=(FunctionCall("create_ticket", json.dumps({"title": "VPN broken"})),))


def created(tmp_path: Path) -> list[dict]:
    path = tmp_path / "calls.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line)["arguments"] for line in lines if '"create_ticket"' in line]


async def test_approved_call_runs_on_the_server_and_the_audit_shows_who_approved(fake, tmp_path):
    config = write_config(tmp_path)
    fake.script(ticket_call())
    run = await teambridge("chat", "--config", str(config), "--user", "alice", cwd=tmp_path,
                           stdin="Please file a ticket: the VPN is broken\ny\n", env=env_for(fake, tmp_path))
    assert run.code == 0, run.err
    assert "🔐 create_ticket (tickets) needs your approval to run with:\n    title: \"VPN broken\"" in run.out
    assert "Approve? [y/N] ✅ approved" in run.out
    assert "The tool returned: Created ticket #201: VPN broken" in run.out
    assert created(tmp_path) == [{"title": "VPN broken", "body": ""}]
    tools = {t["name"]: t for t in fake.response_requests()[0]["tools"]}
    assert sorted(tools) == ["create_ticket", "search_tickets"]     # allowed_tools: delete_ticket is not offered
    assert tools["create_ticket"]["parameters"]["required"] == ["title"]

    audit = await teambridge("audit", "--config", str(config), "--json", cwd=tmp_path, env=env_for(fake, tmp_path))
    assert audit.code == 0, audit.err
    [record] = json.loads(audit.out)
    assert (record["tool"], record["server"], record["user"], record["platform"]) == (
        "create_ticket", "tickets", "alice", "console")
    assert (record["approval"], record["approved_by"], record["outcome"]) == ("approved", "alice", "ok")
    table = await teambridge("audit", "--config", str(config), "--period", "1d", cwd=tmp_path,
                             env=env_for(fake, tmp_path))
    assert "tickets/create_ticket" in table.out and "approved" in table.out


async def test_denied_call_does_not_run_and_the_model_is_told(fake, tmp_path):
    config = write_config(tmp_path)
    fake.script(ticket_call())
    run = await teambridge("chat", "--config", str(config), "--user", "alice", cwd=tmp_path,
                           stdin="Please file a ticket\nn\nand now a plain question\n", env=env_for(fake, tmp_path))
    assert run.code == 0, run.err
    assert "🚫 create_ticket was not run." in run.out
    assert "was not run: the user denied it" in run.out      # the model got it as the tool's output
    assert "You said: and now a plain question" in run.out   # the "n" was the answer, not a message
    assert created(tmp_path) == []


async def test_mcp_list_prints_tools_with_their_approval_and_why_a_server_is_unreachable(fake, tmp_path):
    config = write_config(tmp_path, """  wiki:
    url: http://127.0.0.1:9/mcp
    connect_timeout: 3
""")
    run = await teambridge("mcp", "list", "--config", str(config), cwd=tmp_path, env=env_for(fake, tmp_path))
    assert run.code == 1, run.err
    lines = run.out.splitlines()
    assert lines[0].startswith("tickets (stdio: ") and lines[0].endswith(": 6 tools")
    assert "  create_ticket — Create a new ticket.  [helpdesk: approval needed]" in lines
    assert "  search_tickets — Search the ticket system for tickets matching a query.  [helpdesk: no approval]" \
        in lines
    assert "  delete_ticket — Delete a ticket for good.  [not offered to any assistant]" in lines
    [wiki] = [line for line in lines if line.startswith("wiki")]
    assert wiki.startswith("wiki (http://127.0.0.1:9/mcp): unreachable — ")
    assert "Traceback" not in run.err


async def test_a_server_down_at_start_is_announced_and_the_answer_goes_on(fake, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("""default_assistant: helpdesk
mcp_servers:
  wiki:
    url: http://127.0.0.1:9/mcp
    connect_timeout: 2
assistants:
  helpdesk:
    model: gpt-test
    tools: [{type: mcp, server: wiki}]
""", encoding="utf-8")
    run = await teambridge("chat", "--config", str(path), cwd=tmp_path, stdin="hello\n",
                           env=openai_env(fake, tmp_path))
    assert run.code == 0, run.err
    assert "⚠️ The tool server “wiki” is unavailable right now" in run.out
    assert "You said: hello" in run.out
    assert "tools" not in fake.response_requests()[0]


async def test_console_prompt_unanswered_in_time_is_a_no_and_the_late_line_is_the_next_message():
    queue: asyncio.Queue[str] = asyncio.Queue()

    async def typed():
        while True:
            yield await queue.get()

    source = LineSource(typed())
    out = io.StringIO()
    approver = ConsoleApprover(source, out, user="alice")
    decision = await approver.decide(ApprovalRequest(tool="create_ticket", server="tickets",
                                                     arguments='title: "x"', asker_id="alice", timeout=0.05))
    assert (decision.approved, decision.outcome) == (False, "timeout")
    assert "⏱️ No answer in 0.05s — create_ticket was not run." in out.getvalue()
    await queue.put("what about lunch?\n")
    assert await source.next() == "what about lunch?\n"
    source.close()


async def test_web_search_cites_its_sources_as_links(fake, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("""default_assistant: scout
assistants:
  scout:
    model: gpt-test
    tools: [{type: web_search, search_context_size: low}]
""", encoding="utf-8")
    fake.script(ScriptedResponse(
        text="Python 3.14 came out in October 2025, with free-threading supported.",
        web_search=WebSearch("python 3.14 release", (
            WebSource("What's new in Python 3.14", "https://docs.python.org/3/whatsnew/3.14.html",
                      cites="Python 3.14 came out in October 2025"),
            WebSource("PEP 779 [free-threading]", "https://peps.python.org/pep-0779/", cites="free-threading")))))
    run = await teambridge("chat", "--config", str(path), cwd=tmp_path, stdin="When did Python 3.14 come out?\n",
                           env=openai_env(fake, tmp_path))
    assert run.code == 0, run.err
    assert "⚙️ Searching the web…" in run.out and "python 3.14 release" in run.out
    assert run.out.rstrip().endswith(
        "Python 3.14 came out in October 2025, with free-threading supported.\n\n"
        "[1] [What's new in Python 3.14](https://docs.python.org/3/whatsnew/3.14.html)\n"
        "[2] [PEP 779 (free-threading)](https://peps.python.org/pep-0779/)")
    assert fake.response_requests()[0]["tools"] == [{"type": "web_search", "search_context_size": "low"}]
