"""`teambridge run` loses no Discord message to a dropped gateway connection: it resumes its session and Discord
replays what was said meanwhile (bots/discord/session.py). The real CLI in a subprocess, the stand-in Discord and
OpenAI."""
from __future__ import annotations

import signal


async def test_messages_sent_while_the_gateway_connection_was_down_are_answered_after_it(
        openai, discord, run_processes):
    guild = discord.add_guild("Team", ("general",))
    alice = discord.add_user("alice")
    general = discord.channel_id(guild, "general")
    bot = await run_processes.running(openai, discord=discord)

    def answered(question: str) -> bool:
        return any(m.content == f"You said: {question}" for m in discord.messages_in(general, by_bot=True))

    # a frame the bot cannot read ends its connection; the mention right behind it was never read on it
    await discord.send_raw("{not json")
    await discord.user_message(general, alice, "behind a broken frame", mention_bot=True)
    await discord.wait_for(lambda: answered("behind a broken frame"))

    # the network fails, and Discord stays unreachable for a while: a mention is sent meanwhile
    discord.gateway_up = False
    discord.drop_network()
    await discord.user_message(general, alice, "during the outage", mention_bot=True)
    await discord.wait_for(lambda: discord.requests_refused >= 1)   # the bot tried, and was refused
    discord.gateway_up = True
    await discord.wait_for(lambda: answered("during the outage"))

    assert (discord.identifies, discord.resumes) == (1, 2)
    assert "new gateway session" not in bot.log
    code, _ = await bot.stop(signal.SIGTERM)
    assert code == 0
