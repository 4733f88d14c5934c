"""Plain messages read from the gateway's payload (bots/discord/plain.py) against discord.py's own reading.

The bot is connected to the stand-in Discord, so discord.py's state holds the guild, its channels, a thread, roles
(the bot's managed role included) and the bot's own member, as it does in production. Each payload is then read
both ways: by the plain reader, and the way the bot reads every other message — discord.py's Message, then
unreadable() and translate(). Whatever the plain reader takes must come out the same InboundMessage; whatever it
passes over as a bot's message must be one the bot does not answer either way; everything else it leaves to
discord.py. The payloads come from the stand-in's builders, then every field is broken in turn.
"""
from __future__ import annotations

import asyncio
import copy
import inspect
import re

import discord
import pytest

from bots.discord.events import ReplyChains, translate, unreadable
from bots.discord.plain import KNOWN_KEYS, SKIP, PlainMessage, read_plain, take_plain_messages
from bots.discord.pacing import Pacers
from bots.discord.client import DiscordAdapter
from bots.standins import discord_payloads as P
from bots.standins.discord_server import FakeDiscord, _public
from core.model import InboundMessage
from tests.fakes.discord_chat import FakeChatService, discord_config

WINDOW = 0.5
ODD_VALUES = (None, 0, 1, 1.5, True, False, "", "x", "１２", " 12", "99999999999999999999999", [], [None], ["1"], {},
              {"id": "1"})


@pytest.fixture
async def world(tmp_path):
    server = FakeDiscord(channel_limit=5, channel_period=WINDOW, global_limit=50)
    await server.start()
    guild = server.guild = server.add_guild("Team", ("general", "random", "open"))
    server.alice = server.add_user("alice")
    server.root = server.add_user("root", admin=True)
    server.bob = server.add_user("bob")
    general = server.channel_id(guild, "general")
    server.thread = P.thread_channel(server.ids.next(), guild["id"], general, "topic", server.alice["id"])
    server.channels[server.thread["id"]] = server.thread
    config = discord_config(channels={server.channel_id(guild, "open"): {"respond_without_mention": True}})
    service = FakeChatService(config=config)
    env = server.env() | {"TEAMBRIDGE_DB": str(tmp_path / "tb.db")}
    adapter = DiscordAdapter.from_env(service, env, guild_ready_timeout=0.05, typing_delay=0,
                                      pacers=Pacers(channel_limit=5, channel_period=WINDOW))
    await adapter.start()
    # The role Discord gives a bot when it joins (managed): "@teambridge" as a role mention addresses the bot.
    server.bot_role = P.role(server.ids.next(), "teambridge", 0, 2) | {"managed": True}
    await server.dispatch("GUILD_ROLE_CREATE", {"guild_id": guild["id"], "role": server.bot_role})
    await server.dispatch("GUILD_MEMBER_UPDATE", {"guild_id": guild["id"], **P.member(server.bot,
                                                                                        [server.bot_role["id"]])})
    cached = adapter.client.get_guild(int(guild["id"]))
    await server.wait_for(lambda: cached.me is not None and any(r.managed for r in cached.me.roles))
    server.adapter, server.config = adapter, config
    yield server
    await adapter.stop()
    await server.stop()


def message(w, channel: str, author: dict, content: str, *, mentions: list[dict] = (), guild: bool = True,
            **fields) -> dict:
    data = P.message(message_id=w.ids.next(), channel_id=channel, author=_public(author), content=content,
                     guild_id=w.guild["id"] if guild else None,
                     member_data=w._member(w.guild["id"], author) if guild else None, mentions=list(mentions))
    return data | fields


