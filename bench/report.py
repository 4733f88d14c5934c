"""The markdown table: our numbers, the issue's baseline (ratio ours / theirs) and the targets missed."""
from __future__ import annotations

from typing import Any

# Issue 7, "Targets": two popular bots measured on this kind of machine with the same default answer.
BASELINE: dict[tuple[str, int], dict[str, float]] = {
    ("discord", 50): {"e2m": 1100, "last": 590, "cpu": 3.3, "rss": 222},
    ("discord", 200): {"e2m": 5000, "rss": 436, "lost_pct": 48},
    ("slack", 10): {"e2m": 1000},
    ("slack", 50): {"e2m": 64_000, "complete_p95": 57_000, "edits": 4, "429s": 30},
}


def baseline_for(platform: str, size: int) -> dict[str, float] | None:
    family = "slack" if platform.startswith("slack") else "discord"
    return BASELINE.get((family, size))


def _get(r: dict[str, Any], key: str, q: str) -> float | None:
    v = r.get(key) or {}
    return v.get(q) if isinstance(v, dict) else None


def _ratio(ours: float | None, theirs: float) -> str:
    if ours is None:
        return "–"
    return f"{ours / theirs:.3g}×"


def versus(r: dict[str, Any]) -> str:
    b = baseline_for(r["platform"], r["size"])
    if not b:
        return ""
    parts = []
    if "e2m" in b:
        parts.append(f"e→m {_ratio(_get(r, 'event_to_model_ms', 'p50'), b['e2m'])}")
    if "last" in b:
        parts.append(f"last {_ratio(_get(r, 'last_visible_ms', 'p50'), b['last'])}")
    if "complete_p95" in b:
        parts.append(f"final p95 {_ratio(_get(r, 'event_to_complete_ms', 'p95'), b['complete_p95'])}")
    if "edits" in b:
        parts.append(f"updates {_ratio(r.get('edits_per_answer'), b['edits'])}")
    if "429s" in b:
        parts.append(f"429s {_429s(r)} vs ~{b['429s']:.0f}")
    if "cpu" in b:
        parts.append(f"CPU {_ratio(r.get('cpu_s_per_100'), b['cpu'])}")
    if "rss" in b:
        parts.append(f"RSS {_ratio(r.get('peak_rss_mb'), b['rss'])}")
    if "lost_pct" in b:
        lost = 100 * r.get("answers_lost", 0) / max(1, r.get("answers", 1))
        parts.append(f"lost {lost:.0f}% vs {b['lost_pct']:.0f}%")
    return ", ".join(parts)


def missed(r: dict[str, Any]) -> list[str]:
    """Targets of issue 7 this row misses (only those that apply at its size)."""
    out = []
    n = r["size"]
    e2m = _get(r, "event_to_model_ms", "p50")
    if e2m is not None and ((n == 50 and e2m > 10) or (n == 200 and e2m > 25)):
        out.append("e→m p50")
    o50, o95 = _get(r, "first_visible_overhead_ms", "p50"), _get(r, "first_visible_overhead_ms", "p95")
    if (o50 is not None and o50 > 5) or (o95 is not None and o95 > 25):
        out.append("first-visible overhead")
    last = _get(r, "last_visible_ms", "p50")
    if n == 50 and last is not None and last > 100:
        out.append("last visible p50")
    if n >= 50 and (r.get("cpu_s_per_100") or 0) > 1.1:
        out.append("CPU/100")
    if n == 200 and (r.get("peak_rss_mb") or 0) > 120:
        out.append("peak RSS")
    if r.get("answers_lost"):
        out.append("answers lost")
    if r.get("chars_lost"):
        out.append("chars lost")
    if _429s(r):
        out.append("429s")
    return out


def _429s(r: dict[str, Any]) -> int:
    """Every 429 the platform stand-in sent, also those not tied to one answer (users.info, typing, …)."""
    return max(r.get("429s") or 0, r.get("platform_429s_total") or 0)


