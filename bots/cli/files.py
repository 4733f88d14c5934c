"""`teambridge files list|delete`: the files teambridge uploaded to OpenAI."""
from __future__ import annotations

import argparse
import sys

from bots.cli.base import EXIT_CONFIG, EXIT_OK, Invocation


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("files", parents=[common], help="files teambridge uploaded to OpenAI")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("list", parents=[common], help="every file teambridge uploaded, with what uses it")
    delete = actions.add_parser("delete", parents=[common], help="delete uploaded files")
    delete.add_argument("ids", nargs="*", help="file ids to delete")
    delete.add_argument("--all", action="store_true", help="delete every file teambridge uploaded")
    parser.set_defaults(handler=_files)


async def _files(inv: Invocation) -> int:
    from bots.runtime import open_runtime
    from core.admin import housekeeping

    args = inv.args
    if args.action == "delete" and not args.ids and not args.all:
        print("teambridge files delete: name file ids, or --all", file=sys.stderr)
        return EXIT_CONFIG
    runtime = await open_runtime(inv.cfg, inv.env)
    try:
        if runtime.file_backend is None:
            print("No backend of type openai in this config: teambridge uploads no files anywhere.")
        elif args.action == "list":
            print(await housekeeping.files_list(runtime.file_backend, runtime.store))
        else:
            print(await housekeeping.files_delete(runtime.file_backend, runtime.store,
                                                  "--all" if args.all else args.ids, config=inv.cfg))
    finally:
        await runtime.aclose()
    return EXIT_OK