def plain_payloads(w) -> dict[str, dict]:
    """Messages as the stand-in sends them, all of which the plain reader takes."""
    general, open_ = w.channel_id(w.guild, "general"), w.channel_id(w.guild, "open")
    me = w.bot
    bobby = _public(w.bob) | {"member": {k: v for k, v in P.member(_public(w.bob), []).items() if k != "user"}
                              | {"nick": "Bobby"}}
    carol = _public(w.add_user("carol")) | {"global_name": None}
    owner = w.owner
    return {
        "mention": message(w, general, w.alice, f"<@{me['id']}> what goes with basil?", mentions=[me]),
        "admin, others named": message(w, general, w.root, f"<@!{me['id']}> ask <@{w.bob['id']}>, <@!{carol['id']}>"
                                       " and <@123>  twice", mentions=[me, bobby, carol]),
        "owner": message(w, general, owner, f"<@{me['id']}> hi", mentions=[me]),
        "in a thread": message(w, w.thread["id"], w.alice, f"<@{me['id']}> and then?", mentions=[me]),
        "DM": message(w, w.dm_channel(w.alice), w.alice, "hello there", guild=False),
        # in a DM a mention's guild nick is not used: the person is named by their own name
        "DM naming someone": message(w, w.dm_channel(w.alice), w.alice, f"ask <@{w.bob['id']}>", guild=False,
                                     mentions=[bobby]),
        "role mention": message(w, general, w.alice, f"<@&{w.bot_role['id']}> anyone?",
                                mention_roles=[w.bot_role["id"]]),
        "other role": message(w, general, w.alice, "<@&1> anyone?", mention_roles=[w.guild["roles"][1]["id"]]),
        "no mention": message(w, general, w.alice, "just chatting"),
        "answers everything": message(w, open_, w.alice, "no mention needed"),
        "nick and spaces": message(w, general, w.alice, f"  <@{me['id']}>\tlots \t of   space ", mentions=[me],
                                   member={"roles": [], "nick": "Ally", "joined_at": P.iso_now(), "flags": 0,
                                           "permissions": "8"}),
        "two roles": message(w, general, w.alice, f"<@{me['id']}> hi", mentions=[me],
                             member=w._member(w.guild["id"], w.alice) | {"roles": [w.bot_role["id"],
                                                                                 w.guild["roles"][1]["id"]]}),
        "lone surrogate": message(w, general, w.alice, f"<@{me['id']}> \ud800 broken", mentions=[me]),
        "long": message(w, general, w.alice, f"<@{me['id']}> " + "x" * 3_900, mentions=[me]),
    }


async def discord_py_reading(w, data: dict):
    """What the bot makes of `data` the usual way: an InboundMessage, "ignored" (not for it) or "dropped"."""
    state = w.adapter.client._connection
    try:
        channel, _ = state._get_guild_channel(data)
        msg = discord.Message(state=state, channel=channel, data=data)   # what parse_message_create builds
    except Exception:
        return "dropped"
    if unreadable(msg) is not None:
        return "dropped"
    try:
        inbound = await translate(msg, state.user, w.config, ReplyChains())
    except Exception:
        return "error notice"
    return "ignored" if inbound is None else inbound


async def both_ways(w, data: dict):
    """The plain reader's verdict, after checking it against discord.py's reading of the same payload."""
    state = w.adapter.client._connection
    plain = read_plain(copy.deepcopy(data), state)
    usual = await discord_py_reading(w, copy.deepcopy(data))
    if isinstance(plain, PlainMessage):
        inbound = plain.inbound(w.config, ReplyChains())
        assert inbound == usual, data
        assert plain.message.id == int(data["id"]) and plain.message.channel.id == int(data["channel_id"])
    elif plain is SKIP:
        assert not isinstance(usual, InboundMessage), data
    return plain, usual


async def test_plain_messages_read_the_same_as_discord_py_reads_them(world):
    w = world
    seen = {}
    for name, data in plain_payloads(w).items():
        plain, usual = await both_ways(w, data)
        assert isinstance(plain, PlainMessage), name
        seen[name] = usual
    # What the user's words become (the same both ways, checked above)
    assert seen["mention"].text == "what goes with basil?" and seen["mention"].thread == seen["mention"].message_id
    assert seen["admin, others named"].text == "ask @Bobby, @carol and <@123> twice"   # his nickname here
    assert seen["admin, others named"].author.is_admin and seen["owner"].author.is_admin
    assert seen["admin, others named"].author.roles == (w.guild["roles"][1]["id"],)
    assert not seen["mention"].author.is_admin and seen["mention"].author.name == "alice"
    assert (seen["in a thread"].channel, seen["in a thread"].thread) == (w.channel_id(w.guild, "general"),
                                                                          w.thread["id"])
    assert seen["DM"].is_direct and seen["DM"].workspace == "" and seen["DM"].thread is None
    assert seen["role mention"].mentions_bot and not seen["other role"].mentions_bot
    assert not seen["no mention"].mentions_bot and seen["answers everything"].thread is None
    assert seen["nick and spaces"].text == "lots of space" and seen["nick and spaces"].author.name == "Ally"
    assert seen["lone surrogate"].text == "\ufffd broken"
    assert seen["two roles"].author.roles == (w.guild["roles"][1]["id"], w.bot_role["id"])   # by position