def _pair(r: dict[str, Any], key: str) -> str:
    a, b = _get(r, key, "p50"), _get(r, key, "p95")
    if a is None:
        return "–"
    return f"{a:g} / {b:g}"


HEADER = ("| platform | N | event→model ms p50 / p95 | bot e→m (written) ms p50 / p95 | bench lag ms p50 / p95 "
          "| first visible ms p50 / p95 (RTT) | last visible ms p50 / p95 "
          "| event→complete ms p50 / p95 | posts / edits / appends per answer | 429s | answers / chars lost "
          "| CPU s per 100 | peak RSS MB | vs baseline (ours ÷ theirs) | targets missed |")


def markdown_table(results: list[dict[str, Any]]) -> str:
    lines = [HEADER, "|" + "---|" * (HEADER.count("|") - 1)]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['platform']} | {r['size']} | failed: {r['error']} |" + " |" * 12)
            continue
        minute = r["scenario"].get("slack_minute", 60.0)
        name = r["platform"] + (f" (minute={minute:g}s)" if r["platform"].startswith("slack") and minute != 60 else "")
        lines.append(
            f"| {name} | {r['size']} | {_pair(r, 'event_to_model_ms')} | {_pair(r, 'bot_e2m_written_ms')} "
            f"| {_pair(r, 'bench_lag_ms')} "
            f"| {_pair(r, 'first_visible_ms')} ({r['rtt_ms']:g}) | {_pair(r, 'last_visible_ms')} "
            f"| {_pair(r, 'event_to_complete_ms')} "
            f"| {r['posts_per_answer']:g} / {r['edits_per_answer']:g} / {r['appends_per_answer']:g} "
            f"| {_429s(r)} | {r['answers_lost']} / {r['chars_lost']} | {r['cpu_s_per_100']:g} | {r['peak_rss_mb']:g} "
            f"| {versus(r)} | {', '.join(missed(r)) or 'none'} |")
    return "\n".join(lines)


def store_line(store: list[dict[str, Any]]) -> str:
    if len(store) < 2:
        return ""
    empty, full = store[0], store[1]
    grow = full["rss_after_mb"] - empty["rss_after_mb"]
    peak = full["peak_rss_mb"] - empty["peak_rss_mb"]
    return (f"RSS with {full['scenario']['prefill']:,} stored conversations vs none ({full['platform']}, 20 answers): "
            f"{full['rss_after_mb']:g} vs {empty['rss_after_mb']:g} MB after the run "
            f"(growth {grow:+.1f} MB per 10,000), peak {full['peak_rss_mb']:g} vs {empty['peak_rss_mb']:g} MB "
            f"({peak:+.1f} MB); event→model p50 {_get(full, 'event_to_model_ms', 'p50')} vs "
            f"{_get(empty, 'event_to_model_ms', 'p50')} ms.")


PACED_METHODS = ("chat.startStream", "chat.appendStream", "chat.stopStream", "chat.postMessage", "chat.update",
                 "assistant.threads.setStatus")


def paced_table(results: list[dict[str, Any]]) -> str:
    """`--paced`: Slack, 50 at once, answers paced over 6 s / 20 s (issue 18)."""
    lines = ["| answer paced over | N × bursts | last visible ms after the model's last word p50 / p95 / max "
             "| calls per answer: start / append / stop / post / update / status | 429s | answers / chars lost |",
             "|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r.get('model_seconds', '?'):g} s | 50 | failed: {r['error']} | | | |")
            continue
        n = r["answers"] or 1
        calls = r.get("platform_calls", {})
        per = " / ".join(f"{calls.get(m, 0) / n:.2f}" for m in PACED_METHODS)
        last = r["last_visible_ms"]
        lines.append(f"| {r['model_seconds']:g} s | {r['size']} × {r['scenario'].get('bursts', 1)} "
                     f"| {last['p50']:g} / {last['p95']:g} / {last['max']:g} | {per} | {r['platform_429s_total']} "
                     f"| {r['answers_lost']} / {r['chars_lost']} |")
    return "\n".join(lines)
