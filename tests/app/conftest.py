"""The stand-ins that the `teambridge run` processes of these tests talk to (the processes themselves: the fixture
`run_processes`, tests/run_harness.py). Ask for `run_processes` after them: it is torn down first, so no bot
outlives the stand-ins it talks to."""
from __future__ import annotations

import pytest

from bots.standins.discord_server import FakeDiscord
from bots.standins.openai_server import FakeOpenAI
from bots.standins.slack_server import FakeSlack


@pytest.fixture
async def openai():
    async with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
async def slack():
    fake = await FakeSlack().start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
async def discord():
    fake = await FakeDiscord().start()
    try:
        yield fake
    finally:
        await fake.stop()
