"""The gateway side of the Discord adapter: which intents, which client (sharded or not), whether the gateway
connections are up, which errors retrying cannot heal, and parsers that drop an event instead of the connection."""
from __future__ import annotations

import discord


def gateway_intents() -> discord.Intents:
    """Only the gateway events the bot reads. Discord's default set would also send every typing
    keystroke, reaction, voice state, emoji and invite change of every guild the bot is in — each one
    decoded and turned into objects by discord.py, for nothing. Slash commands need no intent."""
    intents = discord.Intents.none()
    intents.guilds = True            # guilds, channels, threads and roles (GUILD_CREATE, THREAD_*)
    intents.guild_messages = True    # MESSAGE_CREATE in guild channels and threads
    intents.dm_messages = True       # MESSAGE_CREATE in DMs
    intents.message_content = True   # privileged: without it guild message text arrives empty
    return intents


def make_client(config, **options) -> discord.Client:
    """A plain client, or with `discord.shard_count` discord.py's AutoShardedClient running `shard_ids` (default
    all) of them: one gateway connection per shard, guilds on shard (guild_id >> 22) % shard_count, DMs on 0."""
    if config.shard_count is None:
        return discord.Client(**options)
    shard_ids = list(config.shard_ids) if config.shard_ids is not None else None
    return discord.AutoShardedClient(shard_count=config.shard_count, shard_ids=shard_ids, **options)


def gateway_open(client: discord.Client) -> bool:
    """Every gateway connection of this process is open (one per shard when sharded)."""
    if isinstance(client, discord.AutoShardedClient):
        shards = client.shards
        return bool(shards) and not any(info.is_closed() for info in shards.values())
    return client.ws is not None and client.ws.open


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}" if str(exc) else type(exc).__name__


def fatal(exc: BaseException) -> bool:
    """Errors retrying cannot heal: a missing intent, a revoked token, a shard setup Discord refuses."""
    if isinstance(exc, (discord.PrivilegedIntentsRequired, discord.LoginFailure)):
        return True
    return isinstance(exc, discord.ConnectionClosed) and exc.code in (4004, 4010, 4011, 4012, 4013, 4014)


def guard_parsers(client: discord.Client, on_error) -> None:
    """A gateway event discord.py cannot parse (a malformed MESSAGE_CREATE, say `mentions: [1, 2]`) raises
    inside its websocket reader and ends the whole connection. Each parser is wrapped so that such an event
    is dropped with one log line and the connection lives on. READY stays unguarded: without it nothing
    works, and the connection is made again (see DiscordAdapter._supervise).
    The gateway reads this very dict (`DiscordWebSocket._discord_parsers` is `ConnectionState.parsers`)."""
    parsers = client._connection.parsers

    def guarded(event: str, parse):
        def parse_or_drop(data) -> None:
            try:
                parse(data)
            except Exception as exc:
                on_error(event, exc)
        return parse_or_drop

    for event, parse in list(parsers.items()):
        if event != "READY":
            parsers[event] = guarded(event, parse)
