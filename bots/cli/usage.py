"""`teambridge usage`: tokens and cost by user, channel, assistant, day or model."""
from __future__ import annotations

import argparse

from bots.cli.base import EXIT_OK, Invocation, period


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("usage", parents=[common], help="tokens and cost by user, channel, assistant or day")
    parser.add_argument("--by", default="assistant", choices=["user", "channel", "assistant", "day", "model"],
                        help="group the rows by this (default: assistant)")
    parser.add_argument("--period", default="30d", type=period,
                        help="e.g. 24h, 7d, 30d or 2026-11-01..2026-11-25 (default: 30d)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=_usage)


async def _usage(inv: Invocation) -> int:
    from bots.runtime import database_location, env_value, open_runtime, vector_storage_or_none
    from core.admin.usage import usage_text
    from core.store import make_store

    config, args = inv.cfg, inv.args
    words = ["--by", args.by, args.period] + (["--json"] if args.json else [])
    if not env_value(inv.env, "OPENAI_API_KEY"):  # tokens come from our database; storage sizes need OpenAI
        store = make_store(database_location(config, inv.env))
        await store.open()
        try:
            print(await usage_text(store, config.prices, words))
        finally:
            await store.close()
        return EXIT_OK
    runtime = await open_runtime(config, inv.env)
    try:
        print(await usage_text(runtime.store, config.prices, words,
                               storage=await vector_storage_or_none(config, runtime.store, runtime.file_backend)))
    finally:
        await runtime.aclose()
    return EXIT_OK
