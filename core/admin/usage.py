"""Usage and cost reports over the store's usage rows (one row per turn).

Cost of a turn, from PricesConfig (USD per 1M tokens):
    (input_tokens - cached_tokens) * input + cached_tokens * cached_input + output_tokens * output
    + code_interpreter_sessions * code_interpreter_session
The Responses API reports cached tokens as a part of input_tokens (usage.input_tokens_details.cached_tokens),
hence the subtraction. Models missing from the price table cost 0 and are listed in `unpriced_models`.

Vector storage is billed per GB-day of the stores' size, which no turn reports: the caller passes the stores'
current sizes (VectorStore.usage_bytes from the vector stores API) as `storage`, and the report prices them over
the period as if that size held for the whole overlap with the store's lifetime (see storage_cost). Without it
the report says that storage is not included.
"""
from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, timezone
from typing import Iterable, Literal, Protocol, Sequence

from core.config.policy import PricesConfig
from core.store.protocol import FeedbackRow, UsageRow

By = Literal["user", "channel", "assistant", "day", "model"]
BY_CHOICES: tuple[str, ...] = ("user", "channel", "assistant", "day", "model")
DAY = 86400.0
GB = 1_000_000_000  # OpenAI prices storage in decimal GB


@dataclass(frozen=True, slots=True)
class UsageLine:
    key: str
    turns: int = 0
    input_tokens: int = 0          # includes cached_tokens
    cached_tokens: int = 0
    output_tokens: int = 0
    tool_calls: int = 0
    code_interpreter_sessions: int = 0
    cost_usd: float = 0.0
    feedback_up: int = 0           # ratings of this group's answers (core/admin/feedback.py)
    feedback_down: int = 0


@dataclass(frozen=True, slots=True)
class StoredVectorStore:
    """A vector store's size for storage cost. `ended_at`: expiry or deletion time, None while it exists."""
    id: str
    usage_bytes: int
    created_at: float = 0.0
    ended_at: float | None = None


@dataclass(frozen=True, slots=True)
class UsageReport:
    by: str
    since: float
    until: float
    lines: tuple[UsageLine, ...]
    total: UsageLine                          # sums of `lines` (turn costs only)
    unpriced_models: tuple[str, ...] = ()
    storage_included: bool = False
    storage_gb_days: float = 0.0
    storage_cost_usd: float = 0.0
    feedback_included: bool = False           # some answer in the period was rated: the table shows a column

    @property
    def total_cost_usd(self) -> float:
        return self.total.cost_usd + self.storage_cost_usd


# ---- computing -----------------------------------------------------------------------------------


def turn_cost(row: UsageRow, prices: PricesConfig) -> tuple[float, bool]:
    """(USD, priced) for one usage row; priced is False when the row's model is not in the price table."""
    cost = row.code_interpreter_sessions * prices.code_interpreter_session
    price = prices.for_model(row.model)
    if price is None:
        return cost, False
    uncached = max(0, row.input_tokens - row.cached_tokens)
    cost += (uncached * price.input + row.cached_tokens * price.cached + row.output_tokens * price.output) / 1e6
    return cost, True


def storage_cost(storage: Iterable[StoredVectorStore], prices: PricesConfig, since: float,
                 until: float) -> tuple[float, float]:
    """(GB-days, USD) over [since, until). The free allowance (vector_storage_free_gb) is taken off per day of the
    period across all stores together, which is exact when the stores existed for the whole period."""
    gb_days = 0.0
    for store in storage:
        start = max(since, store.created_at)
        end = min(until, store.ended_at if store.ended_at is not None else until)
        if end > start:
            gb_days += store.usage_bytes / GB * (end - start) / DAY
    billable = max(0.0, gb_days - prices.vector_storage_free_gb * max(0.0, until - since) / DAY)
    return gb_days, billable * prices.vector_storage_gb_day


