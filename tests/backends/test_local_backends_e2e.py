"""`teambridge chat` and `teambridge check` on the two backend types whose history teambridge keeps.

The real CLI runs as a subprocess against a stand-in server: a stateless Responses server (Ollama, vLLM,
llama.cpp, OpenRouter) for `type: responses`, a Chat Completions server for `type: chat_completions`.
"""
from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.console_harness import teambridge
from bots.standins.chat_completions_server import FakeChatCompletions, message_text
from bots.standins.openai_server import FakeOpenAI, FunctionCall, ScriptedResponse, last_user_text

KEY = "k-local-123"


def config(tmp_path: Path, kind: str, base_url: str, *, context_tokens: int = 32000, extra: str = "") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"""\
default_assistant: helper
backends:
  local:
    type: {kind}
    base_url: {base_url}
    api_key_env: LOCAL_MODEL_KEY
    context_tokens: {context_tokens}
assistants:
  helper:
    backend: local
    model: llama3.1:8b
    instructions: Be brief.
    tools:
      - type: function
        function: core.tools.weather:query_weather
{extra}""")
    return path


class Server:
    """A stand-in of one kind and how to read what its model saw."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.fake: Any = FakeOpenAI(stateless=True, api_key=KEY) if kind == "responses" else \
            FakeChatCompletions(api_key=KEY)

    async def __aenter__(self) -> "Server":
        await self.fake.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.fake.__aexit__(*exc)

    def user_texts(self, body: dict[str, Any]) -> list[str]:
        if self.kind == "responses":
            return [i["content"] if isinstance(i["content"], str) else
                    " ".join(p.get("text", "") for p in i["content"] if p.get("type") == "input_text")
                    for i in body["input"] if i.get("role") == "user"]
        return [message_text(m) for m in body["messages"] if m["role"] == "user"]

    def last_user(self, body: dict[str, Any]) -> str:
        return self.user_texts(body)[-1]

    def requests(self) -> list[dict[str, Any]]:
        return self.fake.response_requests() if self.kind == "responses" else self.fake.completion_requests()


@pytest.fixture(params=["responses", "chat_completions"])
async def server(request):
    async with Server(request.param) as s:
        yield s


async def chat(tmp_path: Path, cfg: Path, text: str, **env: str):
    return await teambridge("chat", "--config", str(cfg), "--user", "alice", cwd=tmp_path, stdin=text,
                            env={"LOCAL_MODEL_KEY": KEY, "OPENAI_API_KEY": "sk-must-never-leave",
                                 "OPENAI_ORG_ID": "org-secret", "TEAMBRIDGE_DB": str(tmp_path / "tb.db")} | env)


async def test_memory_across_turns_and_a_restart_until_reset(server, tmp_path):
    server.fake.responder = lambda body: ScriptedResponse(text="I have read: " + " / ".join(server.user_texts(body)))
    cfg = config(tmp_path, server.kind, server.fake.base_url)
    run = await chat(tmp_path, cfg, "My name is Ada.\nWhat is my name?\n")
    assert run.code == 0, run.err
    assert run.out.splitlines() == ["I have read: My name is Ada.",
                                    "I have read: My name is Ada. / What is my name?"]
    again = await chat(tmp_path, cfg, "And now?\n")                            # a new process: same history
    assert again.out.splitlines() == ["I have read: My name is Ada. / What is my name? / And now?"]
    reset = await chat(tmp_path, cfg, "/reset\nWho am I?\n")
    assert reset.code == 0 and reset.out.splitlines()[-1] == "I have read: Who am I?"


async def test_the_weather_function_runs_on_a_local_model(server, tmp_path):
    server.fake.script(ScriptedResponse(function_calls=(FunctionCall("query_weather", '{"city":"上海"}', "call_1"),)))
    run = await chat(tmp_path, config(tmp_path, server.kind, server.fake.base_url), "上海天气怎么样?\n")
    assert run.code == 0, run.err
    answer = run.out.splitlines()[-1]                   # after the tool's status lines
    assert answer.startswith("The tool returned: ") and '"temperature": 25' in answer and "Sunny" in answer
    assert "Calling query_weather" in run.out
    first, second = server.requests()
    tools = first["tools"]
    assert [t.get("name") or t["function"]["name"] for t in tools] == ["query_weather"]


async def test_a_long_thread_stays_under_context_tokens_with_a_summary_and_its_latest_turns(server, tmp_path):
    def condensing(body: dict[str, Any]) -> bool:
        return ("messages" in body and body["messages"][0]["content"].startswith("You condense")) or \
            str(body.get("instructions", "")).startswith("You condense")

    def brain(body: dict[str, Any]) -> ScriptedResponse:
        if condensing(body):
            return ScriptedResponse(text="Alice counted sheep, one line each.")
        return ScriptedResponse(text="Noted " + server.last_user(body).split(":")[0])
    server.fake.responder = brain
    cfg = config(tmp_path, server.kind, server.fake.base_url, context_tokens=1000)
    lines = "".join(f"sheep {n}: " + "one more sheep jumps over the fence " * 8 + "\n" for n in range(1, 16))
    run = await chat(tmp_path, cfg, lines)
    assert run.code == 0, run.err
    assert run.out.splitlines() == [f"Noted sheep {n}" for n in range(1, 16)]   # no answer failed
    assert any(condensing(b) for b in server.requests())
    last = [b for b in server.requests() if not condensing(b)][-1]
    sent = json.dumps(last, ensure_ascii=False)
    assert "Alice counted sheep" in sent                                         # the summary went along
    assert "sheep 15:" in sent and "sheep 14:" in sent and "sheep 1:" not in sent
    assert "Noted sheep 14" in sent                                              # the last answer, intact


async def test_the_key_comes_from_api_key_env_and_openai_credentials_never_leave(server, tmp_path):
    run = await chat(tmp_path, config(tmp_path, server.kind, server.fake.base_url), "hello\n")
    assert run.code == 0 and run.out == "You said: hello\n", run.err
    for headers in server.fake.headers:
        sent = json.dumps(headers)
        assert headers.get("Authorization") == f"Bearer {KEY}"
        assert "sk-must-never-leave" not in sent and "org-secret" not in sent
    missing = await chat(tmp_path, config(tmp_path, server.kind, server.fake.base_url), "hello\n", LOCAL_MODEL_KEY="")
    assert missing.code == 2 and "LOCAL_MODEL_KEY is not set" in missing.err and "local" in missing.err


async def test_a_key_written_into_the_yaml_is_refused(server, tmp_path):
    cfg = config(tmp_path, server.kind, server.fake.base_url)
    cfg.write_text(cfg.read_text().replace("    api_key_env: LOCAL_MODEL_KEY\n", "    api_key: k-local-123\n"))
    run = await teambridge("check", "--config", str(cfg), cwd=tmp_path)
    assert run.code == 2
    assert f"{cfg}:6: backends.local.api_key:" in run.err and "api_key_env" in run.err
    assert "k-local-123" not in run.err


async def test_check_refuses_a_hosted_tool_on_a_backend_without_it(server, tmp_path):
    cfg = config(tmp_path, server.kind, server.fake.base_url, extra="      - type: code_interpreter\n")
    run = await teambridge("check", "--config", str(cfg), cwd=tmp_path)
    assert run.code == 2
    (line,) = run.err.strip().splitlines()
    assert line.startswith(f"{cfg}:16: assistants.helper.tools.1:")
    assert "code_interpreter" in line and "“local”" in line and server.kind in line


async def test_a_server_answering_500_gives_one_clear_line(server, tmp_path):
    server.fake.fail_next(500, times=20)
    run = await chat(tmp_path, config(tmp_path, server.kind, server.fake.base_url), "hello\n")
    assert run.code == 0
    assert "The model server “local” had a server error (500)" in run.out
    assert len([line for line in run.out.splitlines() if line.strip()]) == 1


async def test_a_server_that_is_down_gives_one_clear_line(tmp_path):
    with socket.socket() as s:             # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for kind in ("responses", "chat_completions"):
        run = await chat(tmp_path, config(tmp_path, kind, f"http://127.0.0.1:{port}/v1"), "hello\n")
        assert run.code == 0
        assert "Could not reach the model server “local” (connection failed)" in run.out
        assert len([line for line in run.out.splitlines() if line.strip()]) == 1


async def test_usage_names_the_local_model_and_prices_it_only_when_configured(server, tmp_path):
    server.fake.script(ScriptedResponse(text="Hi.", input_tokens=1200, output_tokens=300))
    cfg = config(tmp_path, server.kind, server.fake.base_url)
    assert (await chat(tmp_path, cfg, "hello\n")).code == 0
    env = {"TEAMBRIDGE_DB": str(tmp_path / "tb.db"), "LOCAL_MODEL_KEY": KEY}
    unpriced = json.loads((await teambridge("usage", "--config", str(cfg), "--by", "model", "--json", cwd=tmp_path,
                                            env=env)).out)
    assert [r["key"] for r in unpriced["rows"]] == ["local/llama3.1:8b"]
    assert unpriced["unpriced_models"] == ["local/llama3.1:8b"]                # shown as unknown, not as free
    cfg.write_text(cfg.read_text() + 'prices:\n  models:\n    "local/llama3.1:8b": {input: 0, output: 0}\n')
    priced = json.loads((await teambridge("usage", "--config", str(cfg), "--by", "model", "--json", cwd=tmp_path,
                                          env=env)).out)
    assert priced["unpriced_models"] == [] and priced["total_cost_usd"] == 0
    assert priced["total"]["input_tokens"] == 1200


async def test_file_commands_say_there_is_nothing_without_an_openai_backend(tmp_path):
    cfg = config(tmp_path, "responses", "http://127.0.0.1:9/v1")
    env = {"TEAMBRIDGE_DB": str(tmp_path / "tb.db"), "LOCAL_MODEL_KEY": KEY}
    for args in (("files", "list"), ("knowledge", "status")):
        run = await teambridge(*args, "--config", str(cfg), cwd=tmp_path, env=env)
        assert run.code == 0 and "No backend of type openai" in run.out, run.err


async def test_documents_go_as_text_and_a_too_long_one_gets_a_clear_reply(server, tmp_path):
    (tmp_path / "notes.md").write_text("# Lunch\nThe canteen serves pho on Fridays.\n")
    (tmp_path / "book.txt").write_text("All work and no play makes Jack a dull boy. " * 400)
    cfg = config(tmp_path, server.kind, server.fake.base_url, context_tokens=2000)
    run = await chat(tmp_path, cfg, f"/attach {tmp_path / 'notes.md'}\nWhen is pho?\n"
                                    f"/attach {tmp_path / 'book.txt'}\nSummarise the book\n")
    assert run.code == 0, run.err
    first, second = server.requests()                        # the long book never reached the model
    sent = json.dumps(first, ensure_ascii=False)
    assert "Attached file notes.md:" in sent and "The canteen serves pho on Fridays." in sent
    assert "book.txt: its text is about" in run.out and "tokens" in run.out
    assert "Answering your message without it." in run.out      # the question is still answered
    sent = json.dumps(second, ensure_ascii=False)
    assert "Summarise the book" in sent and "All work and no play" not in sent
