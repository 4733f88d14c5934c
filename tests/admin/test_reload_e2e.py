"""config.yaml edits applied without a restart — a long-lived `teambridge chat` fed over stdin, answered by the
stand-in OpenAI, while the test edits the file it runs on."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.console_harness import REPO, openai_env
from bots.standins.openai_server import FakeOpenAI, FunctionCall, ScriptedResponse

CONFIG = """\
default_assistant: food
admins: [root]
assistants:
  food:
    model: gpt-test
    instructions: You are a food expert.
    temperature: 0.5
slack: {enabled: false}
discord: {enabled: false}
"""


class LiveChat:
    """`teambridge chat` running in the background: say() a line, wait for what the terminal shows."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.out = ""
        self.err = ""
        self._changed = asyncio.Event()
        self._readers = [asyncio.create_task(self._pump(proc.stdout, "out")),
                         asyncio.create_task(self._pump(proc.stderr, "err"))]

    @classmethod
    async def start(cls, fake: FakeOpenAI, tmp_path: Path, user: str = "alice") -> "LiveChat":
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SLACK_", "DISCORD_",
                                                                         "TEAMBRIDGE_"))}
        env.update(openai_env(fake, tmp_path), PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1",
                   TEAMBRIDGE_LOG_LEVEL="INFO")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bots.app", "chat", "--config", str(tmp_path / "config.yaml"), "--user", user,
            cwd=tmp_path, env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        chat = cls(proc)
        await chat.say("/help", until="Commands:")  # answered: config loaded and the reloader watching the file
        return chat

    async def _pump(self, stream, name: str) -> None:
        while chunk := await stream.read(4096):
            setattr(self, name, getattr(self, name) + chunk.decode(errors="replace"))
            self._changed.set()

    async def wait(self, predicate, timeout: float = 15.0):
        async def until():
            while not (result := predicate()):
                self._changed.clear()
                await self._changed.wait()
            return result
        try:
            return await asyncio.wait_for(until(), timeout)
        except TimeoutError:
            raise AssertionError(f"timed out; stdout:\n{self.out}\nstderr:\n{self.err[-3000:]}") from None

    async def say(self, line: str, *, until: str | None = None) -> str:
        """Type a line; returns what the terminal printed for it (up to and including `until`, else one line)."""
        start = len(self.out)
        self.proc.stdin.write((line + "\n").encode())
        await self.proc.stdin.drain()

        def answered():
            new = self.out[start:]
            if until is not None:
                return until in new and new.endswith("\n")
            return new.endswith("\n")
        await self.wait(answered)
        return self.out[start:]

    async def reloaded(self, count: int = 1) -> None:
        await self.wait(lambda: self.err.count("config reloaded from") >= count)

    async def close(self) -> int:
        self.proc.stdin.close()
        code = await asyncio.wait_for(self.proc.wait(), 15)
        await asyncio.gather(*self._readers)
        return code


@pytest.fixture
async def fake():
    async with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
async def live(fake, tmp_path):
    (tmp_path / "config.yaml").write_text(CONFIG)
    chats: list[LiveChat] = []

    async def start(user: str = "alice") -> LiveChat:
        chat = await LiveChat.start(fake, tmp_path, user)
        chats.append(chat)
        return chat

    yield start
    try:
        for chat in chats:
            if chat.proc.returncode is None:
                code = await chat.close()
                assert code == 0, chat.err
    finally:
        for chat in chats:  # whatever happened, no chat outlives its test
            if chat.proc.returncode is None:
                chat.proc.kill()
                await chat.proc.wait()
        assert "Traceback" not in chat.err, chat.err


def edit(tmp_path: Path, old: str, new: str) -> Path:
    path = tmp_path / "config.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    return path


def last_request(fake) -> dict:
    return fake.response_requests()[-1]


async def test_edit_is_picked_up_by_polling_and_the_next_answer_uses_the_new_instructions_and_model(fake, tmp_path,
                                                                                                     live):
    chat = await live()
    assert await chat.say("What is pho?") == "You said: What is pho?\n"
    first = last_request(fake)
    assert first["instructions"] == "You are a food expert." and first["model"] == "gpt-test"

    edit(tmp_path, "You are a food expert.", "You are a pirate chef.")
    edit(tmp_path, "model: gpt-test", "model: gpt-test-2")
    await chat.reloaded()
    assert await chat.say("And ramen?") == "You said: And ramen?\n"
    second = last_request(fake)
    assert second["instructions"] == "You are a pirate chef." and second["model"] == "gpt-test-2"
    assert fake.conversation_of(second) == fake.conversation_of(first)  # same conversation, history kept


