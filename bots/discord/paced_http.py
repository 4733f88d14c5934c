"""discord.py's own REST requests go through the bot's global budget too.

Answers ask the pacers for their slots before they send (bots/discord/target.py), but discord.py also makes
requests of its own — at start-up who the bot is (`GET /users/@me`), the application (`GET
/oauth2/applications/@me`), the slash-command sync (`PUT .../commands`); on a real connection also the gateway's
address (`GET /gateway/bot`) — and some of ours reach it without a slot (fetching a message to mark it interrupted, an
approval's message). Discord counts every one of them against the same 50 requests/s, so a burst of answers
right after start-up (messages that waited while the bot was down, say) would find the window partly spent by
requests the pacer never saw, and get 429s.

Every request that reaches discord.py's HTTP client without a slot is therefore given one here (urgent: behind
first messages, ahead of progress edits). Interaction callbacks and webhooks (slash-command answers, clicks)
don't pass through this client, and Discord does not count them against the global limit either.

discord.py keeps a rate-limit bucket per route and channel, and once it holds 256 of them it walks all of them for
ones unused for 5 minutes each time it makes a new one: in a bot answering in hundreds of channels, every answer's
first post and first edit walked hundreds of buckets (a good share of the bot's CPU per answer in a burst). The walk
is kept but made only when the count has doubled since the last one (`sweep_seldom`): the same buckets go, memory
stays within twice the live ones, and a new bucket costs O(1) on average.
"""
from __future__ import annotations

from typing import Any

from discord.http import HTTPClient, Route

BUCKETS_BEFORE_SWEEP = 256   # discord.py's own threshold

from bots.discord.pacing import HOLDING, Pacer


def pace_requests(http: HTTPClient, budget: Pacer) -> None:
    """From now on `http`'s requests made without a slot (pacing.HOLDING) wait for one from `budget`."""
    request = http.request

    async def paced(route: Route, **kwargs: Any) -> Any:
        if HOLDING.get():
            return await request(route, **kwargs)
        async with budget.slot(urgent=True):
            return await request(route, **kwargs)

    http.request = paced  # type: ignore[method-assign]  # discord.py calls self.request for every REST route
    sweep_seldom(http)


def sweep_seldom(http: HTTPClient) -> None:
    """discord.py's walk over its buckets for unused ones (see the module's docstring), made only when their number
    has doubled since the last walk."""
    sweep = http._try_clear_expired_ratelimits
    floor = [BUCKETS_BEFORE_SWEEP]

    def seldom() -> None:
        if len(http._buckets) < floor[0]:
            return
        sweep()
        floor[0] = max(BUCKETS_BEFORE_SWEEP, 2 * len(http._buckets))

    http._try_clear_expired_ratelimits = seldom  # type: ignore[method-assign]  # called by get_ratelimit()
