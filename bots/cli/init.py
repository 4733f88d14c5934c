"""`teambridge init`: start a new folder from the shipped example (config.yaml, .env.example, a knowledge file)."""
from __future__ import annotations

import argparse
from pathlib import Path

from bots.cli.base import EXIT_OK, Invocation


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "init", help="write an example config.yaml and .env.example here",
        description="Write the example config.yaml (four assistants: food, math, weather, docs), .env.example and "
                    "the docs assistant's sample knowledge file into the current folder. Existing files are kept.")
    parser.add_argument("--force", action="store_true", help="overwrite files that exist already")
    parser.set_defaults(handler=_init, needs_config=False)


async def _init(inv: Invocation) -> int:
    from bots.init import write_examples

    written, skipped = write_examples(Path.cwd(), force=inv.args.force)
    for path in written:
        print(f"wrote {path.relative_to(Path.cwd())}")
    for path in skipped:
        print(f"{path.relative_to(Path.cwd())} exists; left as it is (--force overwrites)")
    print("Next: copy .env.example to .env and fill in OPENAI_API_KEY (and Slack/Discord tokens), "
          "then `teambridge check` and `teambridge run`.")
    return EXIT_OK
