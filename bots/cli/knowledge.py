"""`teambridge knowledge sync|status|prune`: the vector stores of the file_search assistants."""
from __future__ import annotations

import argparse

from bots.cli.base import EXIT_FAILED, EXIT_OK, Invocation


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("knowledge", parents=[common], help="vector stores of the file_search assistants")
    actions = parser.add_subparsers(dest="action", required=True, metavar="{sync,status,prune}")
    actions.add_parser("sync", parents=[common], help="upload new and changed knowledge files now")
    actions.add_parser("status", parents=[common], help="what each assistant's vector store holds")
    prune = actions.add_parser("prune", parents=[common], help="delete the vector stores nothing uses",
                               description="Delete vector stores teambridge created (found by their metadata at "
                                           "OpenAI) that no assistant's knowledge and no stored conversation uses. "
                                           "Without --yes, only lists them (dry run).")
    prune.add_argument("--yes", action="store_true", help="delete them (default: a dry run that only lists them)")
    parser.set_defaults(handler=_knowledge)


async def _knowledge(inv: Invocation) -> int:
    from bots.runtime import open_runtime
    from bots.cli.progress import Progress
    from core.admin import housekeeping, prune

    runtime = await open_runtime(inv.cfg, inv.env)
    failed = False
    try:
        if runtime.file_backend is None:
            print("No backend of type openai in this config: there are no knowledge vector stores.")
        elif inv.args.action == "prune":
            progress = Progress()
            text, failures = await prune.prune_knowledge(inv.cfg, runtime.store, runtime.file_backend,
                                                         apply=inv.args.yes, progress=progress)
            progress.done()
            print(text)
            failed = bool(failures)
        elif inv.args.action == "sync":
            progress = Progress()
            reports = await runtime.knowledge.sync(inv.cfg, progress=progress)
            progress.done()
            for report in reports:
                print("\n".join(report.lines()))
                failed = failed or not report.ok
        else:
            print(await housekeeping.knowledge_status(inv.cfg, runtime.store, runtime.file_backend))
    finally:
        await runtime.aclose()
    return EXIT_FAILED if failed else EXIT_OK
