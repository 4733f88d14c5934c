"""MCP servers as tools: real servers (the mcp SDK's MCPServer) over stdio and streamable HTTP, reached through
the same ToolRegistry the backends use — what the model is offered, what it gets back, who approved it,
what the audit trail says, and what happens when a server is down, hangs or crashes."""
from __future__ import annotations

import asyncio
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core.config.load import load_config
from core.config.schema import Config
from core.errors import ConfigError
from core.model import Author
from core.ports import Turn
from core.store.sqlite import SqliteStore
from core.tools.approval import ApprovalRequest, Decision, may_decide, readable_arguments
from core.tools.mcp import McpServers
from core.tools.registry import ToolRegistry
from tests.fakes.mcp_tickets import Seen, build_server, serve_http

TICKETS_SCRIPT = str(Path(__file__).resolve().parents[1] / "fakes" / "mcp_tickets.py")


def make_config(tmp_path: Path, servers: str, tools: str, extra: str = "") -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(f"""default_assistant: helpdesk
mcp_servers:
{servers}
assistants:
  helpdesk:
    model: gpt-test
    tools:
{tools}
{extra}""", encoding="utf-8")
    return load_config(path)


def stdio_server(name: str = "tickets") -> str:
    return f"""  {name}:
    command: [{json.dumps(sys.executable)}, {json.dumps(TICKETS_SCRIPT)}]
    env: {{TICKETS_LOG: TEST_TICKETS_LOG, TICKETS_REGION: TEST_REGION}}
    timeout: 5
"""


@dataclass
class ScriptedApprover:
    """A person answering approval requests (our own fake of the Approver port)."""
    answer: Decision
    requests: list[ApprovalRequest] = field(default_factory=list)

    async def decide(self, request: ApprovalRequest) -> Decision:
        self.requests.append(request)
        return self.answer


def turn_for(config: Config, approver=None, user: str = "U_ALICE") -> Turn:
    return Turn(assistant=config.assistants["helpdesk"], conversation_id="conv_1", text="",
                user_id=user, metadata={"platform": "slack", "channel": "C1", "user_name": "alice"},
                approver=approver)


@pytest.fixture
async def store(tmp_path):
    async with SqliteStore(tmp_path / "audit.db") as store:
        yield store


async def connected(config: Config, env: dict[str, str], **kw) -> McpServers:
    servers = McpServers(config.mcp_servers, env, base_dir=config.base_dir, **kw)
    await servers.start()
    await servers.wait_ready(15)
    return servers


# ---- stdio -----------------------------------------------------------------------------------------------


async def test_stdio_server_tools_are_offered_with_their_schemas_and_a_call_reaches_it(tmp_path, store):
    config = make_config(tmp_path, stdio_server(), """      - type: mcp
        server: tickets
        allowed_tools: [search_tickets, create_ticket, environment]
""")
    log_file = tmp_path / "calls.jsonl"
    servers = await connected(config, {"TEST_TICKETS_LOG": str(log_file), "TEST_REGION": "eu"})
    try:
        registry = ToolRegistry.from_config(config, mcp=servers, audit=store)
        specs = {s.name: s for s in registry.specs_for(config.assistants["helpdesk"])}
        assert sorted(specs) == ["create_ticket", "environment", "search_tickets"]   # allowed_tools honoured
        declared = specs["create_ticket"].to_openai()
        assert declared["type"] == "function" and declared["description"] == "Create a new ticket."
        assert declared["parameters"]["required"] == ["title"]
        assert set(declared["parameters"]["properties"]) == {"title", "body"}

        turn = turn_for(config)
        result = await registry.call("search_tickets", json.dumps({"query": "vpn"}), turn=turn)
        assert result.startswith("2 tickets match 'vpn': #101 VPN drops every hour")
        assert json.loads(log_file.read_text().splitlines()[0])["arguments"] == {"query": "vpn"}
        # the server got the variables named in env:, under the names it expects, and nothing else of ours
        assert await registry.call("environment", "{}", turn=turn) == "TICKETS_LOG, TICKETS_REGION"

        # a tool outside allowed_tools is not callable even when the model names it
        refused = json.loads(await registry.call("delete_ticket", json.dumps({"number": 101}), turn=turn))
        assert "unknown tool 'delete_ticket'" in refused["error"]
        assert "delete_ticket" not in log_file.read_text()

        # bad arguments: the server's validation error reaches the model as an error text
        bad = json.loads(await registry.call("search_tickets", json.dumps({"query": ["x"]}), turn=turn))
        assert "query" in bad["error"]
    finally:
        await servers.aclose()
    [first, *_] = await store.tool_calls(0, 2e10)
    assert (first.tool, first.server, first.user, first.conversation, first.platform, first.assistant) == (
        "search_tickets", "tickets", "U_ALICE", "conv_1", "slack", "helpdesk")
    assert first.approval == "not_needed" and first.outcome == "ok" and len(first.arguments_sha256) == 64
    assert "vpn" not in json.dumps(first.__repr__())  # only the digest of the arguments is kept


