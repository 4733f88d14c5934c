"""`teambridge files list|delete`: the files teambridge uploaded to OpenAI."""
from __future__ import annotations

import argparse
import sys

from bots.cli.base import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, Invocation


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("files", parents=[common], help="files teambridge uploaded to OpenAI",
                            description="Files teambridge uploaded to OpenAI (attachments, knowledge files): list "
                                        "them, delete them, or prune the ones nothing uses.")
    actions = parser.add_subparsers(dest="action", required=True, metavar="{list,delete,prune}")
    listing = actions.add_parser("list", parents=[common], help="every file teambridge uploaded, with what uses it")
    listing.add_argument("--remote", action="store_true",
                         help="ask OpenAI: files (by purpose) and vector stores (by metadata) that teambridge "
                              "created, and what uses each")
    prune = actions.add_parser("prune", parents=[common], help="delete the uploaded files nothing uses",
                               description="Delete files teambridge uploaded that no assistant's knowledge and no "
                                           "stored conversation uses. Without --yes, only lists them (dry run).")
    prune.add_argument("--yes", action="store_true", help="delete them (default: a dry run that only lists them)")
    delete = actions.add_parser("delete", parents=[common], help="delete uploaded files")
    delete.add_argument("ids", nargs="*", help="file ids to delete")
    delete.add_argument("--all", action="store_true", help="delete every file teambridge uploaded")
    parser.set_defaults(handler=_files)


async def _files(inv: Invocation) -> int:
    from bots.runtime import open_runtime
    from bots.cli.progress import Progress
    from core.admin import housekeeping, prune

    args = inv.args
    if args.action == "delete" and not args.ids and not args.all:
        print("teambridge files delete: name file ids, or --all", file=sys.stderr)
        return EXIT_CONFIG
    runtime = await open_runtime(inv.cfg, inv.env)
    try:
        if runtime.file_backend is None:
            print("No backend of type openai in this config: teambridge uploads no files anywhere.")
        elif args.action == "list" and args.remote:
            progress = Progress()
            listing = prune.remote_text(await prune.inventory(inv.cfg, runtime.store, runtime.file_backend, progress))
            progress.done()
            print(listing)
        elif args.action == "list":
            print(await housekeeping.files_list(runtime.file_backend, runtime.store))
        elif args.action == "prune":
            progress = Progress()
            text, failed = await prune.prune_files(inv.cfg, runtime.store, runtime.file_backend, apply=args.yes,
                                                   progress=progress)
            progress.done()
            print(text)
            return EXIT_FAILED if failed else EXIT_OK
        else:
            print(await housekeeping.files_delete(runtime.file_backend, runtime.store,
                                                  "--all" if args.all else args.ids, config=inv.cfg))
    finally:
        await runtime.aclose()
    return EXIT_OK
