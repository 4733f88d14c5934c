"""Shared set-up for the Slack tests: stand-in Slack + real ChatService + SqliteStore + a backend."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from core.config.schema import AssistantConfig, Config, SlackConfig
from core.chat.service import ChatService
from core.store.protocol import Store
from core.store.sqlite import SqliteStore
from bots.slack.app import SlackAdapter
from bots.slack.target import StreamSettings
from bots.standins.slack_server import FakeSlack


def make_config(**slack: Any) -> Config:
    assistants = {"food": AssistantConfig(name="food", model="gpt-test", scope="thread",
                                          description="a food expert")}
    return Config(default_assistant="food", assistants=assistants, slack=SlackConfig(**slack))


def answered(slack: FakeSlack, channel: str, thread: str, text: str | None = None) -> Callable[[], bool]:
    """For `slack.wait_for`: the thread's answer is finished (no message of it still streaming) and, when `text` is
    given, the thread reads `text`."""
    def check() -> bool:
        msgs = slack.bot_messages(channel, thread)
        return bool(msgs) and not any(m.streaming for m in msgs) and (
            text is None or slack.thread_text(channel, thread) == text)
    return check


@dataclass
class Bot:
    slack: FakeSlack
    adapter: SlackAdapter
    service: ChatService
    store: Store


@contextlib.asynccontextmanager
async def running_bot(db: Path, backend: Any, *, slack: FakeSlack | None = None, config: Config | None = None,
                      mode: str = "socket", rate_minute: float = 60.0,
                      stream: StreamSettings = StreamSettings(flush_interval=0.05, status_delay=0),
                      files: Any = None, store: Store | None = None) -> AsyncIterator[Bot]:
    """`store`: an open store to use instead of a new SQLite database at `db` (e.g. PostgreSQL, shared by
    several bots as by several processes). The thinking status goes out at once here (`status_delay=0`), so a
    test that looks at it sees it however fast the scripted model is (tests/slack/test_slack_thinking_status.py
    covers the delay)."""
    own = slack is None
    slack = slack or await FakeSlack().start()
    try:
        async with contextlib.nullcontext(store) if store is not None else SqliteStore(db) as store:
            service = ChatService(config or make_config(mode=mode), store, {"openai": backend}, files=files)
            adapter = SlackAdapter(service, bot_token="xoxb-test", app_token="xapp-test",
                                   signing_secret=slack.signing_secret, api_url=slack.api_url, mode=mode,
                                   http_host="127.0.0.1", http_port=0, rate_minute=rate_minute, stream=stream)
            await adapter.start()
            if mode == "http":
                slack.http_events_url = adapter.http_url
            try:
                yield Bot(slack, adapter, service, store)
            finally:
                await adapter.wait_idle()
                await adapter.stop()
                slack.http_events_url = None
    finally:
        if own:
            await slack.close()
