"""`teambridge check`: validate the config; one line per assistant."""
from __future__ import annotations

import argparse

from bots.cli.base import EXIT_OK, Invocation
from core.config.checks import check_summary


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("check", parents=[common], help="validate the config")
    parser.set_defaults(handler=_check)


async def _check(inv: Invocation) -> int:
    # Loading the config did every check already (main reports a bad one with exit 2).
    for line in check_summary(inv.cfg):
        print(line)
    return EXIT_OK