async def test_approval_approved_denied_and_no_way_to_ask(tmp_path, store):
    config = make_config(tmp_path, stdio_server(), """      - type: mcp
        server: tickets
        require_approval: [create_ticket]
""")
    log_file = tmp_path / "calls.jsonl"
    servers = await connected(config, {"TEST_TICKETS_LOG": str(log_file), "TEST_REGION": "eu"})
    try:
        registry = ToolRegistry.from_config(config, mcp=servers, audit=store)
        args = json.dumps({"title": "VPN broken", "body": "since <!channel> monday"})

        yes = ScriptedApprover(Decision(True, "approved", by="U_ADMIN"))
        assert await registry.call("create_ticket", args, turn=turn_for(config, yes)) == \
            "Created ticket #201: VPN broken"
        [request] = yes.requests
        assert (request.tool, request.server, request.asker_id, request.asker_name) == (
            "create_ticket", "tickets", "U_ALICE", "alice")
        assert request.arguments == 'title: "VPN broken"\nbody: "since <!channel> monday"'

        no = ScriptedApprover(Decision(False, "denied", by="U_ALICE"))
        denied = json.loads(await registry.call("create_ticket", args, turn=turn_for(config, no)))
        assert "was not run: the user denied it" in denied["error"]

        late = ScriptedApprover(Decision(False, "timeout"))
        timed_out = json.loads(await registry.call("create_ticket", args, turn=turn_for(config, late)))
        assert "nobody approved it in time" in timed_out["error"]

        nobody = json.loads(await registry.call("create_ticket", args, turn=turn_for(config, None)))
        assert "cannot be asked for here" in nobody["error"]

        # a tool outside require_approval runs without asking
        quiet = ScriptedApprover(Decision(False, "denied"))
        assert "2 tickets" in await registry.call("search_tickets", '{"query": "x"}', turn=turn_for(config, quiet))
        assert quiet.requests == []
    finally:
        await servers.aclose()
    created = [json.loads(line) for line in log_file.read_text().splitlines() if "create_ticket" in line]
    assert len(created) == 1   # only the approved call ran
    records = await store.tool_calls(0, 2e10)
    assert [(r.approval, r.approved_by, r.outcome) for r in records] == [
        ("approved", "U_ADMIN", "ok"), ("denied", "U_ALICE", "not_run"), ("timeout", "", "not_run"),
        ("unavailable", "", "not_run"), ("not_needed", "", "ok")]


async def test_stdio_server_that_crashes_mid_call_is_restarted(tmp_path):
    config = make_config(tmp_path, stdio_server(), """      - type: mcp
        server: tickets
""")
    log_file = tmp_path / "calls.jsonl"
    servers = await connected(config, {"TEST_TICKETS_LOG": str(log_file), "TEST_REGION": "eu"},
                              backoff=(0.05, 0.2))
    try:
        registry = ToolRegistry.from_config(config, mcp=servers)
        turn = turn_for(config)
        crashed = json.loads(await registry.call("crash", "{}", turn=turn))
        assert "went away during the call to crash" in crashed["error"]
        for _ in range(400):   # restarted by the supervisor
            if servers.tools("tickets"):
                break
            await asyncio.sleep(0.05)
        assert "2 tickets" in await registry.call("search_tickets", '{"query": "x"}', turn=turn)
    finally:
        await servers.aclose()
    pids = {json.loads(line)["pid"] for line in log_file.read_text().splitlines()}
    assert len(pids) == 2   # a new process answered after the crash


async def test_a_tool_that_hangs_past_the_timeout_tells_the_model_and_the_server_stays_usable(tmp_path):
    async with serve_http(build_server()) as http:
        config = make_config(tmp_path, f"""  tickets:
    url: {http.url}
    timeout: 0.5
""", """      - type: mcp
        server: tickets
""")
        servers = await connected(config, {})
        try:
            registry = ToolRegistry.from_config(config, mcp=servers)
            turn = turn_for(config)
            hung = json.loads(await registry.call("slow_report", "{}", turn=turn))
            assert hung["error"] == "tool slow_report on tickets did not answer within 0.5s"
            assert "2 tickets" in await registry.call("search_tickets", '{"query": "x"}', turn=turn)
        finally:
            await servers.aclose()


# ---- streamable HTTP ---------------------------------------------------------------------------------------


