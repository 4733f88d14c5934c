"""The `teambridge` command line: parses the arguments, loads the config, runs one command group's handler.

The command groups live in bots/cli/ (one module each); the composition root that builds core's service from a
config is bots/runtime.py, and bots/runner.py starts the platforms.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
from importlib import metadata
from pathlib import Path

import openai
from dotenv import load_dotenv

from bots.cli import (audit, chat, check, conversations, feedback, files, init, knowledge, mcp, migrate, run,
                      usage)
from bots.logs import LogSettingError, setup_logging
from bots.cli.base import EXIT_CONFIG, Invocation
from core.config.load import load_config
from core.errors import BackendError, ConfigError

COMMAND_GROUPS = (init, check, chat, run, usage, feedback, files, knowledge, migrate, conversations, mcp, audit)


def main(argv: list[str] | None = None) -> int:
    load_dotenv(Path.cwd() / ".env", override=False)  # real environment variables win
    args = parser().parse_args(argv)
    env = dict(os.environ)
    try:
        setup_logging(env, default_level=args.log_level)
    except LogSettingError as err:
        print(f"teambridge: {err}", file=sys.stderr)
        return EXIT_CONFIG
    config_path = Path(getattr(args, "config", None) or env.get("TEAMBRIDGE_CONFIG") or "config.yaml")
    if args.needs_config and not config_path.exists():
        print(f"teambridge: no config at {config_path}: point at one with --config PATH or TEAMBRIDGE_CONFIG=PATH, "
              "or write an example here with `teambridge init`", file=sys.stderr)
        return EXIT_CONFIG
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
    except openai.APIError as err:  # e.g. the start-up knowledge sync: one line, not a traceback
        print(f"teambridge: {_openai_problem(err)}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


class _Parser(argparse.ArgumentParser):
    """A bad argument is one line (no usage block) and exit 2; `--help` shows the rest."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_CONFIG, f"{self.prog}: {message} (see {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="teambridge", description="AI assistants from config.yaml in Slack, Discord and the console. "
                  "Environment: OPENAI_API_KEY, SLACK_*, DISCORD_BOT_TOKEN, TEAMBRIDGE_CONFIG, TEAMBRIDGE_DB, "
                  "TEAMBRIDGE_LOG_LEVEL, TEAMBRIDGE_LOG_FORMAT (read from .env too).")
    top.add_argument("--version", action="version", version=f"teambridge {_version()}",
                     help="print the version and exit")
    top.set_defaults(needs_config=True, log_level="INFO")
    common = _Parser(add_help=False)
    common.add_argument("--config", help="config file (default: $TEAMBRIDGE_CONFIG or config.yaml)")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(sub, common)
    _describe(top)
    return top


def _describe(parser: argparse.ArgumentParser) -> None:
    """A subcommand registered with only a one-line help gets it as its description too (shown by --help)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                sub.description = sub.description or (helps.get(name) or "").capitalize() or None
                _describe(sub)


def _version() -> str:
    try:
        return metadata.version("teambridge")
    except metadata.PackageNotFoundError:  # run from a source tree without installing
        return "0+unknown"


def _openai_problem(err: openai.APIError) -> str:
    if isinstance(err, openai.AuthenticationError):
        return "OpenAI rejected OPENAI_API_KEY (401): check the key in the environment or .env"
    if isinstance(err, openai.APIConnectionError):
        return f"could not reach OpenAI ({err.request.url.host if err.request else 'no request'}): {err.message}"
    status = getattr(err, "status_code", None)
    return f"OpenAI answered {status}: {err.message}" if status else f"OpenAI error: {err.message}"


if __name__ == "__main__":
    sys.exit(main())
