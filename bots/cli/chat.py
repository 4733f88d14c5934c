"""`teambridge chat`: the console platform in this terminal."""
from __future__ import annotations

import argparse
import sys

from bots.cli.base import EXIT_CONFIG, EXIT_OK, Invocation


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("chat", parents=[common], help="talk to an assistant in this terminal")
    parser.add_argument("--assistant", help="assistant to talk to")
    parser.add_argument("--user", default=None, help="user id (default: your login name)")
    # INFO lines would interleave with the conversation on the terminal.
    parser.set_defaults(handler=_chat, log_level="WARNING")


async def _chat(inv: Invocation) -> int:
    from bots.console.chat import login_name
    from bots.runner import console_session
    from bots.runtime import open_runtime

    config = inv.cfg
    assistant = inv.args.assistant or config.console.assistant
    if assistant and assistant not in config.assistants:
        print(f"teambridge: no assistant called “{assistant}” (have: {', '.join(config.assistants)})", file=sys.stderr)
        return EXIT_CONFIG
    runtime = await open_runtime(config, inv.env)
    try:
        await console_session(runtime, inv.config_path, user=inv.args.user or login_name(), assistant=assistant)
    finally:
        await runtime.aclose()
    return EXIT_OK
