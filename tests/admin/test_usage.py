"""Usage and cost: turns recorded in the store -> the table and JSON an admin reads."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from core.model import Usage
from core.config.policy import ModelPrice, PricesConfig
from core.store.sqlite import SqliteStore
from core.admin.usage import (GB, StoredVectorStore, UsageQuery, build_report, format_table, parse_period,
                        parse_usage_args, to_json, usage_report, usage_text)


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


# A price table written for the test, so the expected costs below are computed from these inputs by hand.
PRICES = PricesConfig(models={"m-big": ModelPrice(input=2.0, cached_input=0.5, output=8.0),
                              "m-small": ModelPrice(input=0.4, output=1.6)},   # no cached price: input price
                      code_interpreter_session=0.03)

# (when, user, channel, assistant, model, input, cached, output, tool calls, ci sessions)
TURNS = [
    ("2026-11-20T09:00:00", "U1", "C1", "math", "m-big", 1000, 200, 300, 1, 1),
    ("2026-11-20T10:00:00", "U2", "C1", "food", "m-small", 500, 100, 50, 0, 0),
    ("2026-11-21T11:00:00", "U1", "C2", "food", "m-small", 2000, 0, 1000, 2, 0),
    ("2026-11-21T12:00:00", "U1", "C2", "math", "m-big-2026-01-01", 100, 0, 10, 1, 2),  # dated snapshot
    ("2026-11-22T08:00:00", "U3", "C1", "weather", "mystery-model", 50, 0, 5, 1, 0),    # no price
    ("2026-11-25T08:00:00", "U1", "C1", "math", "m-big", 999, 0, 999, 0, 0),            # outside the period
]

# Hand-computed per turn: (input - cached) * input + cached * cached_input + output * output, per 1M, + CI sessions
COST = [
    (800 * 2.0 + 200 * 0.5 + 300 * 8.0) / 1e6 + 1 * 0.03,   # 0.0041 + 0.03
    (400 * 0.4 + 100 * 0.4 + 50 * 1.6) / 1e6,               # 0.00028
    (2000 * 0.4 + 1000 * 1.6) / 1e6,                        # 0.0024
    (100 * 2.0 + 10 * 8.0) / 1e6 + 2 * 0.03,                # 0.00028 + 0.06
    0.0,
]


@pytest.fixture
async def rows(tmp_path):
    now = [0.0]
    async with SqliteStore(tmp_path / "u.db", clock=lambda: now[0]) as store:
        for when, user, channel, assistant, model, inp, cached, out, tools, sessions in TURNS:
            now[0] = ts(when)
            await store.record_usage(assistant=assistant, platform="slack", workspace="T1", channel=channel,
                                     user=user, model=model,
                                     usage=Usage(inp, cached, out, tools, sessions))
        since, until = parse_period("2026-11-20..2026-11-22")
        yield await store.usage_rows(since, until), since, until


def test_report_by_user_totals_equal_the_sums_of_the_turns(rows):
    data, since, until = rows
    report = usage_report(data, PRICES, "user", since, until)
    by_key = {line.key: line for line in report.lines}
    assert set(by_key) == {"U1", "U2", "U3"}
    u1 = by_key["U1"]
    assert (u1.turns, u1.input_tokens, u1.cached_tokens, u1.output_tokens, u1.tool_calls,
            u1.code_interpreter_sessions) == (3, 1000 + 2000 + 100, 200, 300 + 1000 + 10, 1 + 2 + 1, 1 + 2)
    assert u1.cost_usd == pytest.approx(COST[0] + COST[2] + COST[3])
    assert by_key["U2"].cost_usd == pytest.approx(COST[1])
    t = report.total
    assert (t.turns, t.input_tokens, t.cached_tokens, t.output_tokens, t.tool_calls,
            t.code_interpreter_sessions) == (5, 3650, 300, 1365, 5, 3)
    assert t.cost_usd == pytest.approx(sum(COST))
    assert report.unpriced_models == ("mystery-model",)
    # most expensive first
    assert [line.key for line in report.lines] == ["U1", "U2", "U3"]


@pytest.mark.parametrize("by,expected", [
    ("channel", {"C1": COST[0] + COST[1] + COST[4], "C2": COST[2] + COST[3]}),
    ("assistant", {"math": COST[0] + COST[3], "food": COST[1] + COST[2], "weather": 0.0}),
    ("day", {"2026-11-20": COST[0] + COST[1], "2026-11-21": COST[2] + COST[3], "2026-11-22": 0.0}),
    ("model", {"m-big": COST[0], "m-small": COST[1] + COST[2], "m-big-2026-01-01": COST[3],
               "mystery-model": 0.0}),
])
def test_report_groupings(rows, by, expected):
    data, since, until = rows
    report = usage_report(data, PRICES, by, since, until)
    assert {line.key: line.cost_usd for line in report.lines} == pytest.approx(expected)
    assert report.total.cost_usd == pytest.approx(sum(COST))
    assert report.total.turns == 5
    if by == "day":
        assert [line.key for line in report.lines] == ["2026-11-20", "2026-11-21", "2026-11-22"]


def test_rows_outside_the_period_are_left_out(rows):
    data, _, _ = rows
    report = usage_report(data, PRICES, "user", ts("2026-11-21T00:00:00"), ts("2026-11-22T00:00:00"))
    assert report.total.turns == 2
    assert report.total.cost_usd == pytest.approx(COST[2] + COST[3])


def test_table_shows_each_group_and_a_total_row(rows):
    data, since, until = rows
    text = format_table(usage_report(data, PRICES, "user", since, until))
    lines = text.splitlines()
    assert lines[0] == "Usage by user, 2026-11-20 .. 2026-11-22 UTC"
    table = [line for line in lines if line.startswith("|")]
    assert all(len(line) == len(table[0]) for line in table)          # fixed width
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header == ["user", "turns", "input", "cached", "output", "tool calls", "ci sessions", "cost USD"]
    total = [c.strip() for c in table[-1].strip("|").split("|")]
    assert total == ["TOTAL", "5", "3,650", "300", "1,365", "5", "3", f"{sum(COST):.4f}"]
    u1 = [c.strip() for c in table[2].strip("|").split("|")]
    assert u1[:2] == ["U1", "3"]
    assert "No price configured for: mystery-model" in text
    assert "Vector storage (per GB-day) is not included." in text


def test_json_has_the_same_numbers(rows):
    data, since, until = rows
    doc = json.loads(to_json(usage_report(data, PRICES, "channel", since, until)))
    assert doc["by"] == "channel"
    assert doc["since"] == "2026-11-20T00:00:00Z" and doc["until"] == "2026-11-23T00:00:00Z"
    assert sum(r["input_tokens"] for r in doc["rows"]) == doc["total"]["input_tokens"] == 3650
    assert doc["total"]["cost_usd"] == pytest.approx(sum(COST))
    assert doc["unpriced_models"] == ["mystery-model"]
    assert doc["vector_storage"] is None


def test_vector_storage_cost_in_gb_days(rows):
    data, since, until = rows   # a 3-day period
    storage = [StoredVectorStore("vs_a", 2 * GB, created_at=0.0),                       # all 3 days: 6 GB-days
               StoredVectorStore("vs_b", GB // 2, created_at=ts("2026-11-22T00:00:00"))]  # 1 day: 0.5 GB-days
    prices = PRICES.model_copy(update={"vector_storage_gb_day": 0.10, "vector_storage_free_gb": 1.0})
    report = usage_report(data, prices, "user", since, until, storage=storage)
    assert report.storage_gb_days == pytest.approx(6.5)
    assert report.storage_cost_usd == pytest.approx((6.5 - 3 * 1.0) * 0.10)     # first GB each day is free
    assert report.total_cost_usd == pytest.approx(sum(COST) + 0.35)
    assert "Vector storage: 6.500 GB-days, USD 0.3500." in format_table(report)


async def test_build_report_reads_the_store(tmp_path):
    async with SqliteStore(tmp_path / "b.db", clock=lambda: ts("2026-11-20T09:00:00")) as store:
        await store.record_usage(assistant="math", platform="console", workspace="", channel="console",
                                 user="alice", model="gpt-4.1-mini", usage=Usage(1_000_000, 0, 1_000_000))
        report = await build_report(store, PricesConfig(), by="assistant", period="7d",
                                    now=ts("2026-11-21T00:00:00"))
    # the shipped example prices for gpt-4.1-mini: 0.40 in + 1.60 out per 1M
    assert report.lines[0].key == "math"
    assert report.total.cost_usd == pytest.approx(0.40 + 1.60)


def test_shipped_prices_merge_with_config_entries():
    prices = PricesConfig.model_validate({"models": {"gpt-4.1": {"input": 3, "output": 9},
                                                     "local-llama": {"input": 0, "output": 0}}})
    assert prices.for_model("gpt-4.1").input == 3
    assert prices.for_model("gpt-4.1-2025-04-14").input == 3
    assert prices.for_model("gpt-4o-mini") is not None      # defaults kept
    assert prices.for_model("local-llama").output == 0
    assert prices.for_model("gpt-5-pro") is None            # no loose prefix match
    with pytest.raises(Exception):
        PricesConfig.model_validate({"models": {"x": {"input": 1, "output": 1, "typo": 2}}})


NOW = ts("2026-11-25T15:30:00")


@pytest.mark.parametrize("text,expected", [
    ("7d", (NOW - 7 * 86400, NOW)),
    ("24h", (NOW - 24 * 3600, NOW)),
    ("2w", (NOW - 14 * 86400, NOW)),
    ("today", (ts("2026-11-25T00:00:00"), NOW)),
    ("2026-11-01", (ts("2026-11-01T00:00:00"), ts("2026-11-02T00:00:00"))),
    ("2026-11-01..2026-11-25", (ts("2026-11-01T00:00:00"), ts("2026-11-26T00:00:00"))),
    ("2026-11-01..", (ts("2026-11-01T00:00:00"), NOW)),
    ("..2026-11-02", (0.0, ts("2026-11-03T00:00:00"))),
])
def test_parse_period(text, expected):
    assert parse_period(text, now=NOW) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "7", "0d", "7y", "yesterdayish", "2026-13-01", "2026-11-25..2026-11-01"])
def test_parse_period_rejects_with_a_readable_message(text):
    with pytest.raises(ValueError, match="Can't read the period"):
        parse_period(text, now=NOW)


def test_usage_command_arguments():
    assert parse_usage_args([]) == UsageQuery("user", "7d", False)
    assert parse_usage_args(["by", "channel", "30d", "--json"]) == UsageQuery("channel", "30d", True)
    assert parse_usage_args(["--by", "day", "--period", "2026-11-01..2026-11-25"]) == \
        UsageQuery("day", "2026-11-01..2026-11-25", False)
    with pytest.raises(ValueError, match="Can't read 'planet': use a grouping \\(user, channel"):
        parse_usage_args(["by", "planet"])


async def test_usage_command_reply(tmp_path):
    async with SqliteStore(tmp_path / "c.db", clock=lambda: ts("2026-11-20T09:00:00")) as store:
        await store.record_usage(assistant="math", platform="slack", workspace="T1", channel="C1", user="U1",
                                 model="m-big", usage=Usage(1000, 200, 300, 1, 1))
        table = await usage_text(store, PRICES, ["channel", "2026-11-20"])
        as_json = await usage_text(store, PRICES, ["--json", "2026-11-20"])
        bad = await usage_text(store, PRICES, ["fortnight"])
    assert table.splitlines()[0] == "Usage by channel, 2026-11-20 UTC"
    assert "| C1 " in table
    assert json.loads(as_json)["total"]["cost_usd"] == pytest.approx(COST[0])
    assert bad.startswith("Can't read 'fortnight'")
