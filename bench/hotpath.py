"""`python -m bench.hotpath`: the bot's CPU per message from the event's arrival until its request to the model
left — measured, not inferred, so that it can be compared on a loaded machine.

    python -m bench.hotpath --platform discord --size 200            # 3 measured bursts + 1 profiled
    python -m bench.hotpath --platform slack --size 50 --bursts 5 --calls 0

The real `teambridge run` (bench.hotbot: the command plus a CPU window) answers N simultaneous mentions on the
platform stand-in, against the OpenAI stand-in. For each burst the bench opens the window (SIGUSR1), sends the N
mentions, and closes it (SIGUSR2) the moment the stand-in model has received the N-th `POST /v1/responses`; the
stand-in holds every answer of the burst until then, so no streaming falls inside the window. What the window
holds is everything the bot did for those N messages before their requests left: the platform SDK's event
handling, the service, the store (the SQLite thread too), conversation creation (spares included), the request
itself — divided by N. The kernel's CPU clocks do not count time the process waited for a core, so the number is
the same on an idle and on a loaded machine (within a few per cent: caches and frequency still differ).

A profiled burst (`--calls`, SIGRTMIN) runs cProfile on the event loop's thread inside the window: Python calls
per message and the top functions. cProfile slows everything down, so its burst's CPU is shown but not used.

Prints a table and writes bench/results/hotpath-<date>-<time>.json.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import signal
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.harness import REPO, BotProcess, Scenario, _pin, bot_env, ms, write_config
from bench.standins import AnswerShape, BenchDiscord, BenchOpenAI, BenchSlack, Ledger, now
from bench.written import read as read_written

RESULTS = Path(__file__).resolve().parent / "results"
OPEN_PLAIN, OPEN_PROFILED, CLOSE = signal.SIGUSR1, signal.SIGRTMIN, signal.SIGUSR2
OPEN_STREAM, OPEN_STREAM_PROFILED = signal.SIGRTMIN + 1, signal.SIGRTMIN + 2   # (bench.hotbot: no frame timing)
SHORT = AnswerShape(chars=120, delta_chars=40, interval=0.0, first_delay=0.0)  # released answers end fast
FULL = AnswerShape()   # --stream: the answers of `python -m bench` (1,200 characters in 60 deltas over ~1.7 s)


class GatedOpenAI(BenchOpenAI):
    """The OpenAI stand-in, holding every streamed answer until the gate opens (at the end of a window)."""

    def __init__(self, ledger: Ledger, shape: AnswerShape) -> None:
        super().__init__(ledger, shape)
        self.gate = asyncio.Event()
        self.gate.set()
        self.conversations_created = 0

    async def _stream(self, request: web.Request, body: dict[str, Any], plan, conv_id) -> web.StreamResponse:
        await self.gate.wait()
        return await super()._stream(request, body, plan, conv_id)

    async def _create_conversation(self, request: web.Request) -> web.Response:
        self.conversations_created += 1
        return await super()._create_conversation(request)


def _config(path: Path, platform: str, db: Path, spares: int | None) -> None:
    write_config(path, Scenario(platform=platform, size=1), db)
    if spares is not None:
        text = path.read_text().replace("    max_retries: 0\n", f"    max_retries: 0\n    spare_conversations: {spares}\n")
        path.write_text(text)


async def _wait_file(path: Path, bot: BotProcess, timeout: float) -> dict[str, Any]:
    deadline = now() + timeout
    while now() < deadline:
        if path.exists():
            return json.loads(path.read_text())
        if bot.proc is not None and bot.proc.returncode is not None:
            break
        await asyncio.sleep(0.02)
    raise RuntimeError(f"the bot did not close its CPU window; its log:\n{bot.log_tail(40)}")


async def run(platform: str, size: int, bursts: int, calls: int, *, spares: int | None = None,
              bot_cpu: int | None = None, slack_minute: float | None = None,
              workdir: Path | None = None, uvloop: bool = False, stream: bool = False) -> dict[str, Any]:
    tmp = tempfile.TemporaryDirectory(prefix="tb-hotpath-") if workdir is None else None
    wd = Path(tmp.name) if tmp is not None else workdir
    assert wd is not None
    try:   # a profiled burst's pstats are kept in bench/results, or in the caller's workdir
        return await _run(platform, size, bursts, calls, wd, spares=spares, bot_cpu=bot_cpu,
                          slack_minute=slack_minute, uvloop=uvloop, keep=RESULTS if tmp is not None else wd,
                          stream=stream)
    finally:
        if tmp is not None:
            tmp.cleanup()


async def _run(platform: str, size: int, bursts: int, calls: int, wd: Path, *, spares: int | None,
               bot_cpu: int | None, slack_minute: float | None, uvloop: bool = False,
               keep: Path = RESULTS, stream: bool = False) -> dict[str, Any]:
    ledger = Ledger()
    shape = FULL if stream else SHORT
    total = size * (bursts + calls) + 1
    minute = slack_minute if slack_minute is not None else (60.0 if size <= 50 else 6.0)
    sc = Scenario(platform="slack-native" if platform == "slack" else platform, size=size,
                  slack_minute=minute if platform.startswith("slack") else 60.0)
    db, config, out = wd / "bench.db", wd / "bench.yaml", wd / "window.json"
    _config(config, sc.platform, db, spares)
    slack: BenchSlack | None = None
    discord: BenchDiscord | None = None
    people: list[dict] = []
    async with GatedOpenAI(ledger, shape) as openai:
        if slack_platform := sc.platform.startswith("slack"):
            users = {f"U{i:05d}": f"user{i}" for i in range(size)}
            slack = BenchSlack(ledger, rate_minute=sc.slack_minute, retry_after=1, users=users)
            await slack.start()
            channels = [f"C{i:07d}" for i in range(total)]
        else:
            discord = BenchDiscord(ledger)
            await discord.start()
            guild = discord.add_guild("Bench", tuple(f"c{i:05d}" for i in range(total)))
            people = [discord.add_user(f"user{i}") for i in range(size)]
            channels = list(guild["channel_ids"])
        tags = [f"q{i:05d}" for i in range(total)]
        for tag, ch in zip(tags, channels):
            ledger.add(tag, shape.text_for(tag), ch)
        env = bot_env(sc, openai=openai, slack=slack, discord=discord, db=db)
        env["BENCH_HOTPATH_OUT"] = str(out)
        env["BENCH_WRITTEN_OUT"] = str(wd / "written.json")   # the bot's side of e→m (bench/written.py)
        if uvloop:
            env["BENCH_UVLOOP"] = "1"
        bot = BotProcess(wd, config, env)
        bot.module = "bench.hotbot"
        windows: list[dict[str, Any]] = []
        load = [os.getloadavg()[0]]
        try:
            await bot.start()
            if bot_cpu is not None:
                _pin(bot.pid, bot_cpu)
            await asyncio.sleep(0.5)
            # one answer first, not measured: the first one pays for lazy imports and first connections
            await _burst(ledger, [(tags[-1], channels[-1])], slack, discord, people)
            await _until_done(ledger, [tags[-1]])
            await asyncio.sleep(0.5)
            for b in range(bursts + calls):
                profiled = b >= bursts
                burst = list(zip(tags, channels))[b * size:(b + 1) * size]
                out.unlink(missing_ok=True)
                openai.gate.clear()
                ledger.requests_arrived, ledger.requests_expected = 0, size
                ledger.cpu_probe = lambda: os.kill(bot.pid, CLOSE)   # at the N-th request, at once
                created0 = openai.conversations_created
                # no collection of the bench's heap until the burst's last request arrived (bench/quietgc.py)
                ledger.gc.hold(until=ledger.requests_arrived + size)
                os.kill(bot.pid, OPEN_PROFILED if profiled else OPEN_PLAIN)
                await asyncio.sleep(0.3)   # the window is open before the first event (the bot idles)
                await _burst(ledger, burst, slack, discord, people)
                window = await _wait_file(out, bot, timeout=300)
                if profiled and (out.parent / (out.name + ".pstats")).exists():
                    kept = keep / f"hotpath-{sc.platform}-{size}.pstats"
                    keep.mkdir(parents=True, exist_ok=True)
                    (out.parent / (out.name + ".pstats")).replace(kept)
                    window["pstats"] = str(kept)
                ledger.cpu_probe = None
                if stream:   # a second window: from the answers' release to their last words
                    window["stream"] = await _stream_window(ledger, openai, bot, out, burst, profiled=profiled,
                                                            keep=keep / f"stream-{sc.platform}-{size}.pstats")
                openai.gate.set()
                e2m = [ledger.by_tag[t].model_request - ledger.by_tag[t].event_sent for t, _ in burst
                       if ledger.by_tag[t].model_request and ledger.by_tag[t].event_sent]
                window.update(order_stats([(ledger.by_tag[t].event_sent, ledger.by_tag[t].model_request)
                                           for t, _ in burst]))
                window.update(profiled=profiled, size=size, e2m_ms_p50=ms(e2m, 50), bench_gc=ledger.gc.report(),
                              conversations_created=openai.conversations_created - created0,
                              cpu_us_per_message=round(window["cpu_s"] / size * 1e6, 1),
                              loop_cpu_us_per_message=round(window["loop_cpu_s"] / size * 1e6, 1))
                if "calls" in window:
                    window["calls_per_message"] = round(window["calls"] / size)
                window["tags"] = [t for t, _ in burst]
                windows.append(window)
                print(f"  burst {b + 1}{' (profiled)' if profiled else ''}: {window['cpu_us_per_message']} µs CPU "
                      f"per message ({window['loop_cpu_us_per_message']} on the loop; {window['gc_collections']} "
                      f"collections, {window['gc_cpu_s'] * 1e3:.1f} ms); window CPU {window['cpu_s'] * 1e3:.1f} ms, "
                      f"e→m p10/p50/p90 {window.get('e2m_ms_p10')}/{window['e2m_ms_p50']}/{window.get('e2m_ms_p90')} "
                      f"ms, first/last request {window.get('first_request_ms')}/{window.get('last_request_ms')} ms "
                      f"(last event {window.get('last_event_ms')}), in order {window.get('in_order')}; "
                      f"SQLite jobs/statements {window.get('sqlite_jobs')}/{window.get('sqlite_statements')}; in CPU ms: e→m "
                      f"p10/p50/p90 {window.get('cpu_e2m_ms_p10')}/{window.get('cpu_e2m_ms_p50')}/"
                      f"{window.get('cpu_e2m_ms_p90')}, first/last request {window.get('cpu_first_request_ms')}/"
                      f"{window.get('cpu_last_request_ms')}; window wall {window.get('wall_ms')} ms, loop idle {window.get('loop_idle_ms')} ms, "
                      f"SQLite jobs wall/max/CPU {window.get('sqlite_wall_ms')}/{window.get('sqlite_max_ms')}/{window.get('sqlite_cpu_ms')} ms"
                      + (f", {window['calls_per_message']} calls" if profiled else ""), file=sys.stderr, flush=True)
                if stream:
                    st = window["stream"]
                    print(f"  burst {b + 1} after the requests: {st['cpu_us_per_answer']} µs CPU per answer "
                          f"({st['loop_cpu_us_per_answer']} on the loop; {st['gc_collections']} collections, "
                          f"{st['gc_cpu_s'] * 1e3:.1f} ms), window wall {st['wall_ms']} ms"
                          + (f", {st['calls_per_answer']} calls per answer" if profiled else ""),
                          file=sys.stderr, flush=True)
                await _until_done(ledger, [t for t, _ in burst])
                await asyncio.sleep(0.5)   # the answers' last writes settle before the next window
        finally:
            ledger.gc.end()
            load.append(os.getloadavg()[0])
            await bot.stop()
            errors = bot.error_lines()[-20:]
            if slack is not None:
                await slack.close()
            if discord is not None:
                await discord.stop()
    written = read_written(wd / "written.json")   # left by the bot at its exit
    for w in windows:
        answers = [ledger.by_tag[t] for t in w.pop("tags")]
        lag = [a.model_request - written[a.tag] for a in answers if a.model_request and a.tag in written]
        bot = [written[a.tag] - a.event_sent for a in answers if a.event_sent and a.tag in written]
        w.update(bench_lag_ms_p50=ms(lag, 50), bench_lag_ms_p95=ms(lag, 95), bot_e2m_written_ms_p50=ms(bot, 50),
                 bot_e2m_written_ms_p95=ms(bot, 95))
    plain = [w for w in windows if not w["profiled"]]
    streams = [w["stream"] for w in windows if "stream" in w]
    return {
        "stream_cpu_us_per_answer": (statistics.median(s["cpu_us_per_answer"] for s in streams if not s["profiled"])
                                     if any(not s["profiled"] for s in streams) else None),
        "stream_calls_per_answer": next((s["calls_per_answer"] for s in streams if s["profiled"]), None),
        "platform": sc.platform, "size": size, "bursts": len(plain), "spares": spares, "uvloop": uvloop,
        "cpu_us_per_message": statistics.median(w["cpu_us_per_message"] for w in plain) if plain else None,
        "loop_cpu_us_per_message": statistics.median(w["loop_cpu_us_per_message"] for w in plain) if plain else None,
        "calls_per_message": next((w["calls_per_message"] for w in windows if w["profiled"]), None),
        "load_1min": load, "windows": windows, "bot_log_errors": errors,
    }


def order_stats(times: list[tuple[float | None, float | None]]) -> dict[str, Any]:
    """How the burst's requests left, from (event sent, model request) per message in the order sent: e→m
    percentiles, when the first and the last request arrived after the first event, and the share of message
    pairs whose requests arrived in the order the messages were sent (1.0: first asked, first sent)."""
    pairs = [(e, m) for e, m in times if e is not None and m is not None]
    if not pairs:
        return {}
    t0 = min(e for e, _ in pairs)
    e2m = [m - e for e, m in pairs]
    req = [m for _, m in pairs]
    n = len(req)
    ordered = sum(1 for i in range(n) for j in range(i + 1, n) if req[i] < req[j])
    return {"e2m_ms_p10": ms(e2m, 10), "e2m_ms_p90": ms(e2m, 90),
            "first_request_ms": round((min(req) - t0) * 1000, 1), "last_request_ms": round((max(req) - t0) * 1000, 1),
            "last_event_ms": round((max(e for e, _ in pairs) - t0) * 1000, 1),
            "in_order": round(ordered / (n * (n - 1) / 2), 3) if n > 1 else 1.0}


async def _stream_window(ledger: Ledger, openai: GatedOpenAI, bot: BotProcess, out: Path,
                         burst: list[tuple[str, str]], *, profiled: bool, keep: Path) -> dict[str, Any]:
    """`--stream`: the bot's CPU from the release of the burst's answers (every request has arrived, none has
    been answered) until each answer's last words show, plus half a second for what follows them (records, the
    reply's end): reading the model's stream, relaying its deltas, the reply's posts and edits — per answer.
    Opened 2 s after the burst's last request: the spare conversations taken by the burst are replaced and
    labelled by then (≤ 1 s after the last take; the way to the model's work, not the answers')."""
    await asyncio.sleep(2.0)
    out.unlink(missing_ok=True)
    os.kill(bot.pid, OPEN_STREAM_PROFILED if profiled else OPEN_STREAM)
    spy = None
    if not profiled and (folded := os.environ.get("BENCH_STREAM_PYSPY")):   # sampled instead: py-spy's folded stacks
        spy = await asyncio.create_subprocess_exec("py-spy", "record", "--pid", str(bot.pid), "--format", "raw",
                                                   "--rate", "1000", "--nonblocking", "-o", folded,
                                                   stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    await asyncio.sleep(0.3)
    openai.gate.set()
    await _until_done(ledger, [t for t, _ in burst])
    await asyncio.sleep(0.5)
    os.kill(bot.pid, CLOSE)
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        await spy.wait()
    window = await _wait_file(out, bot, timeout=300)
    n = len(burst)
    window.update(profiled=profiled, cpu_us_per_answer=round(window["cpu_s"] / n * 1e6, 1),
                  loop_cpu_us_per_answer=round(window["loop_cpu_s"] / n * 1e6, 1))
    if "calls" in window:
        window["calls_per_answer"] = round(window["calls"] / n)
    if profiled and (out.parent / (out.name + ".pstats")).exists():
        keep.parent.mkdir(parents=True, exist_ok=True)
        (out.parent / (out.name + ".pstats")).replace(keep)
        window["pstats"] = str(keep)
    return window


async def _burst(ledger: Ledger, burst: list[tuple[str, str]], slack: BenchSlack | None,
                 discord: BenchDiscord | None, people: list[dict]) -> None:
    if slack is not None:
        frames = [slack.mention_envelopes(ch, f"<@{slack.bot_user_id}> {tag} how is the bridge?",
                                          user=f"U{i % len(slack.users):05d}") for i, (tag, ch) in enumerate(burst)]
        for (tag, _), (mention, _message) in zip(burst, frames):
            await slack.send_raw(mention)
            ledger.by_tag[tag].event_sent = now()
        for _, message in frames:
            await slack.send_raw(message)   # Slack sends a channel @mention twice: app_mention and message
    else:
        assert discord is not None
        for i, (tag, ch) in enumerate(burst):
            await discord.user_message(ch, people[i % len(people)], f"{tag} how is the bridge?", mention_bot=True)
            ledger.by_tag[tag].event_sent = now()


async def _until_done(ledger: Ledger, tags: list[str], timeout: float = 120.0) -> None:
    deadline = now() + timeout
    while any(ledger.by_tag[t].complete_visible is None for t in tags):
        if now() > deadline:
            raise RuntimeError("answers did not complete")
        await asyncio.sleep(0.05)


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| platform | N | bursts | CPU µs per message (median) | of it on the event loop | Python calls per "
             "message (loop) | conversations created per burst | e→m p50 ms (wall, load-bound) | bot e→m (written) / bench "
             "lag p50 ms | load 1 min |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['platform']} | {r['size']} | error: {r['error']} ||||||||")
            continue
        plain = [w for w in r["windows"] if not w["profiled"]]
        created = "/".join(str(w["conversations_created"]) for w in plain)
        e2m = statistics.median(w["e2m_ms_p50"] for w in plain if w["e2m_ms_p50"] is not None) if plain else None
        runs = " · ".join(str(w["cpu_us_per_message"]) for w in plain)
        written = " · ".join(f"{w.get('bot_e2m_written_ms_p50')} / {w.get('bench_lag_ms_p50')}" for w in plain)
        lines.append(f"| {r['platform']} | {r['size']} | {r['bursts']} | {r['cpu_us_per_message']} ({runs}) | "
                     f"{r['loop_cpu_us_per_message']} | {r['calls_per_message']} | {created} | {e2m} | {written} | "
                     f"{' → '.join(f'{x:.1f}' for x in r['load_1min'])} |")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.hotpath", description=__doc__.splitlines()[0])
    p.add_argument("--platform", action="append", choices=["slack", "discord"])
    p.add_argument("--size", type=int, action="append", help="simultaneous mentions (default 200); repeatable")
    p.add_argument("--bursts", type=int, default=3, help="measured bursts (default 3; the median is reported)")
    p.add_argument("--calls", type=int, default=1, help="profiled bursts after them (default 1)")
    p.add_argument("--spares", type=int, default=None, help="backends.openai.spare_conversations (default: config's)")
    p.add_argument("--bot-cpu", type=int, default=None, help="pin the bot process to this CPU")
    p.add_argument("--slack-minute", type=float, default=None)
    p.add_argument("--uvloop", action="store_true", help="the bot on uvloop's event loop (pip install uvloop)")
    p.add_argument("--stream", action="store_true",
                   help="also measure after the requests: full answers, a second window from their release to "
                        "their last words (CPU and, profiled, Python calls per answer)")
    p.add_argument("--top", type=int, default=25, help="profile lines to print (0: none)")
    p.add_argument("--out", help="JSON path (default bench/results/hotpath-<timestamp>.json)")
    return p


async def _main(args: argparse.Namespace) -> int:
    started = dt.datetime.now()
    results = []
    for platform in args.platform or ["discord", "slack"]:
        for size in args.size or [200]:
            print(f"hotpath {platform} x{size}…", file=sys.stderr, flush=True)
            try:
                results.append(await run(platform, size, args.bursts, args.calls, spares=args.spares,
                                         bot_cpu=args.bot_cpu, slack_minute=args.slack_minute,
                                         uvloop=args.uvloop, stream=args.stream))
            except Exception as exc:
                print(f"  failed: {exc!r}", file=sys.stderr)
                results.append({"platform": platform, "size": size, "error": repr(exc)})
    out = Path(args.out) if args.out else RESULTS / f"hotpath-{started:%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    from bench.__main__ import _commit, _machine
    out.write_text(json.dumps({"date": started.isoformat(timespec="seconds"), "machine": _machine(),
                               "commit": _commit(), "results": results}, indent=2))
    print(table(results))
    for r in results:
        profiled = next((w for w in r.get("windows", ()) if w["profiled"]), None)
        if profiled and args.top:
            print(f"\n{r['platform']} x{r['size']}, profiled burst: {profiled['calls_per_message']} calls per message;"
                  f" top by own time:")
            print("\n".join(profiled["top_self"][:args.top + 1]))
        st = profiled.get("stream") if profiled else None
        if st and args.top and "top_self" in st:
            print(f"\n{r['platform']} x{r['size']}, after the requests (profiled): {st['calls_per_answer']} calls per "
                  f"answer; top by own time:")
            print("\n".join(st["top_self"][:args.top + 1]))
    print(f"\nJSON: {out}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(_main(_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
