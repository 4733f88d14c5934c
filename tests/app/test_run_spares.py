"""`teambridge run` makes its spare conversations at start, while the platforms connect: the first new thread after
a start takes one (its answer does not wait for a conversation to be made at OpenAI), and a clean stop deletes
the ones still unused. After a restart it makes as many as the last burst of new threads needed."""
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


def spares(openai) -> set[str]:
    return {cid for cid, c in openai.conversations.items() if c["metadata"] == SPARE}


async def test_after_a_restart_the_spares_made_at_start_cover_the_last_burst_of_new_threads(
        openai, discord, run_processes):
    burst = 10   # more than the 4 configured
    rooms = tuple(f"room-{i}" for i in range(burst))
    guild = discord.add_guild("Team", rooms)
    alice = discord.add_user("alice")
    channels = [discord.channel_id(guild, name) for name in rooms]

    async def everyone_asks(round_: int) -> list[str | None]:
        """A new thread in every room at once; the conversation each answer went out on (None: a first turn sent
        without one, because no spare was ready — its conversation is made after the answer)."""
        before = len(openai.response_requests())
        for channel in channels:
            await discord.user_message(channel, alice, f"round {round_}", mention_bot=True)
        await discord.wait_for(lambda: all(any(m.content == f"You said: round {round_}"
                                               for m in discord.messages_in(c, by_bot=True)) for c in channels))
        return [r.get("conversation") for r in openai.response_requests()[before:]]

    bot = await run_processes.running(openai, discord=discord)
    await discord.wait_for(lambda: len(spares(openai)) >= 4)
    await everyone_asks(1)
    await discord.wait_for(lambda: len(spares(openai)) >= burst)   # after the burst the pool grows to its size
    code, _ = await bot.stop(signal.SIGTERM)
    assert code == 0 and spares(openai) == set()                    # a clean stop leaves none at OpenAI

    bot = await run_processes.running(openai, discord=discord)
    await discord.wait_for(lambda: len(spares(openai)) >= burst)   # made at start: the last burst's size
    made_ahead = spares(openai)
    used = await everyone_asks(2)
    assert len(set(used)) == len(used) == burst and set(used) <= made_ahead   # every new thread started from a spare
    code, _ = await bot.stop(signal.SIGTERM)
    assert code == 0
