"""`teambridge conversations list|show|delete`: what the bot keeps per conversation, for admins."""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone

from bots.cli.base import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, Invocation


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("conversations", parents=[common], help="list, read and delete conversations")
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", parents=[common], help="one row per conversation")
    listing.add_argument("--user", help="only this user id")
    listing.add_argument("--channel", help="only this channel id")
    listing.add_argument("--assistant", help="only this assistant")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    show = actions.add_parser("show", parents=[common], help="a conversation's messages, oldest first")
    show.add_argument("id", help="the conversation's id at the backend")
    show.add_argument("--json", action="store_true", help="print JSON instead of text")
    delete = actions.add_parser("delete", parents=[common], help="delete conversations at the backend and here")
    delete.add_argument("ids", nargs="*", help="conversation ids")
    delete.add_argument("--user", help="every conversation of this user id")
    delete.add_argument("--yes", action="store_true", help="do not ask (needed when not on a terminal)")
    delete.add_argument("--forget-user", action="store_true",
                        help="also replace the user's id in the usage rows with a one-way digest")
    parser.set_defaults(handler=_conversations)


async def _conversations(inv: Invocation) -> int:
    from bots.runtime import open_runtime

    args = inv.args
    if args.action == "delete" and not args.ids and not args.user:
        print("teambridge conversations delete: name conversation ids, or --user ID", file=sys.stderr)
        return EXIT_CONFIG
    if args.action == "delete" and args.forget_user and not args.user:
        print("teambridge conversations delete: --forget-user needs --user ID", file=sys.stderr)
        return EXIT_CONFIG
    runtime = await open_runtime(inv.cfg, inv.env)
    try:
        assert runtime.conversations is not None
        admin = runtime.conversations()
        match args.action:
            case "list":
                rows = await admin.list(user=args.user, channel=args.channel, assistant=args.assistant)
                print(json.dumps([_row_json(r) for r in rows], indent=1) if args.json else _table(rows))
                return EXIT_OK
            case "show":
                row = await admin.find(args.id)
                if row is None:
                    print(f"teambridge: no conversation {args.id!r} (see `teambridge conversations list`)",
                          file=sys.stderr)
                    return EXIT_FAILED
                items = await admin.items(row)
                if args.json:
                    print(json.dumps({**_row_json(row), "items": [{"role": i.role, "text": i.text} for i in items]},
                                     indent=1, ensure_ascii=False))
                else:
                    print(f"{row.id} — {row.assistant}, {row.platform} {row.channel}, {row.user_name or row.user_id}")
                    for item in items:
                        print(f"[{item.role}] {item.text}")
                return EXIT_OK
            case _:
                rows = await admin.list(user=args.user) if args.user else []
                unknown = []
                for cid in args.ids:
                    row = await admin.find(cid)
                    if row is None:
                        unknown.append(cid)
                    elif row not in rows:
                        rows.append(row)
                for cid in unknown:
                    print(f"teambridge: no conversation {cid!r}", file=sys.stderr)
                if not rows and not args.forget_user:
                    print("Nothing to delete.")
                    return EXIT_FAILED if unknown else EXIT_OK
                if not args.yes:
                    if not sys.stdin.isatty():
                        print(f"teambridge: this would delete {len(rows)} conversation(s); add --yes to do it "
                              "(asked only on a terminal)", file=sys.stderr)
                        return EXIT_CONFIG
                    answer = input(f"Delete {len(rows)} conversation(s) at the backend and here? [y/N] ")
                    if answer.strip().lower() not in ("y", "yes"):
                        print("Nothing deleted.")
                        return EXIT_FAILED
                report = await admin.delete(rows, forget_user=args.user if args.forget_user else None)
                print("\n".join(report.lines()))
                return EXIT_FAILED if unknown else EXIT_OK
    finally:
        await runtime.aclose()


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M")


def _row_json(row) -> dict:
    return {"id": row.id, "assistant": row.assistant, "platform": row.platform, "channel": row.channel,
            "user_id": row.user_id, "user_name": row.user_name, "created": _when(row.created),
            "last_used": _when(row.last_used),
            # the id names a thread's stored first answer: its conversation is not made yet (docs/backends.md)
            **({"pending": True} if row.pending else {})}


def _table(rows) -> str:
    if not rows:
        return "No conversations."
    head = ("id", "assistant", "platform", "channel", "user id", "user name", "created (UTC)", "last used (UTC)")
    body = [(r.id, r.assistant, r.platform, r.channel, r.user_id, r.user_name, _when(r.created), _when(r.last_used))
            for r in rows]
    widths = [max(len(str(line[i])) for line in (head, *body)) for i in range(len(head))]
    return "\n".join(" | ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in (head, *body))
