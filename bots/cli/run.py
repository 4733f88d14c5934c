"""`teambridge run`: every enabled platform with credentials, until SIGINT/SIGTERM."""
from __future__ import annotations

import argparse

from bots.cli.base import Invocation


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("run", parents=[common], help="run every configured platform until stopped")
    parser.set_defaults(handler=_run)


async def _run(inv: Invocation) -> int:
    from bots.runner import run_platforms
    return await run_platforms(inv.cfg, inv.config_path, inv.env)
