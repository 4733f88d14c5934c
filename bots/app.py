"""The `teambridge` command line: parses the arguments, loads the config, runs one command group's handler.

The command groups live in bots/cli/ (one module each); the composition root that builds core's service from a
config is bots/runtime.py, and bots/runner.py starts the platforms.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from dotenv import load_dotenv

from bots.cli import audit, chat, check, conversations, files, knowledge, mcp, migrate, run, usage
from bots.cli.base import EXIT_CONFIG, Invocation
from core.config.load import load_config
from core.errors import BackendError, ConfigError

COMMAND_GROUPS = (check, chat, run, usage, files, knowledge, migrate, conversations, mcp, audit)


def main(argv: list[str] | None = None) -> int:
    load_dotenv(Path.cwd() / ".env", override=False)  # real environment variables win
    args = parser().parse_args(argv)
    env = dict(os.environ)
    from bots.logs import LogSettingError, setup_logging
    try:
        setup_logging(env, default_level=args.log_level)
    except LogSettingError as err:
        print(f"teambridge: {err}", file=sys.stderr)
        return EXIT_CONFIG
    config_path = Path(args.config or env.get("TEAMBRIDGE_CONFIG") or "config.yaml")
    try:
        config = load_config(config_path) if args.needs_config else None
        return asyncio.run(args.handler(Invocation(args=args, env=env, config_path=config_path, config=config)))
    except ConfigError as err:
        for line in err.errors:
            print(line, file=sys.stderr)
        return EXIT_CONFIG
    except BackendError as err:
        print(f"teambridge: {err.message}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="teambridge", description="AI assistants from config.yaml in Slack, "
                                  "Discord and the console.")
    top.set_defaults(needs_config=True, log_level="INFO")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="config file (default: $TEAMBRIDGE_CONFIG or config.yaml)")
    sub = top.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.register(sub, common)
    return top


if __name__ == "__main__":
    sys.exit(main())
