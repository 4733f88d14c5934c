"""What people thought of the answers: `teambridge feedback [--period 7d] [--json]` and the usage report's column.

One row per person per rated answer (their latest rating): when they rated it, the platform, the assistant, who
rated, the rating, and where the answer is (platform, channel, thread, message), so an admin can go and read it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Protocol, Sequence

from core.store.protocol import FeedbackRow

RATING_WORDS = {1: "up", -1: "down"}


class FeedbackRows(Protocol):
    async def feedback_rows(self, since: float, until: float) -> list[FeedbackRow]: ...


@dataclass(frozen=True, slots=True)
class Tally:
    up: int = 0
    down: int = 0

    def __add__(self, other: "Tally") -> "Tally":
        return Tally(self.up + other.up, self.down + other.down)

    def cell(self) -> str:
        return f"+{self.up} -{self.down}" if self.up or self.down else ""


def tally(rows: Iterable[FeedbackRow]) -> Tally:
    up = down = 0
    for row in rows:
        if row.rating > 0:
            up += 1
        else:
            down += 1
    return Tally(up, down)


def where(row: FeedbackRow) -> str:
    """Where the answer is, in the platform's own ids: enough to find it (Slack: channel + message ts)."""
    parts = [row.platform, row.channel]
    if row.thread:
        parts.append(f"thread {row.thread}")
    if row.message_id:
        parts.append(f"message {row.message_id}")
    return " ".join(parts)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def format_feedback(rows: Sequence[FeedbackRow], *, period: str) -> str:
    """A fixed-width table, newest first, with a one-line summary."""
    total = tally(rows)
    head = ["time (UTC)", "platform", "assistant", "user", "rating", "where"]
    body = [[_when(r.at), r.platform, r.assistant, r.user, RATING_WORDS.get(r.rating, str(r.rating)), where(r)]
            for r in sorted(rows, key=lambda r: r.at, reverse=True)]
    summary = (f"Feedback ({period}): {len(rows)} rating{'s' if len(rows) != 1 else ''} "
               f"({total.up} up, {total.down} down).")
    if not body:
        return f"Feedback ({period}): no ratings."
    widths = [max(len(r[i]) for r in (head, *body)) for i in range(len(head))]

    def render(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([summary, "", render(head), rule, *map(render, body)])


def feedback_json(rows: Sequence[FeedbackRow], *, since: float, until: float) -> str:
    total = tally(rows)
    return json.dumps({
        "since": _iso(since), "until": _iso(until),
        "ratings": [{"at": _iso(r.at), "platform": r.platform, "assistant": r.assistant, "model": r.model,
                     "user": r.user, "rating": RATING_WORDS.get(r.rating, str(r.rating)), "answer_id": r.answer_id,
                     "asked_by": r.asker, "where": {"workspace": r.workspace, "channel": r.channel,
                                                    "thread": r.thread, "message_id": r.message_id}}
                    for r in sorted(rows, key=lambda r: r.at, reverse=True)],
        "total": {"up": total.up, "down": total.down},
    }, indent=2, ensure_ascii=False)


async def feedback_text(store: FeedbackRows, *, period: str = "7d", as_json: bool = False,
                        now: float | None = None) -> str:
    """The report for `teambridge feedback`. Raises ValueError for a period it cannot read."""
    from core.admin.usage import parse_period

    since, until = parse_period(period, now=now)
    rows = await store.feedback_rows(since, until)
    return feedback_json(rows, since=since, until=until) if as_json else format_feedback(rows, period=period)