def _key(row: UsageRow, by: str) -> str:
    if by == "day":
        return datetime.fromtimestamp(row.ts, timezone.utc).date().isoformat()
    return str(getattr(row, by) or "") or "(none)"


def usage_report(rows: Iterable[UsageRow], prices: PricesConfig, by: By = "user", since: float = 0.0,
                 until: float = math.inf, *, storage: Sequence[StoredVectorStore] | None = None,
                 feedback: Sequence[FeedbackRow] = ()) -> UsageReport:
    """Group the rows with since <= ts < until by user, channel, assistant, UTC day or model. `feedback`: the
    ratings given in the period, counted under their answer's group (by user: the person who asked; by day: the
    day of the rating)."""
    if by not in BY_CHOICES:
        raise ValueError(f"Can't group usage by {by!r}: use one of {', '.join(BY_CHOICES)}.")
    groups: dict[str, list[float]] = {}   # key -> [turns, input, cached, output, tools, sessions, cost]
    unpriced: set[str] = set()
    for row in rows:
        if not since <= row.ts < until:
            continue
        cost, priced = turn_cost(row, prices)
        if not priced:
            unpriced.add(row.model or "(none)")
        acc = groups.setdefault(_key(row, by), [0, 0, 0, 0, 0, 0, 0.0])
        for i, value in enumerate((1, row.input_tokens, row.cached_tokens, row.output_tokens, row.tool_calls,
                                   row.code_interpreter_sessions, cost)):
            acc[i] += value
    ratings: dict[str, list[int]] = {}
    for rated in feedback:
        if since <= rated.at < until:
            counts = ratings.setdefault(_feedback_key(rated, by), [0, 0])
            counts[0 if rated.rating > 0 else 1] += 1
    for key in ratings:
        groups.setdefault(key, [0, 0, 0, 0, 0, 0, 0.0])
    lines = [replace(_line(key, acc), feedback_up=ratings.get(key, (0, 0))[0],
                     feedback_down=ratings.get(key, (0, 0))[1]) for key, acc in groups.items()]
    if by == "day":
        lines.sort(key=lambda line: line.key)
    else:
        lines.sort(key=lambda line: (-line.cost_usd, -(line.input_tokens + line.output_tokens), line.key))
    total = replace(_line("TOTAL", [sum(getattr(line, f) for line in lines) for f in _SUM_FIELDS]),
                    feedback_up=sum(line.feedback_up for line in lines),
                    feedback_down=sum(line.feedback_down for line in lines))
    gb_days = storage_usd = 0.0
    if storage is not None and math.isfinite(until):
        gb_days, storage_usd = storage_cost(storage, prices, since, until)
    return UsageReport(by=by, since=since, until=until, lines=tuple(lines), total=total,
                       unpriced_models=tuple(sorted(unpriced)), storage_included=storage is not None,
                       storage_gb_days=gb_days, storage_cost_usd=storage_usd, feedback_included=bool(ratings))


def _feedback_key(row: FeedbackRow, by: str) -> str:
    match by:
        case "day":
            return datetime.fromtimestamp(row.at, timezone.utc).date().isoformat()
        case "user":
            return row.asker or "(none)"
        case _:
            return str(getattr(row, by) or "") or "(none)"


_SUM_FIELDS = ("turns", "input_tokens", "cached_tokens", "output_tokens", "tool_calls",
               "code_interpreter_sessions", "cost_usd")


def _line(key: str, acc: Sequence[float]) -> UsageLine:
    *counts, cost = acc
    return UsageLine(key, *(int(c) for c in counts), cost_usd=float(cost))


class UsageRows(Protocol):
    async def usage_rows(self, since: float, until: float) -> list[UsageRow]: ...
    async def feedback_rows(self, since: float, until: float) -> list[FeedbackRow]: ...


