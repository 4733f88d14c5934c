"""`python -m bench`: end-to-end benchmark of `teambridge run` against the local stand-ins.

    python -m bench                          # every platform at 1, 50, 200 and 1,000 simultaneous mentions
    python -m bench --quick                  # under a minute: 1 and 10 mentions, each platform
    python -m bench --platform discord --sizes 1,50
    python -m bench --store                  # also: RSS with 10,000 conversations already stored
    python -m bench --paced                  # Slack 50 at once, answers paced over 6 s and 20 s, 3 bursts

Prints a markdown table and writes bench/results/<date>-<time>.json.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform as py_platform
import sys
from pathlib import Path
from typing import Any

from bench.harness import PLATFORMS, Scenario, run_scenario
from bench.report import markdown_table, paced_table, store_line
from bench.standins import AnswerShape

RESULTS = Path(__file__).resolve().parent / "results"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--platform", action="append", choices=["slack", "discord", *PLATFORMS],
                   help="slack (= slack-native and slack-edit), slack-native, slack-edit or discord; repeatable")
    p.add_argument("--sizes", help="simultaneous conversations, comma separated (default 1,50,200,1000)")
    p.add_argument("--quick", action="store_true", help="sizes 1,10 on every platform: under a minute")
    p.add_argument("--slack-minute", type=float, default=None,
                   help="seconds in Slack's rate minute, for the stand-in and the bot alike (default 60; "
                        "sizes above 50 default to 6 so that Tier 2 methods don't take hours)")
    p.add_argument("--one-user", action="store_true", help="every mention from the same person")
    p.add_argument("--store", action="store_true", help="also measure RSS growth per 10,000 stored conversations")
    p.add_argument("--paced", action="store_true",
                   help="Slack (native streams) with 50 mentions at once, answers of 1,200 characters paced like a "
                        "model over 6 s and over 20 s, 3 bursts in one bot run, Slack's real minute: last visible "
                        "p50/p95/max after the model's last word, calls per answer by method, 429s")
    p.add_argument("--bursts", type=int, default=1,
                   help="send the N mentions this many times in one bot run (RSS after each: leak or high-water?)")
    p.add_argument("--chars", type=int, default=1200)
    p.add_argument("--delta", type=int, default=20, help="characters per delta")
    p.add_argument("--interval", type=float, default=0.025, help="seconds between deltas")
    p.add_argument("--first-delay", type=float, default=0.2, help="seconds before the first delta")
    p.add_argument("--profile", help="directory: py-spy collapsed stacks of the bot per scenario (pip install py-spy)")
    p.add_argument("--bot-cpu", type=int, default=None,
                   help="pin the bot process to this CPU (less noise on a shared machine)")
    p.add_argument("--model-process", action="store_true",
                   help="the stand-in model in a process of its own (bench.model_process), not in the bench's "
                        "event loop")
    p.add_argument("--out", help="JSON path (default bench/results/<timestamp>.json)")
    return p


def _platforms(chosen: list[str] | None) -> list[str]:
    out: list[str] = []
    for name in chosen or ["slack", "discord"]:
        for p in (["slack-native", "slack-edit"] if name == "slack" else [name]):
            if p not in out:
                out.append(p)
    return out


def _progress(sc: Scenario, done: int) -> None:
    if sc.size >= 50 and done % max(1, sc.size // 5) == 0:
        print(f"  … {sc.platform} x{sc.size}: {done} answers complete", file=sys.stderr, flush=True)


async def _paced(args: argparse.Namespace) -> int:
    """Issue 18's row: do long answers stall when many stream at once?"""
    results: list[dict[str, Any]] = []
    started = dt.datetime.now()
    bursts = args.bursts if args.bursts > 1 else 3
    for seconds in (6.0, 20.0):
        shape = AnswerShape(chars=1200, delta_chars=20, interval=seconds / 60, first_delay=args.first_delay)
        sc = Scenario(platform="slack-native", size=50, shape=shape, distinct_users=not args.one_user,
                      bursts=bursts, slack_minute=args.slack_minute or 60.0)
        print(f"running slack-native x50, answers over {seconds:g} s, {bursts} bursts…", file=sys.stderr, flush=True)
        try:
            result = await run_scenario(sc, progress=_progress)
        except Exception as exc:
            result = {"platform": "slack-native", "size": 50, "error": repr(exc)}
        result["model_seconds"] = seconds
        results.append(result)
    out = Path(args.out) if args.out else RESULTS / f"{started:%Y%m%d-%H%M%S}-paced.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": started.isoformat(timespec="seconds"), "machine": _machine(),
                               "commit": _commit(), "results": results}, indent=2))
    print(paced_table(results))
    print(f"\nJSON: {out}", file=sys.stderr)
    return 0


async def _main(args: argparse.Namespace) -> int:
    if args.paced:
        return await _paced(args)
    sizes = [1, 10] if args.quick else [int(s) for s in (args.sizes or "1,50,200,1000").split(",") if s.strip()]
    shape = AnswerShape(chars=args.chars, delta_chars=args.delta, interval=args.interval,
                        first_delay=args.first_delay)
    results: list[dict[str, Any]] = []
    started = dt.datetime.now()
    for platform in _platforms(args.platform):
        for size in sizes:
            minute = args.slack_minute if args.slack_minute is not None else (60.0 if size <= 50 else 6.0)
            sc = Scenario(platform=platform, size=size, shape=shape, distinct_users=not args.one_user,
                          bursts=args.bursts, bot_cpu=args.bot_cpu, model_process=args.model_process,
                          slack_minute=minute if platform.startswith("slack") else 60.0,
                          profile=(str(Path(args.profile) / f"{platform}-{size}.txt") if args.profile else None))
            if args.profile:
                Path(args.profile).mkdir(parents=True, exist_ok=True)
            print(f"running {platform} x{size}…", file=sys.stderr, flush=True)
            try:
                results.append(await run_scenario(sc, progress=_progress))
            except Exception as exc:  # one broken scenario must not hide the others' numbers
                print(f"  {platform} x{size} failed: {exc!r}", file=sys.stderr, flush=True)
                results.append({"platform": platform, "size": size, "error": repr(exc)})
    store: list[dict[str, Any]] = []
    if args.store:
        for platform in _platforms(args.platform)[:1]:
            for prefill in (0, 10_000):
                print(f"running {platform} x20 with {prefill} stored conversations…", file=sys.stderr, flush=True)
                sc = Scenario(platform=platform, size=20, shape=shape, prefill=prefill,
                              distinct_users=not args.one_user)
                store.append(await run_scenario(sc))
    report = {
        "date": started.isoformat(timespec="seconds"),
        "machine": _machine(),
        "commit": _commit(),
        "answer": {"chars": shape.chars, "delta_chars": shape.delta_chars, "interval_s": shape.interval,
                   "first_delay_s": shape.first_delay},
        "results": results,
        "store": store,
    }
    out = Path(args.out) if args.out else RESULTS / f"{started:%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(markdown_table(results))
    if store:
        print()
        print(store_line(store))
    print(f"\nJSON: {out}", file=sys.stderr)
    return 0


def _machine() -> str:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores {cpu}, Python {py_platform.python_version()}, {py_platform.system()}"


def _commit() -> str:
    import subprocess
    try:
        repo = Path(__file__).resolve().parent.parent
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True).stdout
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "core", "bots"], cwd=repo, capture_output=True,
                               text=True).stdout
        return rev.strip() + (" + uncommitted changes in core/ or bots/" if dirty.strip() else "")
    except OSError:
        return ""


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(_main(_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
