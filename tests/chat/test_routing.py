"""Which conversation a message belongs to, for each assistant scope, and who answers where."""
from __future__ import annotations

import pytest

from core.config.schema import AssistantConfig, ChannelRoute, Config, DiscordConfig, SlackConfig
from core.model import Author, InboundMessage
from core.chat.routing import conversation_key, is_addressed, pick_assistant


def msg(*, user="U1", channel="C1", thread=None, direct=False, platform="slack", mention=True, parents=()):
    return InboundMessage(platform=platform, workspace="T1", channel=channel, author=Author(user), text="hi",
                          thread=thread, is_direct=direct, mentions_bot=mention, channel_parents=parents)


def key(scope: str, m: InboundMessage) -> str:
    return conversation_key(AssistantConfig(name="a", model="m", scope=scope), m).as_string()


@pytest.mark.parametrize("scope, same, different", [
    # thread: two people in one thread share it; another thread is another conversation
    ("thread", (msg(thread="1.1"), msg(user="U2", thread="1.1")), (msg(thread="1.1"), msg(thread="2.2"))),
    # channel: the whole channel is one conversation, threads included
    ("channel", (msg(thread="1.1"), msg(user="U2", thread="2.2")), (msg(), msg(channel="C2"))),
    # user: one person everywhere in the workspace
    ("user", (msg(channel="C1"), msg(channel="C2", thread="3.3")), (msg(), msg(user="U2"))),
    # channel_user: one person in one channel
    ("channel_user", (msg(thread="1.1"), msg(thread="2.2")), (msg(), msg(user="U2"))),
])
def test_scopes_group_messages_as_people_expect(scope, same, different):
    assert key(scope, same[0]) == key(scope, same[1])
    assert key(scope, different[0]) != key(scope, different[1])


def test_direct_messages_always_belong_to_their_one_user():
    for scope in ("thread", "channel"):
        assert key(scope, msg(channel="D1", direct=True)) != key(scope, msg(user="U2", channel="D1", direct=True))


def test_who_answers_explicit_then_choice_then_channel_then_dm_then_platform_then_default():
    config = Config(default_assistant="food",
                    assistants={n: AssistantConfig(name=n, model="m") for n in ("food", "math", "docs", "dm", "sl")},
                    slack=SlackConfig(default_assistant="sl", dm_assistant="dm",
                                      channels={"C9": ChannelRoute(assistant="docs")}))
    assert pick_assistant(config, msg(), preference=None) == "sl"
    assert pick_assistant(config, msg(direct=True, channel="D1"), preference=None) == "dm"
    assert pick_assistant(config, msg(channel="C9"), preference=None) == "docs"
    assert pick_assistant(config, msg(channel="C9"), preference="math") == "math"
    explicit = InboundMessage("slack", "T1", "C9", Author("U1"), "hi", assistant="food")
    assert pick_assistant(config, explicit, preference="math") == "food"
    assert pick_assistant(config, msg(platform="console"), preference=None) == "food"


def test_the_bot_answers_mentions_dms_open_channels_and_its_own_threads_only():
    config = Config(default_assistant="food", assistants={"food": AssistantConfig(name="food", model="m")},
                    discord=DiscordConfig(channels={"CAT": ChannelRoute(respond_without_mention=True)}))
    discord = dict(platform="discord", mention=False)
    assert not is_addressed(config, msg(**discord), bot_owns_thread=False)
    assert is_addressed(config, msg(platform="discord"), bot_owns_thread=False)
    assert is_addressed(config, msg(direct=True, **discord), bot_owns_thread=False)
    assert is_addressed(config, msg(channel="C5", parents=("CAT",), **discord), bot_owns_thread=False)  # category
    assert is_addressed(config, msg(thread="9", **discord), bot_owns_thread=True)
    assert not is_addressed(config, msg(thread="9", **discord), bot_owns_thread=False)
