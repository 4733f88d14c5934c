"""`teambridge run` for the bench, with Slack's rate "minute" optionally shortened.

    BENCH_SLACK_MINUTE=6 python -m bench.botproc run --config bench.yaml

Without BENCH_SLACK_MINUTE this is exactly `python -m bots.app run`. With it, the Slack adapter's
per-method budgets count a minute of that many seconds, matching the stand-in's shortened minute, so a
bench of 1,000 answers does not spend 100 real minutes in Slack's Tier 2 (20 chat.startStream per minute).
Everything else is the real command. (The adapter takes `rate_minute` as a constructor argument but
`from_env` has no way to set it, hence the default is patched here and only here.)

With BENCH_WRITTEN_OUT=path the process also notes when each request body to the model was written and leaves
{tag: time} in that file at exit (bench/written.py): the bench's check of its own timestamps.
"""
from __future__ import annotations

import os
import sys


def main() -> int:
    written = os.environ.get("BENCH_WRITTEN_OUT")
    if written:   # when each request body to the model was written (bench/written.py), for the bench lag
        from bench.written import install
        install(written)
    minute = os.environ.get("BENCH_SLACK_MINUTE")
    if minute:
        from bots.slack.app import SlackAdapter
        defaults = dict(SlackAdapter.__init__.__kwdefaults__ or {})
        defaults["rate_minute"] = float(minute)
        SlackAdapter.__init__.__kwdefaults__ = defaults
    from bots.app import main as app_main
    return app_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
