"""`teambridge audit`: every tool call — who asked, which tool, approved by whom, outcome, duration."""
from __future__ import annotations

import argparse
import sys

from bots.cli.base import EXIT_CONFIG, EXIT_OK, Invocation


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("audit", parents=[common], help="tool calls: who, which tool, approved by whom, outcome")
    parser.add_argument("--period", default="7d", help="e.g. 24h, 7d, 30d or 2026-11-01..2026-11-25")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=_audit)


async def _audit(inv: Invocation) -> int:
    from bots.runtime import database_location
    from core.admin.usage import parse_period
    from core.store import make_store
    from core.tools.audit import audit_text

    try:
        since, until = parse_period(inv.args.period)
    except ValueError as err:
        print(f"teambridge audit: {err}", file=sys.stderr)
        return EXIT_CONFIG
    store = make_store(database_location(inv.cfg, inv.env))
    await store.open()
    try:
        print(audit_text(await store.tool_calls(since, until), as_json=inv.args.json))
    finally:
        await store.close()
    return EXIT_OK
