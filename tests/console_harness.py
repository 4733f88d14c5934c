"""Runs the real `teambridge` CLI as a subprocess against the stand-in OpenAI, like a user at a terminal."""
from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Run:
    code: int
    out: str
    err: str


async def teambridge(*args: str, cwd: Path, stdin: str = "", env: dict[str, str] | None = None,
                     timeout: float = 60) -> Run:
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("OPENAI_", "SLACK_", "DISCORD_", "TEAMBRIDGE_"))}
    full_env.update({"PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"})
    full_env.update(env or {})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots.app", *args, cwd=cwd, env=full_env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), timeout)
    except BaseException:  # a hung CLI must not outlive its test
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    return Run(proc.returncode, out.decode(), err.decode())


def openai_env(fake, tmp_path: Path) -> dict[str, str]:
    return {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": fake.base_url,
            "TEAMBRIDGE_DB": str(tmp_path / "teambridge.db")}
