"""The `teambridge` command line: check, chat, run, usage, files, knowledge."""
from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Mapping

from dotenv import load_dotenv

from core.config.schema import Config, ConfigError, check_summary, load_config
from core.model import BackendError

log = logging.getLogger("teambridge")

EXIT_CONFIG = 2


def main(argv: list[str] | None = None) -> int:
    load_dotenv(Path.cwd() / ".env", override=False)  # real environment variables win
    args = _parser().parse_args(argv)
    logging.basicConfig(level=os.environ.get("TEAMBRIDGE_LOG_LEVEL", "WARNING" if args.command == "chat" else "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    config_path = Path(args.config or os.environ.get("TEAMBRIDGE_CONFIG") or "config.yaml")
    try:
        config = load_config(config_path)
    except ConfigError as err:
        for line in err.errors:
            print(line, file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "check":
        for line in check_summary(config):
            print(line)
        return 0
    try:
        return asyncio.run(_COMMANDS[args.command](config, config_path, args, dict(os.environ)))
    except BackendError as err:
        print(f"teambridge: {err.message}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="teambridge", description="AI assistants from config.yaml in Slack, "
                                     "Discord and the console.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="config file (default: $TEAMBRIDGE_CONFIG or config.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", parents=[common], help="validate the config")
    chat = sub.add_parser("chat", parents=[common], help="talk to an assistant in this terminal")
    chat.add_argument("--assistant", help="assistant to talk to")
    chat.add_argument("--user", default=None, help="user id (default: your login name)")
    sub.add_parser("run", parents=[common], help="run every configured platform until stopped")
    usage = sub.add_parser("usage", parents=[common], help="tokens and cost by user, channel, assistant or day")
    usage.add_argument("--by", default="assistant", choices=["user", "channel", "assistant", "day", "model"])
    usage.add_argument("--period", default="30d", help="e.g. 24h, 7d, 30d or 2026-11-01..2026-11-25")
    usage.add_argument("--json", action="store_true", help="print JSON instead of a table")
    files = sub.add_parser("files", parents=[common], help="files teambridge uploaded to OpenAI")
    files_sub = files.add_subparsers(dest="action", required=True)
    files_sub.add_parser("list", parents=[common])
    delete = files_sub.add_parser("delete", parents=[common])
    delete.add_argument("ids", nargs="*", help="file ids to delete")
    delete.add_argument("--all", action="store_true", help="delete every file teambridge uploaded")
    knowledge = sub.add_parser("knowledge", parents=[common], help="vector stores of the file_search assistants")
    knowledge_sub = knowledge.add_subparsers(dest="action", required=True)
    knowledge_sub.add_parser("sync", parents=[common])
    knowledge_sub.add_parser("status", parents=[common])
    return parser


async def _chat(config: Config, config_path: Path, args, env: Mapping[str, str]) -> int:
    from bots.console.chat import ConsoleChat, stdin_lines
    from bots.runner import reloading
    from bots.runtime import open_runtime

    assistant = args.assistant or config.console.assistant
    if assistant and assistant not in config.assistants:
        print(f"teambridge: no assistant called “{assistant}” (have: {', '.join(config.assistants)})", file=sys.stderr)
        return EXIT_CONFIG
    runtime = await open_runtime(config, env)
    try:
        await _sync_knowledge(runtime)
        chat = ConsoleChat(runtime.service, user=args.user or _login_name(), assistant=assistant, out=sys.stdout,
                           files_dir=Path.cwd() / "teambridge-files")
        async with reloading(config_path, runtime):   # config.yaml edits apply to the next message
            await chat.run(stdin_lines())
    finally:
        await runtime.aclose()
    return 0


async def _run(config: Config, config_path: Path, args, env: Mapping[str, str]) -> int:
    from bots.runner import run_platforms
    return await run_platforms(config, config_path, env)


async def _sync_knowledge(runtime) -> None:
    for report in await runtime.knowledge.sync(runtime.config):
        for line in report.lines():
            log.info("%s", line)
        if getattr(report, "failed", None):
            for line in report.lines():
                print(line, file=sys.stderr)


async def _usage(config: Config, config_path: Path, args, env: Mapping[str, str]) -> int:
    from bots.runtime import database_location, env_value, open_runtime, vector_storage_or_none
    from core.store import make_store
    from core.admin.usage import usage_text

    words = ["--by", args.by, args.period] + (["--json"] if args.json else [])
    if not env_value(env, "OPENAI_API_KEY"):  # tokens come from our database; storage sizes need OpenAI
        store = make_store(database_location(config, env))
        await store.open()
        try:
            print(await usage_text(store, config.prices, words))
        finally:
            await store.close()
        return 0
    runtime = await open_runtime(config, env)
    try:
        print(await usage_text(runtime.store, config.prices, words,
                               storage=await vector_storage_or_none(config, runtime.store,
                                                                    runtime.file_backend)))
    finally:
        await runtime.aclose()
    return 0


async def _files(config: Config, config_path: Path, args, env: Mapping[str, str]) -> int:
    from bots.runtime import open_runtime
    from core import housekeeping

    runtime = await open_runtime(config, env)
    try:
        if args.action == "list":
            print(await housekeeping.files_list(runtime.file_backend, runtime.store))
        else:
            if not args.ids and not args.all:
                print("teambridge files delete: name file ids, or --all", file=sys.stderr)
                return EXIT_CONFIG
            print(await housekeeping.files_delete(runtime.file_backend, runtime.store, "--all" if args.all else args.ids,
                                                     config=config))
    finally:
        await runtime.aclose()
    return 0


async def _knowledge(config: Config, config_path: Path, args, env: Mapping[str, str]) -> int:
    from bots.runtime import open_runtime
    from core import housekeeping

    runtime = await open_runtime(config, env)
    failed = False
    try:
        if args.action == "sync":
            for report in await runtime.knowledge.sync(config):
                print("\n".join(report.lines()))
                failed = failed or bool(getattr(report, "failed", None))
        else:
            print(await housekeeping.knowledge_status(config, runtime.store, runtime.file_backend))
    finally:
        await runtime.aclose()
    return 1 if failed else 0


def _login_name() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "console-user"


_COMMANDS = {"chat": _chat, "run": _run, "usage": _usage, "files": _files, "knowledge": _knowledge}

if __name__ == "__main__":
    sys.exit(main())
