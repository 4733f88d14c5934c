"""`teambridge run`: every enabled platform with credentials, until SIGINT/SIGTERM."""
from __future__ import annotations

import argparse

import sys

from bots.cli.base import EXIT_CONFIG, Invocation


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("run", parents=[common], help="run every configured platform until stopped")
    parser.set_defaults(handler=_run)


async def _run(inv: Invocation) -> int:
    from bots.runner import run_platforms
    from bots.runtime import env_value

    # Said before anything else (the console fallback's announcement included): nothing runs without it.
    if any(getattr(b, "type", "openai") == "openai" for b in inv.cfg.backends.values()) \
            and not env_value(inv.env, "OPENAI_API_KEY"):
        print("teambridge: OPENAI_API_KEY is not set: put it in the environment or .env (see .env.example)",
              file=sys.stderr)
        return EXIT_CONFIG
    return await run_platforms(inv.cfg, inv.config_path, inv.env)
