"""discord.py's rate-limit buckets in a bot that answers in many channels (bots/discord/paced_http.sweep_seldom):
unused ones still go, but a new bucket no longer walks all the others."""
from __future__ import annotations

import asyncio

from discord.http import HTTPClient, Ratelimit

from bots.discord.paced_http import sweep_seldom


async def test_a_new_bucket_does_not_walk_every_other_one_and_unused_ones_still_go(monkeypatch):
    http = HTTPClient(asyncio.get_running_loop())
    sweep_seldom(http)
    looked_at = [0]
    inactive = Ratelimit.is_inactive

    def counted(self):
        looked_at[0] += 1
        return inactive(self)
    monkeypatch.setattr(Ratelimit, "is_inactive", counted)

    for i in range(1000):   # a first post in each of 1,000 channels
        http.get_ratelimit(f"POST /channels/{i}/messages:{i}")
    # discord.py alone walks every bucket for each new one past 256: ~470,000 looks here
    assert looked_at[0] < 2 * 1000

    for bucket in http._buckets.values():   # five minutes later, none of them used since
        bucket._last_request -= 301
    for i in range(1000, 1030):
        http.get_ratelimit(f"POST /channels/{i}/messages:{i}")
    assert len(http._buckets) < 40          # the unused ones went with the next walk
    assert "POST /channels/1029/messages:1029" in http._buckets
    await http.close()
