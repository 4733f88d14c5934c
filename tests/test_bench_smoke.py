"""The bench harness in its smallest mode: the real `teambridge run` process answers 2 simultaneous
mentions on the Discord stand-in, and the report shows every column with nothing lost.

No timing assertions: the numbers are the bench's business (python -m bench), not a test's.
"""
from __future__ import annotations

import gc

from bench.harness import Scenario, run_scenario
from bench.report import HEADER, markdown_table
from bench.standins import AnswerShape


async def test_two_simultaneous_mentions_on_discord_arrive_whole_and_are_reported(tmp_path):
    shape = AnswerShape(chars=300, delta_chars=20, interval=0.005, first_delay=0.05)
    result = await run_scenario(Scenario(platform="discord", size=2, shape=shape, stall_timeout=30), tmp_path)

    assert result["answers"] == 2
    assert result["completed"] == 2, result.get("bot_log_errors")
    assert result["answers_lost"] == 0
    assert result["chars_lost"] == 0
    assert result["429s"] == 0
    assert result["posts_per_answer"] >= 1
    for key in ("event_to_model_ms", "bot_e2m_written_ms", "bench_lag_ms", "first_visible_ms", "last_visible_ms",
                "event_to_complete_ms"):
        assert result[key]["p50"] is not None and result[key]["p95"] is not None, key
    assert result["cpu_s"] > 0 and result["peak_rss_mb"] > 0
    assert result["first_answer_event_to_model_ms"] > 0   # the process's first answer, reported apart
    # the bench's collector was held for the burst (bench/quietgc.py) and is back to normal afterwards
    assert result["bench_gc"]["collect_freeze_ms"] > 0
    assert gc.isenabled() and gc.get_freeze_count() == 0
    # the bot noted when it wrote each answer's request (bench/written.py): the bench's own lag is measured
    assert result["bench_lag_ms"]["answers"] == 2

    table = markdown_table([result]).splitlines()
    assert table[0] == HEADER
    for column in ("event→model", "bot e→m (written)", "bench lag", "first visible", "last visible", "posts / edits / appends", "429s",
                   "answers / chars lost", "CPU s per 100", "peak RSS MB", "vs baseline"):
        assert column in table[0]
    row = [cell.strip() for cell in table[2].strip("|").split("|")]
    assert len(row) == HEADER.count("|") - 1
    assert row[0] == "discord" and row[1] == "2"
    assert row[10] == "0 / 0"  # answers / chars lost
