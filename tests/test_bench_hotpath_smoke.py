"""`python -m bench.hotpath` in its smallest mode: the real `teambridge run` process (bench.hotbot) answers a burst
of 2 mentions on the Discord stand-in inside a CPU window, then a profiled burst, and the report holds what the
bench prints. No timing assertions: only that a window was measured and the profile counted calls."""
from __future__ import annotations

from bench.hotpath import run, table


async def test_a_burst_is_measured_inside_its_cpu_window_and_a_profiled_burst_counts_calls(tmp_path):
    result = await run("discord", 2, 1, 1, workdir=tmp_path)

    plain, profiled = result["windows"]
    assert not plain["profiled"] and profiled["profiled"]
    assert plain["cpu_s"] > 0 and plain["loop_cpu_s"] > 0 and plain["cpu_us_per_message"] > 0
    assert plain["conversations_created"] >= 0 and plain["gc_collections"] >= 0
    assert profiled["calls_per_message"] > 0 and profiled["top_self"]
    assert (tmp_path / "hotpath-discord-2.pstats").exists()
    assert result["cpu_us_per_message"] == plain["cpu_us_per_message"]
    # the bot noted when it wrote each request (bench/written.py): the bench's own lag is measured per burst
    assert plain["bench_lag_ms_p50"] is not None and plain["bot_e2m_written_ms_p50"] is not None
    row = table([result]).splitlines()[2]
    assert row.startswith("| discord | 2 | 1 | ")
