"""Confirm / Cancel clicks relayed between processes (core/chat/confirm_relay.py): two CommandSurfaces on one
in-memory signal bus that delivers like NOTIFY (every listener, later on the loop). The end-to-end case — two Slack
bots on one PostgreSQL — is tests/multi/test_confirmations_across_processes.py; these are the timing cases."""
from __future__ import annotations

import asyncio
import logging

import pytest

from core.chat import confirm_relay
from core.chat.commands import CommandSurface
from core.chat.confirm import ConfirmReply, Questions
from core.config.schema import Config
from core.model import Author, InboundMessage
from core.store.signals import Topics


class Bus:
    def __init__(self) -> None:
        self.members: list[Topics] = []


class BusSignals:
    """Shared signals: every process on the bus hears every publish (asynchronously, like NOTIFY)."""
    shared = True

    def __init__(self, bus: Bus) -> None:
        self._topics = Topics()
        self._bus = bus
        bus.members.append(self._topics)

    async def start(self) -> None:
        return None

    async def publish(self, topic: str, payload: str) -> None:
        loop = asyncio.get_running_loop()
        for topics in self._bus.members:
            loop.call_soon(topics.dispatch, topic, payload)

    def listen(self, topic, handler):
        return self._topics.add(topic, handler)

    async def close(self) -> None:
        return None


class Host:
    def __init__(self, tmp_path) -> None:
        self.config = Config.model_validate({
            "default_assistant": "chef", "base_dir": tmp_path, "admins": ["U1"],
            "assistants": {"chef": {"name": "chef", "model": "gpt-test"}}})

    async def reset(self, msg, *, user=None) -> str:
        return ""

    async def choose_assistant(self, msg, name) -> str:
        return ""


class SlowForget:
    """A /forget whose delete at the provider takes `seconds`."""

    def __init__(self, seconds: float) -> None:
        self.questions = Questions(ttl=120)
        self.seconds = seconds
        self.deleted: list[str] = []

    async def __call__(self, msg, rest):
        return "asked"

    def knows(self, key: str) -> bool:
        return self.questions.knows(key)

    async def confirm(self, msg, key, accepted) -> ConfirmReply:
        from core.chat.confirm import Closed, closed_text
        outcome = self.questions.answer(key, msg.author.id, accepted)
        if isinstance(outcome, Closed):
            return ConfirmReply(closed_text(outcome.how, again="Run the command again to start over."))
        await asyncio.sleep(self.seconds)
        self.deleted.append(key)
        return ConfirmReply("Deleted 1 conversation.")


def admin_click() -> InboundMessage:
    return InboundMessage(platform="slack", workspace="T1", channel="C1", author=Author("U1", "admin"), text="",
                          mentions_bot=True)


def two_processes(tmp_path, seconds: float):
    bus = Bus()
    asker, other = CommandSurface(Host(tmp_path), signals=BusSignals(bus)), \
        CommandSurface(Host(tmp_path), signals=BusSignals(bus))
    forget_a, forget_b = SlowForget(seconds), SlowForget(seconds)
    asker.add("forget", forget_a, confirm=forget_a)
    other.add("forget", forget_b, confirm=forget_b)
    key = forget_a.questions.ask("U1", "U2")
    return asker, other, forget_a, f"forget:{key}"


async def test_a_click_on_the_other_process_is_decided_by_the_asking_one(tmp_path):
    asker, other, forget, token = two_processes(tmp_path, seconds=0)
    reply = await other.confirm(admin_click(), token, True)
    assert reply == ConfirmReply("Deleted 1 conversation.") and forget.deleted == [token.split(":")[1]]
    again = await other.confirm(admin_click(), token, True)
    assert again.text == "This was already confirmed." and len(forget.deleted) == 1


async def test_a_click_taken_elsewhere_but_answered_late_is_not_told_nothing_was_done(tmp_path, monkeypatch):
    monkeypatch.setattr(confirm_relay, "RESULT_WAIT", 0.2)
    asker, other, forget, token = two_processes(tmp_path, seconds=1.0)
    reply = await other.confirm(admin_click(), token, True)
    assert reply == ConfirmReply(confirm_relay.TAKEN_NO_ANSWER, settled=False)   # not "nothing was done"
    assert len(asker.tasks) == 1   # the asking process is still at it ...
    await asyncio.wait(asker.tasks)
    assert forget.deleted and not asker.tasks   # ... and does delete


async def test_nobody_took_the_click_is_not_logged_as_taken(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(confirm_relay, "ACK_WAIT", 0.1)
    asker, other, forget, token = two_processes(tmp_path, seconds=0)
    with caplog.at_level(logging.WARNING, logger="teambridge.confirm"):
        reply = await other.confirm(admin_click(), "forget:" + "0" * 32, True)   # a question nobody asked
    assert reply.text.startswith("This question is no longer open — nothing was done.")
    assert "took the click but did not answer" not in caplog.text


async def test_a_shutdown_lets_a_relayed_delete_finish(tmp_path):
    from core.chat.service import ChatService
    from core.store.sqlite import SqliteStore

    bus = Bus()
    async with SqliteStore(tmp_path / "a.db") as store_a:
        store_a.signals = lambda signals=BusSignals(bus): signals   # as if a second process shared the store
        asker = ChatService(Host(tmp_path).config, store_a, {})
        other = CommandSurface(Host(tmp_path), signals=BusSignals(bus))
        forget_a, forget_b = SlowForget(0.5), SlowForget(0.5)
        asker.commands.add("forget", forget_a, confirm=forget_a)
        other.add("forget", forget_b, confirm=forget_b)
        token = "forget:" + forget_a.questions.ask("U1", "U2")
        click = asyncio.ensure_future(other.confirm(admin_click(), token, True))
        while not asker.commands.tasks:
            await asyncio.sleep(0.01)
        assert await asker.shutdown(grace=30) == 0 and forget_a.deleted   # waited for it, not cut off
        assert (await click).text == "Deleted 1 conversation."
