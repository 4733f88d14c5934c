"""`teambridge run` as a real process against the stand-in Slack, Discord and OpenAI (one or both platforms).

`RunProcess` is the real CLI in a subprocess whose log (stderr) is read while it runs; the fixture `run_processes`
(tests/conftest.py) starts them for a test and kills whatever is still running when the test ends, so a failed
assertion never leaves a bot behind.
"""
from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.console_harness import REPO

CONFIG = """
default_assistant: food
shutdown_grace_seconds: {grace}
{monitoring}assistants:
  food:
    model: gpt-4.1-mini
    instructions: You are a food expert.
slack:
  enabled: {slack}
  mode: socket
discord:
  enabled: {discord}
"""
MONITORING = "monitoring: {port: 0, host: 127.0.0.1}\n"   # /metrics, /healthz, /readyz on a free port
RUNNING = "teambridge is running"   # logged once every enabled platform is up


def run_config(*, slack: bool, discord: bool, grace: float = 5, monitoring: bool = False) -> str:
    """The config of one assistant, `food`, on the platforms named."""
    return CONFIG.format(grace=grace, slack=str(slack).lower(), discord=str(discord).lower(),
                         monitoring=MONITORING if monitoring else "")


class RunProcess:
    """The real CLI in a subprocess. Without `config`, Slack and Discord are enabled when their stand-in is given;
    `extra_env` adds (or overrides) variables, e.g. TEAMBRIDGE_LOG_LEVEL."""

    def __init__(self, tmp_path: Path, openai, *, slack=None, discord=None, grace: float = 5,
                 extra_env: dict[str, str] | None = None, config: str | None = None,
                 monitoring: bool = False) -> None:
        self.config = tmp_path / "config.yaml"
        self.config.write_text(config or run_config(slack=slack is not None, discord=discord is not None,
                                                    grace=grace, monitoring=monitoring))
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("OPENAI_", "SLACK_", "DISCORD_", "TEAMBRIDGE_"))}
        self.env.update(PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", OPENAI_API_KEY="sk-test",
                        OPENAI_BASE_URL=openai.base_url, TEAMBRIDGE_DB=str(tmp_path / "tb.db"))
        if slack is not None:
            self.env.update(SLACK_BOT_TOKEN=slack.bot_token, SLACK_APP_TOKEN=slack.app_token,
                            SLACK_API_URL=slack.api_url)
        if discord is not None:
            self.env.update(discord.env())
        self.env.update(extra_env or {})
        self.cwd = tmp_path
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[str] = []   # stderr, line by line, as it is written
        self._reader: asyncio.Task | None = None
        self._changed = asyncio.Event()

    async def start(self) -> "RunProcess":
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bots.app", "run", "--config", str(self.config), cwd=self.cwd, env=self.env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            limit=1 << 24)   # a DEBUG line may be long; the default 64 KiB would end the reading
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.lines.append(line.decode().rstrip("\n"))
            self._changed.set()
        self._changed.set()

    @property
    def log(self) -> str:
        """stderr so far."""
        return "\n".join(self.lines)

    async def wait_log(self, pattern: str, timeout: float = 60) -> re.Match:
        """Until a log line matches `pattern` (a regex, over the whole log); fails if the process ends first."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            found = re.search(pattern, self.log)
            if found:
                return found
            if self._reader is not None and self._reader.done():
                raise AssertionError(f"teambridge run exited ({self.proc and self.proc.returncode}) "
                                     f"before logging {pattern!r}:\n{self.log}")
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"no log line matching {pattern!r} within {timeout} s:\n{self.log}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.2))
            except TimeoutError:
                pass

    async def wait_running(self, timeout: float = 60) -> None:
        """Until the process logs that every platform is up (or it exits)."""
        await self.wait_log(re.escape(RUNNING), timeout)

    async def monitoring_url(self) -> str:
        return (await self.wait_log(r"monitoring on (http://\S+)")).group(1)

    async def stop(self, sig: int, timeout: float = 60) -> tuple[int, str]:
        """Send `sig`, wait for the exit; returns the exit code and the whole stderr."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await self._drained()
        return code, self.log

    async def kill(self) -> None:
        """For fixtures: a failed assertion must not leave a bot running."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        await self._drained()

    async def _drained(self) -> None:
        if self._reader is not None:
            await self._reader


class RunProcesses:
    """The `teambridge run` processes one test starts (the fixture `run_processes`)."""

    def __init__(self, tmp_path: Path) -> None:
        self._tmp_path = tmp_path
        self.started: list[RunProcess] = []

    def new(self, openai, *, home: Path | None = None, **options) -> RunProcess:
        """A process (not started yet) in `home` (default: the test's tmp_path); options as RunProcess's."""
        process = RunProcess(home or self._tmp_path, openai, **options)
        self.started.append(process)
        return process

    async def running(self, openai, *, home: Path | None = None, **options) -> RunProcess:
        """A process started and past "teambridge is running"."""
        process = self.new(openai, home=home, **options)
        await (await process.start()).wait_running()
        return process

    async def kill_all(self) -> None:
        for process in self.started:
            await process.kill()


@pytest.fixture
async def run_processes(tmp_path):
    processes = RunProcesses(tmp_path)
    try:
        yield processes
    finally:
        await processes.kill_all()


async def get(url: str) -> tuple[int, str]:
    """An HTTP GET (the monitoring endpoints): status and body."""
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            return response.status, await response.text()


def sample(metrics: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` carrying these labels, in Prometheus text format (0 when absent)."""
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', label_text))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(value)
    return total
