"""Who wrote a message: users.info, cached per workspace, one request per person at a time.

users.info is Tier 4 (100 per minute per workspace) and sits on the path from a mention to the model, so
every call avoided is latency saved when many people write at once. People's names and admin flags change
rarely: an entry lives for `ttl` seconds (an hour by default; a promoted or demoted admin is seen within
that time: commands wait for a fresh look-up, a message after the expiry goes on with what was known while the
look-up refreshes it), the directory keeps the `max_entries` most recently used people, and a person whose 50
mentions arrive together is looked up once, all 50 waiting for the same request.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from core.model import Author
from bots.slack.ratelimit import RateBudget

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Entry:
    author: Author | None     # None: Slack refused to tell (missing users:read, a user of another org)
    expires: float


class UserDirectory:
    def __init__(self, client: AsyncWebClient, *, ttl: float = 3600.0, failure_ttl: float = 300.0,
                 max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic,
                 budget: RateBudget | None = None) -> None:
        self._client = client
        self._budget = budget     # the workspace's budgets: a look-up that must queue for users.info is not waited for
        self._queued: set[tuple[str, str]] = set()   # look-ups that found no free slot when they began
        self._unstarted: set[tuple[str, str]] = set()  # look-ups whose task has not reached the budget yet
        self._ttl, self._failure_ttl = ttl, failure_ttl
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._inflight: dict[tuple[str, str], asyncio.Task[_Entry]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def author(self, user_id: str, *, team: str = "", fallback_name: str = "",
                     wait: float | None = None) -> Author:
        """The person, with display name and workspace-admin flag; on a refusal from Slack, the id and
        `fallback_name` (the answer goes on without a name rather than not at all).

        `wait`: at most this long for a person not known yet; past it the id and `fallback_name` are returned
        while the look-up goes on and fills the directory. users.info is Tier 4 (~100/min per workspace): a
        burst of new people must not hold their answers back behind it — a look-up that had to queue for the
        budget (`budget`) is not waited for at all. A person known before whose entry has expired is not waited
        for either (a message goes on with the name and flag last seen while the look-up refreshes them): only
        someone never seen in this process costs a message the look-up's round trip. Without `wait` (commands:
        admin rights come from the same look-up) an expired entry is asked again and waited for."""
        key = (team, user_id)
        entry = self._entries.get(key)
        if entry is not None and (entry.expires > self._clock() or wait is not None):
            self._entries.move_to_end(key)
            if entry.expires <= self._clock() and key not in self._inflight:
                self._start(key)   # expired: a message goes on with what is known, the look-up refreshes it
            return self._or_fallback(entry, user_id, fallback_name)
        task = self._inflight.get(key)
        if task is None:
            task = self._start(key)
        if wait is not None and key in self._queued:
            return Author(id=user_id, name=fallback_name)   # a burst of new people: no waiting for what is queued
        if wait is not None:
            done, _ = await asyncio.wait({task}, timeout=wait)  # never cancels the look-up
            if not done:
                return Author(id=user_id, name=fallback_name)
        # shield: one waiter giving up (its answer cancelled at shutdown) must not cancel the others' lookup
        entry = await asyncio.shield(task)
        return self._or_fallback(entry, user_id, fallback_name)

    def _start(self, key: tuple[str, str]) -> asyncio.Task[_Entry]:
        # the look-ups begun before this one take the budget's free slots first
        if self._budget is not None and self._budget.room("users.info") <= len(self._unstarted):
            self._queued.add(key)   # behind a full minute of users.info: its answer is far off
        self._unstarted.add(key)
        task = asyncio.create_task(self._lookup(key), name=f"slack-users.info-{key[1]}")
        self._inflight[key] = task
        task.add_done_callback(lambda t, key=key: self._settle(key, t))
        return task

    def forget(self, user_id: str, *, team: str = "") -> None:
        self._entries.pop((team, user_id), None)

    @staticmethod
    def _or_fallback(entry: _Entry, user_id: str, fallback_name: str) -> Author:
        if entry.author is None:
            return Author(id=user_id, name=fallback_name)
        if not entry.author.name and fallback_name:
            return replace(entry.author, name=fallback_name)
        return entry.author

    async def _lookup(self, key: tuple[str, str]) -> _Entry:
        user_id = key[1]
        self._unstarted.discard(key)   # from here to the budget's slot nothing waits: the count stays exact
        try:
            u = (await self._client.users_info(user=user_id))["user"]
        except SlackApiError as e:
            # users:read missing or a user from another org: remembered for a while, so that every
            # mention of such a person does not spend a Tier 4 call on the same refusal
            log.warning("users.info failed for %s (%s)", user_id, e.response.get("error"))
            return _Entry(None, self._clock() + self._failure_ttl)
        profile = u.get("profile") or {}
        author = Author(id=user_id, name=profile.get("display_name") or profile.get("real_name")
                        or u.get("real_name") or u.get("name") or "",
                        is_admin=bool(u.get("is_admin") or u.get("is_owner")))
        return _Entry(author, self._clock() + self._ttl)

    def _settle(self, key: tuple[str, str], task: asyncio.Task[_Entry]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
            self._queued.discard(key)
            self._unstarted.discard(key)   # cancelled before it began
        if task.cancelled() or task.exception() is not None:
            return  # not cached: the waiters got the error, the next mention asks again
        self._entries[key] = task.result()
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
