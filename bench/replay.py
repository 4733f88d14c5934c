"""Replay recorded answer timelines through a model of the Discord global budget (no bot, no CPU, no network).

    python -m bench.replay RUN.json [RUN.json ...] [--size 200] [--period 1.06] [--estimate 1.5]

Each answer of a `python -m bench` run's JSON (`timelines`: its first and last delta) wants its first message from
its first delta on, in order (first come, first served), ahead of the final edits of answers already showing.
The budget is a sliding window of 45 requests (counted by finish, each request taking 4 ms). Two policies:
`stream` (when its turn comes, an answer still being written shows its beginning and needs a final edit later;
one that ended meanwhile goes out whole — main before the keep rule) and `keep` (bots/discord/delivery.py's rule,
re-stated here: an answer whose turn comes within 3/4 of a window of its expected end — its first delta plus
`--estimate` s — keeps the slot for its end, up to a window, while the answers not showing yet need ≥ 2 windows
and at most half the spare slots of their last window are kept); `keep-cumulative` caps instead the slot-windows kept
since nothing waited to show (not built: see Delivery.keep_for). `long:N` in place of a run: a synthetic long
burst where every window is at the keep rule's edge. A model of the code, not the code: use it to compare schedules
on the same arrivals; the wall-clock bench is the measurement.
"""
from __future__ import annotations

import argparse
import heapq
import json
import math
from collections import deque

LIMIT, LATENCY = 45, 0.004


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def simulate(answers: list[tuple[float, float]], keep: bool, period: float, estimate: float,
             cumulative: bool = False) -> dict[str, float]:
    n = len(answers)
    done: deque[float] = deque()
    inflight = 0
    first_q: deque[int] = deque()
    final_q: deque[int] = deque()
    shown = [None] * n
    complete = [None] * n
    streaming = [False] * n
    ended = [False] * n
    kept: dict[int, float] = {}   # kept answer -> when its slot was kept
    spent = 0.0                   # windows of slots kept (and given up or used) since nothing waited to show
    writes = 0
    events: list = []
    for i, (f, last) in enumerate(answers):
        heapq.heappush(events, (f, 0, "first", i))
        heapq.heappush(events, (last, 1, "end", i))

    def free(now: float) -> int:
        while done and done[0] <= now - period:
            done.popleft()
        return LIMIT - inflight - len(done)

    def write(i: int, now: float, kind: str) -> None:
        nonlocal writes
        writes += 1
        done.append(now + LATENCY)
        if kind == "stream":
            shown[i], streaming[i] = now + LATENCY, True
        elif kind == "whole":
            shown[i] = complete[i] = now + LATENCY
        else:
            complete[i] = now + LATENCY

    def keeps(i: int, now: float) -> bool:
        left = answers[i][0] + estimate - now
        unshown = sum(1 for s in shown if s is None)
        windows = math.ceil(unshown / LIMIT)
        used = len(kept) + (spent if cumulative else 0.0)
        return (0 < left <= 0.75 * period and windows >= 2
                and used < (windows * LIMIT - unshown) // 2)

    def unkeep(i: int, now: float) -> None:
        nonlocal inflight, spent
        spent += (now - kept.pop(i)) / period
        inflight -= 1

    def pump(now: float) -> None:
        nonlocal inflight
        while (first_q or final_q) and free(now) > 0:
            if first_q:
                i = first_q.popleft()
                if ended[i]:
                    write(i, now, "whole")
                elif keep and keeps(i, now):
                    inflight += 1
                    kept[i] = now
                    heapq.heappush(events, (now + period, 2, "give_up", i))
                else:
                    write(i, now, "stream")
            else:
                write(final_q.popleft(), now, "final")
        if (first_q or final_q) and done:
            heapq.heappush(events, (done[0] + period + 1e-9, 3, "tick", -1))

    while events:
        now, _, kind, i = heapq.heappop(events)
        if kind == "first":
            if not first_q and not kept and all(s is not None for s in shown[:i]):
                spent = 0.0   # nothing waited to show: the count of kept slots starts again
            first_q.append(i)
        elif kind == "end":
            ended[i] = True
            if i in kept:
                unkeep(i, now)
                write(i, now, "whole")
            elif streaming[i]:
                final_q.append(i)
        elif kind == "give_up" and i in kept:
            unkeep(i, now)
            write(i, now, "stream")
        pump(now)
    first = [s - a[0] for s, a in zip(shown, answers)]
    last = [c - a[1] for c, a in zip(complete, answers)]
    return {"first_p95_ms": pct(first, 95) * 1000, "last_p50_ms": pct(last, 50) * 1000,
            "edits_per_answer": writes / n - 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument("--period", type=float, default=1.06)
    parser.add_argument("--estimate", type=float, default=1.5)
    args = parser.parse_args()
    print("| run | policy | first visible p95 ms | last visible p50 ms | edits per answer |")
    print("|---|---|---|---|---|")
    for path in args.runs:
        if path.startswith("long:"):
            # long:N — a long burst kept at the budget's edge: N answers of `--estimate` s arrive as fast as first
            # messages can go out, behind a queue that makes each one's turn come about when it ends (the keep
            # rule's case in every window, not just one)
            n = int(path[5:])
            queue = round(LIMIT * (args.estimate - 0.4 * args.period) / args.period)
            firsts = [0.0] * queue + [i * args.period / LIMIT for i in range(n - queue)]
            runs = [sorted((f, f + args.estimate) for f in firsts)]
        else:
            runs = [sorted((t[2], t[3]) for t in result["timelines"])
                    for result in json.load(open(path))["results"] if result["size"] == args.size]
        for answers in runs:
            for policy in ("stream", "keep", "keep-cumulative"):
                r = simulate(answers, policy != "stream", args.period, args.estimate, policy == "keep-cumulative")
                print(f"| {path} | {policy} | {r['first_p95_ms']:,.0f} | {r['last_p50_ms']:,.0f} "
                      f"| {r['edits_per_answer']:.2f} |")


if __name__ == "__main__":
    main()