async def test_broken_edit_is_rejected_with_its_line_and_the_bot_keeps_answering_on_the_old_config(fake, tmp_path,
                                                                                                    live):
    chat = await live()
    path = edit(tmp_path, "    instructions: You are a food expert.\n",
                "    instructions: You are a pirate chef.\n    temprature: 0.3\n")
    line = path.read_text().splitlines().index("    temprature: 0.3") + 1
    await chat.wait(lambda: "config not reloaded" in chat.err)
    assert f"{path}:{line}: assistants.food.temprature" in chat.err, chat.err
    assert chat.err.count("config not reloaded") == 1 and chat.err.count(f"{path}:{line}:") == 1, chat.err  # once

    assert await chat.say("Still there?") == "You said: Still there?\n"
    assert last_request(fake)["instructions"] == "You are a food expert."

    # a YAML syntax error: its line too
    edit(tmp_path, "    temprature: 0.3\n", "    temprature: [0.3\n")
    await chat.wait(lambda: f"{path}:{line + 1}: yaml:" in chat.err)
    assert await chat.say("Still?") == "You said: Still?\n"

    # fixing the file applies it
    edit(tmp_path, "    temprature: [0.3\n", "")
    await chat.reloaded()
    await chat.say("And now?")
    assert last_request(fake)["instructions"] == "You are a pirate chef."


async def test_admin_reload_command_applies_at_once_and_others_are_refused(fake, tmp_path, live):
    bob = await live("bob")
    root = await live("root")
    edit(tmp_path, "You are a food expert.", "You are a baker.")
    assert await bob.say("/reload") == "Only admins can use “reload”.\n"
    assert await root.say("/reload") == "Config reloaded.\n"
    await root.say("Bread?")
    assert last_request(fake)["instructions"] == "You are a baker."

    edit(tmp_path, "  food:\n", "  food:\n    bogus: 1\n")
    reply = await root.say("/reload", until="bogus")
    assert reply.startswith("Config not reloaded:\n") and f"{tmp_path / 'config.yaml'}:5: assistants.food.bogus" \
        in reply


async def test_sighup_reloads_at_once(fake, tmp_path, live):
    chat = await live()
    await chat.say("hi")
    edit(tmp_path, "You are a food expert.", "You are a tea sommelier.")
    chat.proc.send_signal(signal.SIGHUP)
    await chat.reloaded()
    await chat.say("Oolong?")
    assert last_request(fake)["instructions"] == "You are a tea sommelier."


async def test_an_assistant_with_a_new_function_tool_added_by_reload_calls_it(fake, tmp_path, live):
    chat = await live()
    await chat.say("hi")
    path = tmp_path / "config.yaml"
    path.write_text(path.read_text().replace("slack:", "\n".join([
        "  weather:",
        "    model: gpt-test",
        "    instructions: You are a weather bot.",
        "    tools:",
        "      - type: function",
        "        function: core.tools.weather:query_weather",
        "slack:"]), 1))
    chat.proc.send_signal(signal.SIGHUP)  # no need to wait for the poll
    await chat.reloaded()
    assert "You are now talking to weather" in await chat.say("/assistant weather")
    fake.script(ScriptedResponse(function_calls=(FunctionCall("query_weather", json.dumps({"city": "上海"})),)))
    reply = await chat.say("上海的天气怎么样？", until="The tool returned")
    assert "25" in reply and "Sunny" in reply, reply
    tools = fake.response_requests()[-2]["tools"]
    assert [t["name"] for t in tools if t["type"] == "function"] == ["query_weather"]


async def test_new_file_search_files_are_synced_by_reload_and_searched(fake, tmp_path, live):
    (tmp_path / "handbook.md").write_text("# Handbook\nThe espresso machine is called Bertha.\n")
    chat = await live()
    await chat.say("hi")
    assert fake.vector_stores == {}
    path = tmp_path / "config.yaml"
    path.write_text(path.read_text().replace("slack:", "\n".join([
        "  docs:",
        "    model: gpt-test",
        "    instructions: Answer from the handbook.",
        "    tools:",
        "      - type: file_search",
        "        files: [handbook.md]",
        "slack:"]), 1))
    chat.proc.send_signal(signal.SIGHUP)  # no need to wait for the poll
    await chat.reloaded()
    [store] = fake.vector_stores
    [uploaded] = fake.files.values()
    assert uploaded.data == (tmp_path / "handbook.md").read_bytes()
    await chat.say("/assistant docs")
    await chat.say("What is the espresso machine called?")
    [tool] = last_request(fake)["tools"]
    assert tool["type"] == "file_search" and tool["vector_store_ids"] == [store]