async def test_other_messages_are_left_to_discord_py(world):
    w = world
    general = w.channel_id(w.guild, "general")
    base = plain_payloads(w)["mention"]
    att = P.attachment(w.ids.next(), "a.txt", 3, f"{w.base}/attachments/x/a.txt", "text/plain")
    others = {
        "reply": base | {"type": 19, "message_reference": {"message_id": base["id"], "channel_id": general}},
        "attachment": base | {"attachments": [att]},
        "embed": base | {"embeds": [{"title": "x"}]},
        "webhook": base | {"webhook_id": w.ids.next()},
        "thread starter": base | {"thread": w.thread},
        "poll": base | {"poll": {}},
        "edited": base | {"edited_timestamp": P.iso_now()},
        "unknown channel": base | {"channel_id": "42"},
        "unknown guild": base | {"guild_id": "42"},
        "too long": base | {"content": "x" * 4_001},
        "system message": base | {"type": 7},
    }
    for name, data in others.items():
        plain, _ = await both_ways(w, data)
        assert plain is None, name
    mine = base | {"author": _public(w.bot), "components": [{"type": 1, "components": []}]}
    other_bot = base | {"author": _public(w.alice) | {"bot": True}}
    for data in (mine, other_bot):
        plain, usual = await both_ways(w, data)
        assert plain is SKIP and usual == "ignored"


async def test_every_broken_field_is_read_as_discord_py_reads_it_or_left_to_it(world):
    """Each field of each plain payload (nested ones too) replaced by odd values or removed: the plain reader
    either reads the result exactly as discord.py does or leaves it to discord.py (which drops it with one
    log line, or reads it)."""
    w = world
    taken = left = 0

    def variants(data: dict):
        for key in list(data):
            yield {k: v for k, v in data.items() if k != key}
            for odd in ODD_VALUES:
                yield data | {key: odd}

    for data in plain_payloads(w).values():
        cases = list(variants(data))
        for nested in ("author", "member"):
            if isinstance(data.get(nested), dict):
                cases += [data | {nested: v} for v in variants(data[nested])]
        for i, mention in enumerate(data["mentions"]):
            for v in variants(mention):
                cases.append(data | {"mentions": data["mentions"][:i] + [v] + data["mentions"][i + 1:]})
            if isinstance(mention.get("member"), dict):
                for v in variants(mention["member"]):
                    changed = mention | {"member": v}
                    cases.append(data | {"mentions": data["mentions"][:i] + [changed] + data["mentions"][i + 1:]})
        for case in cases:
            plain, _ = await both_ways(w, case)
            taken += isinstance(plain, PlainMessage)
            left += plain is None
        await asyncio.sleep(0)   # (the bot's gateway heartbeats meanwhile)
    assert taken > 100 and left > 1_000   # both kinds were met


async def test_a_plain_mention_is_answered_without_discord_py_building_the_message(world):
    w = world
    ch = w.channel_id(w.guild, "general")
    mid = await w.user_message(ch, w.alice, "what goes with basil?", mention_bot=True)
    await w.wait_for(lambda: any(m.content == "You said: what goes with basil?"
                                 for m in w.messages_in(ch, by_bot=True)))
    (answer,) = w.messages_in(ch, by_bot=True)
    assert answer.reference_id == mid
    assert w.adapter.client.get_channel(int(ch)).last_message_id == int(mid)   # kept as discord.py's parser keeps it
    # A reply to the answer has a reference: discord.py reads it (and the chain continues the conversation).
    await w.user_message(ch, w.alice, "and with mint?", reply_to=answer.id)
    await w.wait_for(lambda: any(m.content == "You said: and with mint?" for m in w.messages_in(ch, by_bot=True)))
    first, second = w.adapter._service.handled
    assert second.thread == first.thread == mid
    assert w.adapter.plain_messages == 1


