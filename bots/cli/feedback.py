"""`teambridge feedback`: what people rated — time, platform, assistant, user, rating, where the answer is."""
from __future__ import annotations

import argparse

from bots.cli.base import EXIT_OK, Invocation, period


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("feedback", parents=[common],
                            help="ratings of answers: time, platform, assistant, user, rating, where the answer is")
    parser.add_argument("--period", default="7d", type=period,
                        help="e.g. 24h, 7d, 30d or 2026-11-01..2026-11-25 (default: 7d)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=_feedback)


async def _feedback(inv: Invocation) -> int:
    from bots.runtime import database_location
    from core.admin.feedback import feedback_text
    from core.store import make_store

    store = make_store(database_location(inv.cfg, inv.env))
    await store.open()
    try:
        print(await feedback_text(store, period=inv.args.period, as_json=inv.args.json))
    finally:
        await store.close()
    return EXIT_OK