async def build_report(store: UsageRows, prices: PricesConfig, *, by: By = "user", period: str = "7d",
                       now: float | None = None,
                       storage: Sequence[StoredVectorStore] | None = None) -> UsageReport:
    """Convenience for the CLI and the admin commands: parse the period, read the rows, build the report."""
    since, until = parse_period(period, now=now)
    return usage_report(await store.usage_rows(since, until), prices, by, since, until, storage=storage,
                        feedback=await store.feedback_rows(since, until))


async def usage_text(store: UsageRows, prices: PricesConfig, args: Sequence[str], *, now: float | None = None,
                     storage: Sequence[StoredVectorStore] | None = None) -> str:
    """The reply to `usage ARGS` (admin chat command, `teambridge usage`): the table, or JSON with --json, or a
    one-line explanation of a bad argument. Admin rights are checked by the caller (ChatService.command)."""
    try:
        query = parse_usage_args(args)
        since, until = parse_period(query.period, now=now)
    except ValueError as exc:
        return str(exc)
    rows = await store.usage_rows(since, until)
    report = usage_report(rows, prices, query.by, since, until, storage=storage,  # type: ignore[arg-type]
                          feedback=await store.feedback_rows(since, until))
    return to_json(report) if query.as_json else format_table(report)


# ---- rendering -----------------------------------------------------------------------------------

_COLUMNS = ("turns", "input", "cached", "output", "tool calls", "ci sessions", "cost USD")


def _when(ts: float) -> str:
    if not math.isfinite(ts) or ts <= 0:
        return "…"
    moment = datetime.fromtimestamp(ts, timezone.utc)
    return moment.strftime("%Y-%m-%d" if moment.time() == datetime.min.time() else "%Y-%m-%d %H:%M")


def _range(since: float, until: float) -> str:
    """Whole UTC days read as the days included (2026-11-01 .. 2026-11-25), like the period was written."""
    if math.isfinite(until) and until % DAY == 0 and since % DAY == 0 and until > since:
        first, last = _when(since), _when(until - DAY)
        return f"{first} UTC" if first == last else f"{first} .. {last} UTC"
    return f"{_when(since)} .. {_when(until)} UTC"


def _money(usd: float) -> str:
    return f"{usd:,.4f}"


def _cells(line: UsageLine) -> list[str]:
    return [f"{line.turns:,}", f"{line.input_tokens:,}", f"{line.cached_tokens:,}", f"{line.output_tokens:,}",
            f"{line.tool_calls:,}", f"{line.code_interpreter_sessions:,}", _money(line.cost_usd)]


def _feedback_cell(line: UsageLine) -> str:
    return f"+{line.feedback_up} -{line.feedback_down}" if line.feedback_up or line.feedback_down else ""


