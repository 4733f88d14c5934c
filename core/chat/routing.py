"""Which assistant answers a message, whether the bot is addressed at all, and which conversation it belongs to."""
from __future__ import annotations

from dataclasses import dataclass, field

from core.config.schema import AssistantConfig, ChannelRoute, Config
from core.model import ConversationKey, InboundMessage


@dataclass(frozen=True, slots=True)
class PlatformRules:
    """What routing and access read from a platform's config section (the same questions for every platform)."""
    channels: dict[str, ChannelRoute] = field(default_factory=dict)
    default_assistant: str | None = None
    dm_assistant: str | None = None
    allow_dms: bool = True
    follow_threads: bool = True


def platform_rules(config: Config, platform: str) -> PlatformRules:
    match platform:
        case "slack":
            s = config.slack
            return PlatformRules(s.channels, s.default_assistant, s.dm_assistant, s.allow_dms, s.follow_threads)
        case "discord":
            d = config.discord
            return PlatformRules(d.channels, d.default_assistant, d.dm_assistant, d.allow_dms)
        case "console":
            return PlatformRules(default_assistant=config.console.assistant)
        case _:
            return PlatformRules()


def channel_route(config: Config, msg: InboundMessage, rules: PlatformRules | None = None) -> ChannelRoute | None:
    """The route of the message's channel, else of its parents (category, a thread's channel). `rules`: the
    platform's, when the caller has them already."""
    return route_for(config, msg.platform, msg.channel, msg.channel_parents, rules)


def route_for(config: Config, platform: str, channel: str, parents: tuple[str, ...] = (),
              rules: PlatformRules | None = None) -> ChannelRoute | None:
    """channel_route for a message not built yet (an adapter deciding its thread)."""
    routes = (rules or platform_rules(config, platform)).channels
    if not routes:
        return None
    if channel in routes:
        return routes[channel]
    for parent in parents:
        if parent in routes:
            return routes[parent]
    return None


def is_addressed(config: Config, msg: InboundMessage, *, bot_owns_thread: bool) -> bool:
    """True when the bot should answer: a mention, a DM, an open channel, or a follow-up in its own thread."""
    if msg.platform == "console" or msg.assistant is not None:
        return True  # console lines and slash commands are always meant for the bot
    if msg.is_direct:
        return True  # DMs are answered, or refused with a reason (allow_dms) by the service
    if msg.mentions_bot:
        return True
    route = channel_route(config, msg)
    if route is not None and route.respond_without_mention:
        return True
    if msg.thread and bot_owns_thread:
        follow = route.follow_threads if route is not None else platform_rules(config, msg.platform).follow_threads
        return bool(follow)
    return False


def pick_assistant(config: Config, msg: InboundMessage, *, preference: str | None) -> str:
    """Explicit choice > the user's /assistant choice here > channel route > DM default > platform default > global."""
    rules = platform_rules(config, msg.platform)
    route = channel_route(config, msg, rules)
    for name in (msg.assistant, preference, route.assistant if route else None,
                 rules.dm_assistant if msg.is_direct else None, rules.default_assistant):
        if name:
            return name
    return config.default_assistant


def preference_scope(msg: InboundMessage) -> str:
    """Where a user's /assistant choice applies: this user in this channel."""
    return f"assistant:{msg.platform}:{msg.workspace}:{msg.channel}:{msg.author.id}"


def conversation_key(assistant: AssistantConfig, msg: InboundMessage) -> ConversationKey:
    """Apply the assistant's scope. DMs always belong to their one user."""
    user = msg.author.id
    thread = msg.thread or ""
    match assistant.scope:
        case "thread":
            key = ConversationKey(msg.platform, msg.workspace, msg.channel, thread, user if msg.is_direct else "")
        case "channel":
            key = ConversationKey(msg.platform, msg.workspace, msg.channel, "", user if msg.is_direct else "")
        case "user":
            key = ConversationKey(msg.platform, msg.workspace, "", "", user)
        case "channel_user":
            key = ConversationKey(msg.platform, msg.workspace, msg.channel, "", user)
    return key
