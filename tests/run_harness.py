"""`teambridge run` as a real process against the stand-in Slack, Discord and OpenAI (one or both platforms)."""
from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.console_harness import REPO

CONFIG = """
default_assistant: food
shutdown_grace_seconds: {grace}
assistants:
  food:
    model: gpt-4.1-mini
    instructions: You are a food expert.
slack:
  enabled: {slack}
  mode: socket
discord:
  enabled: {discord}
"""


class RunProcess:
    """The real CLI in a subprocess. `extra_env` adds (or overrides) variables, e.g. TEAMBRIDGE_LOG_LEVEL."""

    def __init__(self, tmp_path: Path, openai, *, slack=None, discord=None, grace: float = 5,
                 extra_env: dict[str, str] | None = None, config: str | None = None) -> None:
        self.config = tmp_path / "config.yaml"
        self.config.write_text(config or CONFIG.format(grace=grace, slack=str(slack is not None).lower(),
                                                       discord=str(discord is not None).lower()))
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
        self.log = ""   # stderr read so far

    async def start(self) -> "RunProcess":
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bots.app", "run", "--config", str(self.config), cwd=self.cwd, env=self.env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        return self

    async def wait_running(self, timeout: float = 60) -> None:
        """Until the process logs that every platform is up (or it exits)."""
        assert self.proc is not None and self.proc.stderr is not None

        async def read() -> None:
            while "teambridge is running" not in self.log:
                line = await self.proc.stderr.readline()
                if not line:
                    raise AssertionError(f"teambridge run exited before it was running:\n{self.log}")
                self.log += line.decode()
        await asyncio.wait_for(read(), timeout)

    async def stop(self, sig: int, timeout: float = 60) -> tuple[int, str]:
        """Send `sig`, wait for the exit; returns the exit code and the whole stderr."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        _, err = await asyncio.wait_for(self.proc.communicate(), timeout)
        self.log += err.decode()
        return self.proc.returncode, self.log

    async def kill(self) -> None:
        """For fixtures: a failed assertion must not leave a bot running."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
