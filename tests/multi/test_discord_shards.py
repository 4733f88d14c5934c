"""Discord with two shard processes on one PostgreSQL database, against the stand-in Discord (which routes each
guild's events to shard (guild_id >> 22) % 2 and DMs to shard 0, as Discord does) and the stand-in OpenAI."""
from __future__ import annotations

import signal

from bots.standins.discord_server import FakeDiscord
from bots.standins.openai_server import FakeOpenAI
from tests.run_harness import RunProcess

CONFIG = """
default_assistant: food
shutdown_grace_seconds: 5
assistants:
  food:
    model: gpt-4.1-mini
    instructions: You are a food expert.
slack:
  enabled: false
discord:
  enabled: true
  shard_count: 2
  shard_ids: [{shard}]
"""


async def test_two_shard_processes_answer_each_guilds_mention_and_a_dm_exactly_once(tmp_path, postgres_url):
    discord = await FakeDiscord(shards=2).start()
    zero, one = discord.add_guild("Kitchen", shard=0), discord.add_guild("Bakery", shard=1)
    alice = discord.add_user("alice")
    procs: list[RunProcess] = []
    try:
        async with FakeOpenAI() as openai:
            for shard in (0, 1):
                home = tmp_path / f"shard{shard}"
                home.mkdir()
                procs.append(RunProcess(home, openai, discord=discord, config=CONFIG.format(shard=shard),
                                        extra_env={"TEAMBRIDGE_DB": postgres_url,
                                                   "TEAMBRIDGE_INSTANCE": f"shard{shard}"}))
            for proc in procs:
                await (await proc.start()).wait_running(timeout=60)
            assert discord.shard_sessions() == [(0, 2), (1, 2)]   # one gateway connection per shard

            places = {"Kitchen": discord.channel_id(zero, "general"), "Bakery": discord.channel_id(one, "general"),
                      "DM": discord.dm_channel(alice)}
            for name, channel in places.items():
                await discord.user_message(channel, alice, f"what to cook in the {name}?",
                                           mention_bot=name != "DM")
            for name, channel in places.items():
                await discord.wait_for(lambda c=channel, n=name: f"You said: what to cook in the {n}?"
                                       in discord.bot_text(c) and "▌" not in discord.bot_text(c))
            for name, channel in places.items():
                texts = [m.content for m in discord.messages_in(channel, by_bot=True)]
                assert texts == [f"You said: what to cook in the {name}?"], (name, texts)
            assert len(openai.response_requests()) == 3
            assert discord.rate_limited == []   # the global budget is shared, not used twice
            # the slash commands were synced by one process (the one with shard 0), not by each
            assert sum(discord.command_syncs.values()) == 1, discord.command_syncs
            logs = []
            for proc in procs:
                code, log = await proc.stop(signal.SIGTERM)
                assert code == 0, log
                logs.append(log)
            assert "slash commands are synced by the process that runs shard 0" in logs[1]
            assert all("Traceback" not in log for log in logs), logs
    finally:
        for proc in procs:
            await proc.kill()
        await discord.stop()
