"""`teambridge knowledge sync|status`: the vector stores of the file_search assistants."""
from __future__ import annotations

import argparse

from bots.cli.base import EXIT_FAILED, EXIT_OK, Invocation


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("knowledge", parents=[common], help="vector stores of the file_search assistants")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("sync", parents=[common], help="upload new and changed knowledge files now")
    actions.add_parser("status", parents=[common], help="what each assistant's vector store holds")
    parser.set_defaults(handler=_knowledge)


async def _knowledge(inv: Invocation) -> int:
    from bots.runtime import open_runtime
    from core.admin import housekeeping

    runtime = await open_runtime(inv.cfg, inv.env)
    failed = False
    try:
        if runtime.file_backend is None:
            print("No backend of type openai in this config: there are no knowledge vector stores.")
        elif inv.args.action == "sync":
            for report in await runtime.knowledge.sync(inv.cfg):
                print("\n".join(report.lines()))
                failed = failed or not report.ok
        else:
            print(await housekeeping.knowledge_status(inv.cfg, runtime.store, runtime.file_backend))
    finally:
        await runtime.aclose()
    return EXIT_FAILED if failed else EXIT_OK
