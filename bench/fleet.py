"""`python -m bench.fleet`: one `teambridge run` on SQLite vs one and three on one PostgreSQL database.

    python -m bench.fleet                      # sizes 50 and 200, three runs of each row (medians reported)
    python -m bench.fleet --sizes 50 --runs 1

Slack with native streams (the stand-in enforces the method tiers; Slack's real minute at 50, 6 s above, as in
`python -m bench`), every mention in its own channel from its own person, Socket Mode envelopes spread
round-robin over the processes' connections (a mention's app_mention and message envelopes usually land on two
different processes: the database claim decides). Rows: `sqlite × 1` (the baseline), `postgres × 1`,
`postgres × 3`. Event→model is measured as in `python -m bench`; CPU is the sum over every bot process (not the
database server's), per 100 answers. One warm-up answer per process is not counted. Prints a markdown table with
each row's median of the runs and its ratio to the SQLite row, and writes bench/results/<time>-fleet.json.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import BotProcess, Scenario, _metrics, bot_env, proc_cpu, proc_mem, write_config
from bench.standins import AnswerShape, BenchOpenAI, BenchSlack, Ledger, now
from bots.standins.postgres import PostgresServer, bin_dir   # a throwaway server, as the tests use

RESULTS = Path(__file__).resolve().parent / "results"
SETUPS = (("sqlite", 1), ("postgres", 1), ("postgres", 3))


@dataclass(frozen=True, slots=True)
class Fleet:
    store: str          # "sqlite" | "postgres"
    processes: int

    @property
    def name(self) -> str:
        return f"{self.store} × {self.processes}"


async def _send_spread(slack: BenchSlack, frame: str, turn: int) -> None:
    """Slack spreads an app's envelopes over its open Socket Mode connections: round-robin here."""
    open_ = [ws for ws in slack._sockets if not ws.closed]
    await open_[turn % len(open_)].send_str(frame)


async def run_fleet(sc: Scenario, fleet: Fleet, wd: Path, postgres_url: str | None) -> dict[str, Any]:
    ledger = Ledger()
    shape = sc.shape
    tags = [f"q{i:05d}" for i in range(sc.size)]
    users = {f"U{i:05d}": f"user{i}" for i in range(sc.size)}
    turn = itertools.count()
    async with BenchOpenAI(ledger, shape) as openai:
        slack = BenchSlack(ledger, rate_minute=sc.slack_minute, retry_after=1, users=users)
        await slack.start()
        channels = [f"C{i:07d}" for i in range(sc.size + fleet.processes)]
        warm_channels = channels[sc.size:]
        for tag, ch in zip(tags, channels):
            ledger.add(tag, shape.text_for(tag), ch)
        bots: list[BotProcess] = []
        try:
            for i in range(fleet.processes):
                home = wd / f"p{i}"
                home.mkdir(parents=True, exist_ok=True)
                db = home / "bench.db"
                config = home / "bench.yaml"
                write_config(config, sc, db)
                env = bot_env(sc, openai=openai, slack=slack, discord=None, db=db)
                if fleet.store == "postgres":
                    assert postgres_url is not None
                    env.update(TEAMBRIDGE_DB=postgres_url, TEAMBRIDGE_INSTANCE=f"bench-p{i}")
                bot = BotProcess(home, config, env)
                bots.append(bot)
                await bot.start()
            await slack.wait_connected(timeout=30, count=fleet.processes)
            await asyncio.sleep(0.5)
            for i, channel in enumerate(warm_channels):   # one per process: each pays for its lazy imports
                warm = ledger.add(f"w{i:04d}", shape.text_for(f"w{i:04d}"), channel)
                for frame in slack.mention_envelopes(channel, f"<@{slack.bot_user_id}> w{i:04d} warm up",
                                                     user="U00000"):
                    await _send_spread(slack, frame, i)
                deadline = now() + 60
                while warm.complete_visible is None and now() < deadline:
                    await asyncio.sleep(0.05)
                del ledger.by_tag[f"w{i:04d}"]
            pids = [b.pid for b in bots]
            cpu0 = sum(proc_cpu(p) for p in pids)
            mem0 = proc_mem(pids[0])
            wall0 = now()
            frames = [slack.mention_envelopes(ch, f"<@{slack.bot_user_id}> {tag} how is the bridge?",
                                              user=f"U{i:05d}") for i, (tag, ch) in enumerate(zip(tags, channels))]
            for tag, (mention, _) in zip(tags, frames):
                await _send_spread(slack, mention, next(turn))
                ledger.by_tag[tag].event_sent = now()
            for _, message in frames:
                await _send_spread(slack, message, next(turn))
            last_done, last_change = ledger.done(), now()
            while ledger.done() < sc.size:
                if ledger.done() != last_done:
                    last_done, last_change = ledger.done(), now()
                if now() - last_change > sc.stall_timeout or any(b.proc.returncode is not None for b in bots):
                    break
                ledger.changed.clear()
                try:
                    await asyncio.wait_for(ledger.changed.wait(), 0.5)
                except asyncio.TimeoutError:
                    pass
            wall = now() - wall0
            cpu = sum(proc_cpu(p) for p in pids) - cpu0
            await asyncio.sleep(1.0)
            mem1 = proc_mem(pids[0])
        finally:
            errors = []
            for bot in bots:
                await bot.stop()
                errors += bot.error_lines()[-5:]
            await slack.close()
    result = {"setup": fleet.name, "platform": sc.platform, "size": sc.size, "slack_minute": sc.slack_minute,
              "bot_log_errors": errors, "platform_429s_total": len(slack.rate_limited)}
    result.update(_metrics(ledger, sc, rtt=0.0, cpu=cpu, wall=wall, bench_cpu=0.0, mem0=mem0, mem1=mem1))
    return result