def format_table(report: UsageReport) -> str:
    """Fixed-width markdown table (monospace-friendly; wrap in a code block on Slack/Discord) with a TOTAL row."""
    rated = report.feedback_included  # the feedback column ("+up -down") only when some answer was rated
    head = [report.by, *_COLUMNS, *(["feedback"] if rated else [])]
    body = [[line.key, *_cells(line), *([_feedback_cell(line)] if rated else [])] for line in report.lines]
    total = ["TOTAL", *_cells(report.total), *([_feedback_cell(report.total)] if rated else [])]
    widths = [max(len(r[i]) for r in (head, *body, total)) for i in range(len(head))]

    def render(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    rule = "|" + "|".join(("-" * (w + 2)) if i == 0 else ("-" * (w + 1) + ":")
                          for i, w in enumerate(widths)) + "|"
    out = [f"Usage by {report.by}, {_range(report.since, report.until)}", "",
           render(head), rule, *map(render, body), rule, render(total)]
    if not report.lines:
        out.insert(2, "No turns in this period.")
        out.insert(3, "")
    out.append("")
    if report.storage_included:
        out.append(f"Vector storage: {report.storage_gb_days:,.3f} GB-days, USD {_money(report.storage_cost_usd)}. "
                   f"Total: USD {_money(report.total_cost_usd)}.")
    else:
        out.append("Vector storage (per GB-day) is not included.")
    if report.unpriced_models:
        out.append(f"No price configured for: {', '.join(report.unpriced_models)} (counted as 0 USD; "
                   "add them under prices.models).")
    return "\n".join(out)


def to_json(report: UsageReport) -> str:
    def line(item: UsageLine) -> dict:
        data = asdict(item)
        data["cost_usd"] = round(item.cost_usd, 8)
        return data

    return json.dumps({
        "by": report.by,
        "since": _iso(report.since),
        "until": _iso(report.until),
        "rows": [line(item) for item in report.lines],
        "total": line(report.total),
        "unpriced_models": list(report.unpriced_models),
        "vector_storage": ({"gb_days": round(report.storage_gb_days, 6),
                            "cost_usd": round(report.storage_cost_usd, 8)} if report.storage_included else None),
        "total_cost_usd": round(report.total_cost_usd, 8),
    }, indent=2)


def _iso(ts: float) -> str | None:
    if not math.isfinite(ts):
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


# ---- periods -----------------------------------------------------------------------------------

_RELATIVE = re.compile(r"^(\d+)\s*([hdw])$")
_UNITS = {"h": 3600.0, "d": DAY, "w": 7 * DAY}
_PERIOD_HELP = "use e.g. 24h, 7d, 2w, today, 2026-11-01 or 2026-11-01..2026-11-25 (UTC, end day included)"


def parse_period(text: str, *, now: float | None = None) -> tuple[float, float]:
    """Period -> (since, until) timestamps, until exclusive, ready for store.usage_rows(since, until).

    "24h" / "7d" / "2w": the last hours/days/weeks up to now. "today": since UTC midnight.
    "2026-11-01": that UTC day. "2026-11-01..2026-11-25": both days included. Open ends: "2026-11-01.." (until
    now), "..2026-11-25" (from the beginning)."""
    now = time.time() if now is None else now
    raw = text.strip().lower()
    if m := _RELATIVE.match(raw):
        amount = int(m.group(1))
        if amount <= 0:
            raise ValueError(f"Can't read the period {text!r}: it must be longer than zero.")
        return now - amount * _UNITS[m.group(2)], now
    if raw == "today":
        return math.floor(now / DAY) * DAY, now
    if ".." in raw:
        start_text, _, end_text = raw.partition("..")
        since = _day_start(start_text, text) if start_text.strip() else 0.0
        until = _day_start(end_text, text) + DAY if end_text.strip() else now
        if until <= since:
            raise ValueError(f"Can't read the period {text!r}: it ends before it starts.")
        return since, until
    start = _day_start(raw, text)
    return start, start + DAY


def _day_start(part: str, whole: str) -> float:
    try:
        day = date.fromisoformat(part.strip())
    except ValueError:
        raise ValueError(f"Can't read the period {whole!r}: {_PERIOD_HELP}.") from None
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()


@dataclass(frozen=True, slots=True)
class UsageQuery:
    by: str = "user"
    period: str = "7d"
    as_json: bool = False


def parse_usage_args(args: Sequence[str]) -> UsageQuery:
    """Arguments of `usage` (CLI or admin chat command), in any order: a grouping (user, channel, assistant, day,
    model; "by" optional), a period (see parse_period), --json. Raises ValueError with a readable message."""
    by, period, as_json = "user", "7d", False
    for arg in args:
        word = arg.strip().lower()
        if word in ("", "by", "--by", "--period"):
            continue
        if word in ("--json", "json"):
            as_json = True
        elif word.removeprefix("--by=") in BY_CHOICES:
            by = word.removeprefix("--by=")
        else:
            period = word.removeprefix("--period=")
            try:
                parse_period(period)  # only to reject a bad argument now, with a readable message
            except ValueError:
                raise ValueError(f"Can't read {arg!r}: use a grouping ({', '.join(BY_CHOICES)}), a period "
                                 f"({_PERIOD_HELP}) or --json.") from None
    return UsageQuery(by=by, period=period, as_json=as_json)
