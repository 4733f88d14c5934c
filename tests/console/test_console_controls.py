"""Controls on answers at the console: `/stop` while an answer streams, `/retry`, `/rate up|down` — typed into a real
`teambridge chat` process line by line, answered by the stand-in OpenAI; then `teambridge feedback` reads the
ratings back, also after a restart."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

from tests.console_harness import REPO, openai_env, teambridge
from bots.standins.openai_server import FakeOpenAI, ScriptedResponse

CONFIG = str(REPO / "config.yaml")
LONG = "".join(f"word{i} " for i in range(400))   # ~20 s at 5 characters per 0.25 s: it only ends if stopped


async def _until(predicate) -> None:
    while not predicate():
        await asyncio.sleep(0.02)


class Session:
    """`teambridge chat` with a pipe we type into as we go, and its output as it comes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.out = ""
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while chunk := await self.proc.stdout.read(256):
            self.out += chunk.decode()

    async def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((line + "\n").encode())
        await self.proc.stdin.drain()

    async def wait_for(self, text: str, timeout: float = 30) -> None:
        async def seen() -> None:
            while text not in self.out:
                await asyncio.sleep(0.02)
        try:
            await asyncio.wait_for(seen(), timeout)
        except TimeoutError:
            raise AssertionError(f"{text!r} not shown; the console shows:\n{self.out}") from None

    async def end(self) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        await asyncio.wait_for(self.proc.wait(), 60)
        await self._reader
        assert self.proc.stderr is not None
        return (await self.proc.stderr.read()).decode()


async def chat(fake, tmp_path) -> Session:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SLACK_", "DISCORD_", "TEAMBRIDGE_"))}
    env.update(openai_env(fake, tmp_path), PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots.app", "chat", "--config", CONFIG, "--user", "alice", "--assistant", "food",
        cwd=tmp_path, env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    return Session(proc)


async def test_stop_retry_and_rate_at_the_console_and_the_ratings_outlive_the_process(tmp_path):
    async with FakeOpenAI() as fake:
        fake.script(ScriptedResponse(text=LONG, delta_size=5, delay=0.25),
                    ScriptedResponse(text="A short second answer."),
                    ScriptedResponse(text=LONG, delta_size=5, delay=0.25))
        session = await chat(fake, tmp_path)
        await session.type("Tell me everything about bread.")
        await session.wait_for("word3 ")
        await session.type("/stop")
        await session.wait_for("⏹️ stopped")
        # the model's stream was closed early, and nothing of the answer came after the note
        for _ in range(100):
            if fake.stream_ends:
                break
            await asyncio.sleep(0.05)
        assert fake.stream_ends == ["closed early"]
        shown = session.out
        await asyncio.sleep(0.6)   # more than two of the model's delta intervals
        assert session.out == shown
        answer = shown[:shown.index("⏹️ stopped")]
        assert answer.startswith("word0 word1 word2 word3 ") and "word399" not in answer

        await session.type("/rate down")
        await session.wait_for("Thanks — you rated this answer 👎.")
        await session.type("/rate up")
        await session.wait_for("Changed your rating of this answer to 👍.")
        await session.type("/rate sideways")
        await session.wait_for("Usage: /rate up|down")
        await session.type("/retry")
        await session.wait_for("A short second answer.\n")   # its end: the console ends an answer with a newline
        await session.type("/stop")             # nothing is being written now: said so, nothing breaks
        await session.wait_for("This answer is not being written any more.")

        await session.type("And about rye?")   # Ctrl-C while an answer is written stops it, the session goes on
        await asyncio.wait_for(_until(lambda: session.out.count("word1 ") == 2), 30)
        session.proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(_until(lambda: session.out.count("⏹️ stopped") == 2), 30)
        except TimeoutError:
            raise AssertionError(f"Ctrl-C did not stop the answer:\n{session.out}\n{session.proc.returncode}") from None
        await session.type("/rate down")
        await session.wait_for("Thanks — you rated this answer 👎.")
        err = await session.end()
        assert session.proc.returncode == 0, err
        assert "Traceback" not in err

        requests = fake.response_requests()
        assert len(requests) == 3 and fake.conversation_of(requests[0]) == fake.conversation_of(requests[1])
        assert requests[1]["input"] == requests[0]["input"]          # the same question, asked again
        assert fake.stream_ends == ["closed early", "complete", "closed early"]

        # `teambridge feedback` in a later process: the rating is stored (the last click counts)
        env = openai_env(fake, tmp_path)
        table = await teambridge("feedback", "--config", CONFIG, cwd=tmp_path, env=env)
        assert table.code == 0, table.err
        lines = table.out.splitlines()
        assert lines[0] == "Feedback (7d): 2 ratings (1 up, 1 down)."
        row = [c.strip() for c in lines[-1].strip("|").split("|")]   # newest first: the oldest is last
        assert row[1:5] == ["console", "food", "alice", "up"] and row[5].startswith("console console:alice")
        as_json = await teambridge("feedback", "--config", CONFIG, "--period", "1d", "--json", cwd=tmp_path, env=env)
        rating = json.loads(as_json.out)["ratings"][-1]
        assert rating["rating"] == "up" and rating["user"] == "alice" and rating["model"] == "gpt-4.1-mini"
        assert rating["asked_by"] == "alice" and rating["where"]["channel"] == "console:alice"
        bad = await teambridge("feedback", "--config", CONFIG, "--period", "last tuesday", cwd=tmp_path, env=env)
        assert bad.code == 2 and "Can't read the period" in bad.err

        usage = await teambridge("usage", "--config", CONFIG, "--by", "assistant", cwd=tmp_path, env=env)
        header = [c.strip() for c in next(l for l in usage.out.splitlines() if l.startswith("|")).strip("|").split("|")]
        food = [c.strip() for c in next(l for l in usage.out.splitlines() if l.startswith("| food")).strip("|").split("|")]
        assert header[-1] == "feedback" and food[-1] == "+1 -1"
