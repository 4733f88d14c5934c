"""`teambridge run` makes its spare conversations at start, while the platforms connect: the first new thread after
a start takes one (its answer does not wait for a conversation to be made at OpenAI), and a clean stop deletes
the ones still unused."""
from __future__ import annotations

import signal

from bots.standins.openai_server import ScriptedResponse

SPARE = {"teambridge": "spare"}


async def test_the_first_new_thread_after_a_start_starts_from_a_spare_and_a_clean_stop_leaves_none(
        openai, discord, run_processes):
    guild = discord.add_guild("Team", ("general",))
    alice = discord.add_user("alice")
    general = discord.channel_id(guild, "general")
    bot = await run_processes.running(openai, discord=discord)
    # nobody has asked anything yet: the configured four are made ahead all the same
    await discord.wait_for(lambda: len(openai.conversations) >= 4)
    made_ahead = set(openai.conversations)
    assert all(c["metadata"] == SPARE for c in openai.conversations.values())

    openai.script(ScriptedResponse(text="Tomatoes, mozzarella and olive oil."))
    await discord.user_message(general, alice, "what goes with basil?", mention_bot=True)
    await discord.wait_for(lambda: any(m.content == "Tomatoes, mozzarella and olive oil."
                                       for m in discord.messages_in(general, by_bot=True)))
    (used,) = {openai.conversation_of(r) for r in openai.response_requests()}
    assert used in made_ahead                      # the answer went out on a spare made at start
    await discord.wait_for(lambda: openai.conversations[used]["metadata"].get("user_id") == alice["id"])

    code, _ = await bot.stop(signal.SIGTERM)
    assert code == 0
    assert set(openai.conversations) == {used}     # the unused spares deleted at OpenAI, none left behind