async def test_a_role_of_the_bots_own_and_an_administrator_everyone_read_as_discord_py_reads_them(world):
    """Bots are often given a role by hand beside their managed one, and small servers give @everyone Administrator:
    mentioning the hand-given role does not address the bot, and everyone is an admin — both readings agree."""
    w = world
    g = w.guild
    general = w.channel_id(g, "general")
    helpers = P.role(w.ids.next(), "helpers", 0, 3)    # not managed
    await w.dispatch("GUILD_ROLE_CREATE", {"guild_id": g["id"], "role": helpers})
    await w.dispatch("GUILD_MEMBER_UPDATE", {"guild_id": g["id"], **P.member(w.bot, [w.bot_role["id"], helpers["id"]])})
    everyone = dict(g["roles"][0]) | {"permissions": "8"}
    await w.dispatch("GUILD_ROLE_UPDATE", {"guild_id": g["id"], "role": everyone})
    cached = w.adapter.client.get_guild(int(g["id"]))
    await w.wait_for(lambda: len(cached.me.roles) == 3 and cached.default_role.permissions.administrator)

    plain, usual = await both_ways(w, message(w, general, w.alice, f"<@&{helpers['id']}> anyone?",
                                              mention_roles=[helpers["id"]]))
    assert isinstance(plain, PlainMessage)
    assert not usual.mentions_bot
    plain, usual = await both_ways(w, message(w, general, w.alice, f"<@{w.bot['id']}> hi", mentions=[w.bot]))
    assert isinstance(plain, PlainMessage) and usual.author.is_admin


async def test_people_discord_py_holds_in_its_cache_are_left_to_it(world):
    """discord.py reads a cached member from its cache, not from the payload: such a message is not plain."""
    w = world
    g = w.guild
    general = w.channel_id(g, "general")
    state = w.adapter.client._connection
    guild = w.adapter.client.get_guild(int(g["id"]))
    bob = discord.Member(data=P.member(_public(w.bob), []) | {"nick": "Bobby"}, guild=guild, state=state)
    guild._add_member(bob)
    try:
        plain, _ = await both_ways(w, message(w, general, w.bob, f"<@{w.bot['id']}> hi", mentions=[w.bot]))
        assert plain is None   # author cached
        plain, _ = await both_ways(w, message(w, general, w.alice, f"<@{w.bot['id']}> ask <@{w.bob['id']}>",
                                              mentions=[w.bot, _public(w.bob)]))
        assert plain is None   # a mentioned person cached
    finally:
        guild._remove_member(bob)


def test_with_a_member_cache_the_plain_reader_stays_out():
    """With the members intent and a member cache, discord.py's Users and Members can carry names the payload no
    longer has: the plain reader is not installed, every message goes to discord.py's parser."""
    intents = discord.Intents.default()
    intents.members = True
    client = discord.Client(intents=intents, member_cache_flags=discord.MemberCacheFlags.all())
    state = client._connection
    before = state.parsers["MESSAGE_CREATE"]
    take_plain_messages(state, lambda plain: None)
    assert state.parsers["MESSAGE_CREATE"] is before
    bare = discord.Client(intents=discord.Intents.default(), member_cache_flags=discord.MemberCacheFlags.none())
    take_plain_messages(bare._connection, lambda plain: None)
    assert bare._connection.parsers["MESSAGE_CREATE"] is not before


def test_every_key_discord_py_reads_from_a_message_is_one_the_plain_reader_knows():
    """The reader decides from the keys discord.py's Message reads (discord.py >= 2.4 is allowed): a newer
    discord.py reading a key this list does not know fails here, before it could be read differently."""
    source = inspect.getsource(discord.Message.__init__)
    read = set(re.findall(r"data(?:\[|\.get\()['\"](\w+)['\"]", source))
    for handlers in re.findall(r"for handler in \(([^)]*)\)", source):   # data[handler] for each of these
        read |= set(re.findall(r"'(\w+)'", handlers))
    assert read, "discord.py's Message no longer reads its payload where this test looks"
    assert read <= KNOWN_KEYS, sorted(read - KNOWN_KEYS)


@pytest.fixture
def failing_hand_over(monkeypatch):
    """The adapter's hand-over of a plain message fails (whatever the cause): installed before `world` starts it."""
    def fail(self, plain):
        raise RuntimeError("hand-over failed")
    monkeypatch.setattr(DiscordAdapter, "_take_plain", fail)


async def test_a_failure_handing_a_plain_message_over_drops_that_event_not_the_connection(failing_hand_over, world):
    w = world
    ch = w.channel_id(w.guild, "general")
    await w.user_message(ch, w.alice, "what goes with basil?", mention_bot=True)
    await w.wait_for(lambda: w.adapter.dropped_events == 1)   # one log line, as for any event discord.py can't read
    assert w.adapter.reconnects == 0 and w.adapter.connected
