"""A burst of mentions on Discord: the first people to ask are taken up first, while the later messages of the
burst are still being read from the gateway (bots/discord/gateway_turns.py)."""
from __future__ import annotations

from tests.fakes.discord_world import answers_by_question, ask_everyone, world


async def test_each_of_thirty_mentions_sent_at_once_is_taken_up_within_four_frames_of_its_own(tmp_path):
    async with world(tmp_path, channels=("general", "kitchen", "random")) as w:
        channels = [w.channel(n) for n in ("general", "kitchen", "random")]
        parsers = w.adapter.client._connection.parsers
        parse = parsers["MESSAGE_CREATE"]
        read: list[str] = []                 # people's MESSAGE_CREATE frames discord.py has parsed, in order
        taken_up: list[tuple[str, int]] = []  # (message, frames read by then) as the service gets each message

        def counting(data) -> None:
            if data["author"]["id"] != w.discord.bot["id"]:   # the bot's own answers come back on the gateway too
                read.append(data["id"])
            parse(data)
        parsers["MESSAGE_CREATE"] = counting   # the gateway looks its parsers up in this dict per frame
        handle = w.service.handle

        async def noting(msg, target, **kwargs) -> None:
            taken_up.append((msg.message_id, len(read)))
            await handle(msg, target, **kwargs)
        w.service.handle = noting

        expected = await ask_everyone(w, channels, 30, deltas=1)   # 30 mentions sent in one go

        await w.discord.wait_for(lambda: answers_by_question(w, channels) == expected)
        # Each mention went to the service within four frames of its own, not after the whole burst was read.
        assert [mid for mid, _ in taken_up] == read
        assert all(k + 1 <= n <= k + 4 for k, (_, n) in enumerate(taken_up))
