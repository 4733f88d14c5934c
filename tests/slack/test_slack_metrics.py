"""Slack's rate limits as an operator sees them: 429s, retries and budget waits counted in the metrics."""
from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from core.admin.metrics import Metrics
from tests.fakes.slack_harness import running_bot
from bots.standins.slack_server import FakeSlack
from tests.support.ports import ScriptedBackend


async def test_429s_retries_and_budget_waits_are_counted(tmp_path):
    # Our budget lets chat.postMessage go 60 per "minute" per channel; this Slack allows 2 per window.
    async with FakeSlack(rate_minute=0.3, retry_after=0, post_message_per_channel=2) as slack:
        async with running_bot(tmp_path / "db", ScriptedBackend(), slack=slack, rate_minute=0.3) as bot:
            metrics = Metrics(CollectorRegistry())
            bot.service.observer = metrics
            await asyncio.gather(*(bot.adapter.client.chat_postMessage(channel="C1", markdown_text=f"note {i}")
                                   for i in range(4)))
            # more chat.update calls than its tier allows in one window: later ones wait for the budget
            ts = (await bot.adapter.client.chat_postMessage(channel="C2", markdown_text="x"))["ts"]
            await asyncio.gather(*(bot.adapter.client.chat_update(channel="C2", ts=ts, markdown_text=f"x{i}")
                                   for i in range(60)))

    def value(name: str) -> float:
        return metrics.registry.get_sample_value(name, {"platform": "slack"}) or 0

    assert value("teambridge_platform_rate_limited_total") == len(slack.rate_limited) > 0
    assert value("teambridge_platform_retries_total") == len(slack.rate_limited)
    assert value("teambridge_rate_budget_waits_total") > 0
    assert value("teambridge_rate_budget_wait_seconds_total") > 0
