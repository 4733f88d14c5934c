"""`teambridge run`: every enabled platform with credentials, until SIGINT/SIGTERM."""
from __future__ import annotations

import argparse
import sys

from bots.cli.base import EXIT_CONFIG, Invocation


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("run", parents=[common], help="run every configured platform until stopped")
    parser.set_defaults(handler=_run)


async def _run(inv: Invocation) -> int:
    from bots.runner import plan_platforms, run_platforms
    from bots.runtime import env_value

    # Nothing answers without the OpenAI key: say so (with whatever else is missing) before anything starts —
    # the console fallback's announcement included.
    if any(b.type == "openai" for b in inv.cfg.backends.values()) and not env_value(inv.env, "OPENAI_API_KEY"):
        print("teambridge: OPENAI_API_KEY is not set: put it in the environment or .env (see .env.example)",
              file=sys.stderr)
        for line in plan_platforms(inv.cfg, inv.env)[1]:
            print(f"teambridge: {line}", file=sys.stderr)
        return EXIT_CONFIG
    return await run_platforms(inv.cfg, inv.config_path, inv.env)
