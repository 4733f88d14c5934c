"""`teambridge chat` at a terminal (a pseudo-terminal, as a person would use it) and the same session piped."""
from __future__ import annotations

import asyncio
import os
import re
import sys

import pexpect
import pytest

from tests.console_harness import REPO, openai_env, teambridge
from bots.standins.openai_server import FakeOpenAI, ScriptedResponse
from tests.fakes.tutorial_brain import tutorial_brain

CONFIG = str(REPO / "config.yaml")
ANSWER = "**Shakshuka**: eggs poached in a spiced `tomato` sauce.\n\n- eggs\n- tomatoes\n- cumin"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture
async def fake():
    async with FakeOpenAI() as fake:
        fake.responder = tutorial_brain(fake)
        yield fake


def spawn(fake, tmp_path, *args: str) -> pexpect.spawn:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SLACK_", "DISCORD_", "TEAMBRIDGE_"))}
    env.update(PYTHONPATH=str(REPO), TERM="xterm-256color", COLUMNS="100", LINES="40", **openai_env(fake, tmp_path))
    env.pop("NO_COLOR", None)
    return pexpect.spawn(sys.executable, ["-m", "bots.app", "chat", "--config", CONFIG, "--user", "alice", *args],
                         cwd=str(tmp_path), env=env, encoding="utf-8", timeout=30, dimensions=(40, 100))


async def expect(child: pexpect.spawn, pattern: str) -> str:
    # in a worker thread: the stand-in OpenAI answers on this test's event loop meanwhile
    await asyncio.to_thread(child.expect, pattern)
    return child.before + child.after


async def test_a_terminal_session_has_a_banner_a_prompt_and_markdown_in_colour(fake, tmp_path):
    fake.script(ScriptedResponse(text=ANSWER, delta_size=6))
    child = spawn(fake, tmp_path, "--assistant", "food")
    try:
        banner = await expect(child, "food › ")
        assert "teambridge" in banner and "food" in banner and "gpt-4.1-mini" in banner and "/help" in banner

        child.sendline("What should I cook tonight?")
        shown = await expect(child, "food › ")
        plain = ANSI.sub("", shown)
        assert "\x1b[1m" in shown                  # bold, in colour: rendered, not the raw Markdown
        assert "**Shakshuka**" not in plain and "Shakshuka" in plain
        assert "• eggs" in plain and "• cumin" in plain  # a Markdown list, drawn as one

        child.sendline("/help")
        listed = ANSI.sub("", await expect(child, "food › "))
        assert "/attach PATH" in listed and "/assistant NAME" in listed and "/reset" in listed
        assert "/teambridge" not in listed           # the console's commands, not Slack's

        child.sendline("/usage")                     # no admins configured: the person at the keyboard is one
        usage = ANSI.sub("", await expect(child, "food › "))
        assert "Usage by" in usage and "Only admins" not in usage

        child.sendline("/assistant math")
        await expect(child, "math › ")               # the prompt names the assistant
        child.sendeof()
        await asyncio.to_thread(child.expect, pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0


async def test_tool_progress_updates_one_line_at_a_terminal(fake, tmp_path):
    child = spawn(fake, tmp_path, "--assistant", "math")
    try:
        await expect(child, "math › ")
        child.sendline("What is the 20th Fibonacci number?")
        shown = ANSI.sub("", await expect(child, "math › "))
    finally:
        child.close(force=True)
    assert "Running code" in shown and "6765" in shown
    assert "for _ in range(20):" not in shown    # the code itself is for pipes and logs; here one status line


async def test_the_same_session_piped_is_plain_text(fake, tmp_path):
    fake.script(ScriptedResponse(text=ANSWER, delta_size=6))
    run = await teambridge("chat", "--config", CONFIG, "--user", "alice", "--assistant", "food", cwd=tmp_path,
                           stdin="What should I cook tonight?\n", env=openai_env(fake, tmp_path))
    assert run.code == 0, run.err
    assert run.out == ANSWER + "\n"              # exactly the model's text: no colour, no prompt, no banner


async def test_the_terminal_stream_ends_with_cores_tail(tmp_path):
    import io

    from rich.console import Console

    from bots.console.terminal import TerminalTarget
    from core.model import ReplyStopped

    def terminal() -> tuple[io.StringIO, TerminalTarget]:
        out = io.StringIO()
        return out, TerminalTarget(Console(file=out, force_terminal=True, width=80), tmp_path)

    out, target = terminal()
    stream = target.open_stream(None)
    await stream.text("See the handbook.")
    await stream.close("[1] handbook.md")
    shown = ANSI.sub("", out.getvalue())
    assert "See the handbook." in shown and "[1] handbook.md" in shown and stream.lifetime.state == "finished"

    out, target = terminal()
    stream = target.open_stream(None)
    await stream.text("Half an")
    await stream.fail("OpenAI had a server error (500); please try again")
    assert "⚠️ OpenAI had a server error (500)" in ANSI.sub("", out.getvalue())

    out, target = terminal()
    stream = target.open_stream(None)
    await stream.close()
    assert "(no answer)" in ANSI.sub("", out.getvalue())

    stream = target.open_stream(None)
    stream.lifetime.stop()
    with pytest.raises(ReplyStopped):
        await stream.text("more")
