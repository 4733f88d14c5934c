"""A channel @mention's way in past bolt: which Events API bodies the adapter takes straight from the Socket Mode
envelope (bots/slack/socket_mode.py), and the messages passed on lately, whose second copy is dropped unread."""
from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Callable

from bots.slack.events import is_direct

log = logging.getLogger("teambridge.slack")

RECENT_MESSAGES = 10_000  # (team, channel, ts) of messages passed on lately, for the early duplicate drop


def team_of(body: dict, event: dict, default: str) -> Any:
    """The workspace an event belongs to: the body's team_id, else the event's team, else the app's own
    (not type-checked: the event may not have been parsed yet)."""
    team = body.get("team_id") if isinstance(body.get("team_id"), str) else ""
    return team or event.get("team") or default


class RecentMessages:
    """A channel mention arrives twice (app_mention, then its message.* copy: same channel and ts, other event
    ids) and Slack may retry either. The service's claim in the store answers it once, but each copy would first
    cost a users.info call and a store round trip: the copies this process has already passed on are dropped
    before any of that. (Another process, or this one after a restart, still has the store's claim.)"""

    def __init__(self, size: int = RECENT_MESSAGES) -> None:
        self._size = size
        self._keys: OrderedDict[tuple[str, str, str], None] = OrderedDict()

    def seen(self, team: Any, channel: Any, ts: Any) -> bool:
        """Passed on lately. Takes raw values: only a key made of strings can be here."""
        if type(team) is not str or type(channel) is not str or type(ts) is not str:
            return False
        if (team, channel, ts) in self._keys:
            log.debug("second delivery of %s:%s dropped early", channel, ts)
            return True
        return False

    def first_sight(self, team: str, channel: str, ts: str) -> bool:
        """True the first time (the message is remembered from now on), False for a copy."""
        if self.seen(team, channel, ts):
            return False
        self._keys[(team, channel, ts)] = None
        while len(self._keys) > self._size:
            self._keys.popitem(last=False)
        return True


class MentionPath:
    """The two envelopes every channel @mention brings (app_mention, then its `message` copy) go straight to the
    adapter's `accept`, past bolt's middleware chain and listener matching: about a millisecond of CPU per
    envelope, more than the rest of the way to the model. Only what bolt would hand to the adapter's
    app_mention or message listener unchanged is taken: an app_mention, or a message in a channel or private
    channel (DMs and group DMs stay with bolt: the assistant middleware owns DM threads). bolt's self-event rule
    is kept (our own user's events are dropped; bot_id events are dropped by `should_ignore`), and a copy of a
    message passed on lately is dropped before it is read."""

    def __init__(self, accept: Callable[..., None], recent: RecentMessages, *, bot_user_id: Callable[[], str],
                 team: Callable[[], str]) -> None:
        self._accept = accept
        self._recent = recent
        self._bot_user_id = bot_user_id
        self._team = team

    def take(self, body: dict) -> bool:
        """True when the body was taken (handed on, or dropped as bolt would drop it); False: bolt's."""
        event = body.get("event")
        if not isinstance(event, dict):
            return False
        kind = event.get("type")
        if kind != "app_mention" and not (kind == "message" and event.get("channel_type") in ("channel", "group")
                                          and not is_direct(event)):
            return False
        me = self._bot_user_id()
        if me and event.get("user") == me:
            return True   # our own message: bolt's IgnoringSelfEvents drops these too
        if self._recent.seen(team_of(body, event, self._team()), event.get("channel"), event.get("ts")):
            return True   # the other copy of a message passed on already: nothing to read
        try:
            self._accept(event, body, None, kind=kind)
        except Exception as error:   # as bolt's error handler would report a listener's failure
            log.error("Slack listener error: %s (%s)", error, body.get("type"), exc_info=error)
        return True
