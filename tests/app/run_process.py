"""`teambridge run` as a subprocess whose log (stderr) is read while it runs, for operations tests."""
from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import aiohttp

from tests.console_harness import REPO


class RunningBot:
    def __init__(self, tmp_path: Path, config: str, env: dict[str, str]) -> None:
        self.config = tmp_path / "config.yaml"
        self.config.write_text(config)
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("OPENAI_", "SLACK_", "DISCORD_", "TEAMBRIDGE_"))}
        self.env.update(PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", TEAMBRIDGE_DB=str(tmp_path / "tb.db"), **env)
        self.cwd = tmp_path
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[str] = []
        self._reader: asyncio.Task | None = None
        self._changed = asyncio.Event()

    async def start(self) -> "RunningBot":
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bots.app", "run", "--config", str(self.config), cwd=self.cwd, env=self.env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.lines.append(line.decode().rstrip("\n"))
            self._changed.set()

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    async def wait_log(self, pattern: str, timeout: float = 60) -> re.Match:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            found = re.search(pattern, self.log)
            if found:
                return found
            if self.proc is not None and self.proc.returncode is not None:
                raise AssertionError(f"teambridge exited ({self.proc.returncode}):\n{self.log}")
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"no log line matching {pattern!r}:\n{self.log}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.2))
            except TimeoutError:
                pass

    async def monitoring_url(self) -> str:
        return (await self.wait_log(r"monitoring on (http://\S+)")).group(1)

    async def stop(self) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.terminate()
        code = await asyncio.wait_for(self.proc.wait(), 60)
        if self._reader is not None:
            await self._reader
        return code

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            await self._reader


async def get(url: str) -> tuple[int, str]:
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
