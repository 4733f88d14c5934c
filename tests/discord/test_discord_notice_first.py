"""A notice before the answer (core/chat/turn.py: a refused file, "the tool server is unavailable") and then the
answer: the answer's first post goes out on the slots its plan queued for (bots/discord/delivery.py), not on new
ones. Found in review: the notice made the first post queue again, the plan's slots stayed taken until the answer
ended — which needed a slot itself — so five such answers in one channel, or a global share's worth, froze."""
from __future__ import annotations

import asyncio

from bots.discord.pacing import Pacers
from bots.standins.discord_server import FakeDiscord
from tests.discord.test_discord import make_adapter
from tests.fakes.discord_chat import StreamingService

WINDOW = 0.5
NOTICE = "⚠️ The tool server “x” is unavailable right now; answering without its tools."


class NoticeFirst(StreamingService):
    async def handle(self, msg, target, *, approver=None) -> None:
        await target.notice(NOTICE)   # what core's AnswerTurn does when a tool server is down
        await super().handle(msg, target, approver=approver)


async def answers_after_notices(tmp_path, channel_names: tuple[str, ...], per_channel: int, pacers: Pacers,
                                channel_limit: int) -> None:
    discord = FakeDiscord(channel_limit=channel_limit, channel_period=WINDOW, global_limit=50)
    await discord.start()
    service = NoticeFirst()
    try:
        discord.guild = discord.add_guild("Team", channel_names)
        alice = discord.add_user("alice")
        channels = [discord.channel_id(discord.guild, name) for name in channel_names]
        adapter = make_adapter(discord, service, tmp_path, pacers=pacers)
        await adapter.start()
        try:
            questions = [(c, f"q{c}-{i}") for c in channels for i in range(per_channel)]
            for channel, q in questions:
                await discord.user_message(channel, alice, q, mention_bot=True)
            streams = [await service.stream_for(q) for _, q in questions]
            for (_, q), stream in zip(questions, streams):
                await stream.text(f"Answer to {q}.")
            # every answer ends and shows whole (a frozen pacer never ends them)
            await asyncio.wait_for(asyncio.gather(*(s.close() for s in streams)), timeout=30)
            for channel, q in questions:
                text = discord.bot_text(channel)
                assert NOTICE in text and f"Answer to {q}." in text
        finally:
            await adapter.stop()
    finally:
        await discord.stop()


async def test_five_answers_after_a_notice_in_one_busy_channel_all_arrive(tmp_path):
    pacers = Pacers(channel_limit=5, channel_period=WINDOW, global_limit=50, global_period=1.0)
    await answers_after_notices(tmp_path, ("general",), 5, pacers, channel_limit=5)


async def test_answers_after_notices_in_three_channels_on_a_global_budget_of_three_all_arrive(tmp_path):
    pacers = Pacers(channel_limit=5, channel_period=WINDOW, global_limit=3, global_period=1.0)
    await answers_after_notices(tmp_path, ("a", "b", "c"), 1, pacers, channel_limit=5)