def _median(rows: list[dict[str, Any]], get) -> float | None:
    values = [v for v in (get(r) for r in rows) if v is not None]
    return round(statistics.median(values), 3) if values else None


def table(results: list[dict[str, Any]]) -> str:
    head = ("| setup | N | runs | event→model ms p50 / p95 (median) | CPU s per 100 answers (median) | "
            "e→m p50 ÷ SQLite × 1 | CPU ÷ SQLite × 1 | 429s | answers lost |")
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for size in sorted({r["size"] for r in results}):
        rows = {name: [r for r in results if r["size"] == size and r["setup"] == name and "error" not in r]
                for name in (Fleet(s, p).name for s, p in SETUPS)}
        base = rows[Fleet("sqlite", 1).name]
        base_e2m = _median(base, lambda r: r["event_to_model_ms"]["p50"])
        base_cpu = _median(base, lambda r: r["cpu_s_per_100"])
        for name, runs in rows.items():
            if not runs:
                lines.append(f"| {name} | {size} | 0 | failed | | | | | |")
                continue
            e2m = _median(runs, lambda r: r["event_to_model_ms"]["p50"])
            e2m95 = _median(runs, lambda r: r["event_to_model_ms"]["p95"])
            cpu = _median(runs, lambda r: r["cpu_s_per_100"])
            ratio_e2m = f"{e2m / base_e2m:.2f}×" if e2m and base_e2m else "–"
            ratio_cpu = f"{cpu / base_cpu:.2f}×" if cpu and base_cpu else "–"
            lost = sum(r["answers_lost"] for r in runs)
            r429 = sum(r["platform_429s_total"] for r in runs)
            lines.append(f"| {name} | {size} | {len(runs)} | {e2m} / {e2m95} | {cpu} | {ratio_e2m} | {ratio_cpu} "
                         f"| {r429} | {lost} |")
    return "\n".join(lines)


async def _main(args: argparse.Namespace) -> int:

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    shape = AnswerShape(chars=args.chars, delta_chars=20, interval=0.025, first_delay=0.2)
    binaries = bin_dir()
    if binaries is None:
        print("no PostgreSQL server binaries (apt-get install postgresql)", file=sys.stderr)
        return 2
    server = PostgresServer(binaries)
    server.start()
    results: list[dict[str, Any]] = []
    started = dt.datetime.now()
    out = Path(args.out) if args.out else RESULTS / f"{started:%Y%m%d-%H%M%S}-fleet.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        for size in sizes:
            minute = 60.0 if size <= 50 else 6.0
            sc = Scenario(platform="slack-native", size=size, shape=shape, slack_minute=minute)
            for run in range(args.runs):   # interleaved, so that the machine's load drifts over every row alike
                for store, processes in SETUPS:
                    fleet = Fleet(store, processes)
                    print(f"run {run + 1}/{args.runs}: {fleet.name} x{size}…", file=sys.stderr, flush=True)
                    url = server.new_database() if store == "postgres" else None
                    with tempfile.TemporaryDirectory(prefix="tb-fleet-") as wd:
                        try:
                            results.append(await run_fleet(sc, fleet, Path(wd), url))
                        except Exception as exc:
                            print(f"  failed: {exc!r}", file=sys.stderr, flush=True)
                            results.append({"setup": fleet.name, "size": size, "error": repr(exc)})
                    # after every row: a long run that is stopped still leaves what it measured
                    out.write_text(json.dumps({"date": started.isoformat(timespec="seconds"), "results": results},
                                              indent=2))
            print(table(results), flush=True)
    finally:
        server.stop()
    print(table(results))
    print(f"\nJSON: {out}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="50,200", help="simultaneous mentions, comma separated (default 50,200)")
    p.add_argument("--runs", type=int, default=3, help="runs of every row; the table shows the medians")
    p.add_argument("--chars", type=int, default=1200)
    p.add_argument("--out", help="JSON path (default bench/results/<timestamp>-fleet.json)")
    return asyncio.run(_main(p.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