async def test_http_header_value_from_the_environment_reaches_the_server_and_never_a_log(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    seen = Seen()
    secret = "tk-9f8e7d6c5b4a-secret"
    async with serve_http(build_server(seen)) as http:
        config = make_config(tmp_path, f"""  tickets:
    url: {http.url}
    headers: {{Authorization: TICKETS_TOKEN}}
""", """      - type: mcp
        server: tickets
""")
        servers = await connected(config, {"TICKETS_TOKEN": f"Bearer {secret}"})
        try:
            registry = ToolRegistry.from_config(config, mcp=servers)
            assert "2 tickets" in await registry.call("search_tickets", '{"query": "vpn"}', turn=turn_for(config))
        finally:
            await servers.aclose()
    assert seen.calls == [("search_tickets", {"query": "vpn"})]
    assert seen.headers[0]["authorization"] == f"Bearer {secret}"
    assert secret not in caplog.text
    assert "TICKETS_TOKEN" not in (tmp_path / "config.yaml").read_text().split("headers:")[0]


async def test_missing_header_variable_makes_the_server_unavailable_without_naming_a_value(tmp_path):
    config = make_config(tmp_path, """  tickets:
    url: http://127.0.0.1:9/mcp
    headers: {Authorization: TICKETS_TOKEN}
""", """      - type: mcp
        server: tickets
""")
    servers = await connected(config, {})
    try:
        assert servers.tools("tickets") is None
        assert servers.problem("tickets") == "environment variable TICKETS_TOKEN is not set"
    finally:
        await servers.aclose()


async def test_server_down_at_start_is_reported_and_reconnected_when_it_returns(tmp_path):
    seen = Seen()
    async with serve_http(build_server(seen), started=False) as http:
        config = make_config(tmp_path, f"""  tickets:
    url: {http.url}
    connect_timeout: 2
""", """      - type: mcp
        server: tickets
""")
        servers = await connected(config, {}, backoff=(0.05, 0.2))
        try:
            registry = ToolRegistry.from_config(config, mcp=servers)
            helpdesk = config.assistants["helpdesk"]
            assert registry.specs_for(helpdesk) == []
            [(server, why)] = await registry.unavailable(helpdesk)
            assert server == "tickets" and why
            # the model may still name a tool it saw earlier: it is told the server is down
            down = json.loads(await registry.call("search_tickets", '{"query": "x"}', turn=turn_for(config)))
            assert "tool server tickets is unavailable" in down["error"]

            await http.start()
            for _ in range(200):
                if registry.specs_for(helpdesk):
                    break
                await asyncio.sleep(0.05)
            assert "search_tickets" in [s.name for s in registry.specs_for(helpdesk)]
            assert await registry.unavailable(helpdesk) == []
            assert "2 tickets" in await registry.call("search_tickets", '{"query": "x"}', turn=turn_for(config))
        finally:
            await servers.aclose()


# ---- config and pieces -------------------------------------------------------------------------------------


def test_config_rejects_a_secret_in_headers_and_an_unknown_server(tmp_path):
    with pytest.raises(ConfigError) as err:
        make_config(tmp_path, """  tickets:
    url: http://127.0.0.1:8931/mcp
    headers: {Authorization: "Bearer abc123"}
  notes:
    command: [python, -m, notes]
    headers: {X: Y}
""", """      - type: mcp
        server: tikets
""")
    text = "\n".join(err.value.errors)
    assert "mcp_servers.tickets.headers: Authorization: the value is the NAME of an environment variable" in text
    assert "abc123" not in text
    assert "mcp_servers.notes: headers are for HTTP servers (url)" in text
    assert "unknown MCP server 'tikets'; did you mean 'tickets'?" in text


def test_who_may_decide(tmp_path):
    config = make_config(tmp_path, stdio_server(), "      - type: mcp\n        server: tickets\n",
                         "admins: [U_ADMIN]\n")
    assert may_decide(config, "U_ALICE", Author("U_ALICE"))
    assert may_decide(config, "U_ALICE", Author("U_ADMIN"))
    assert not may_decide(config, "U_ALICE", Author("U_BOB"))
    strict = make_config(tmp_path, stdio_server(), "      - type: mcp\n        server: tickets\n",
                         "admins: [U_ADMIN]\napprovals: {approvers: admin}\n")
    assert not may_decide(strict, "U_ALICE", Author("U_ALICE"))


def test_readable_arguments_are_cut_safely():
    text = readable_arguments({"body": "x" * 2000, "title": "ok"}, limit=100)
    assert len(text) < 130 and text.endswith("more characters)")
    assert readable_arguments("not json {") == "not json {"
    assert readable_arguments("{}") == "(no arguments)"
