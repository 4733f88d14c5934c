"""The slash command (/teambridge by default): `ask` here (it posts a thread root), every other subcommand
through core's command surface. Everything but `ask` is answered ephemerally via response_url."""
from __future__ import annotations

import logging
import re
from dataclasses import replace
from functools import partial
from typing import Any, Awaitable, Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from core.chat.commands import ERROR_NOTICE, CommandSpec, plain_usage
from core.model import Author, InboundMessage
from bots.slack.confirm import confirm_blocks
from bots.slack.markdown import escape_mrkdwn, to_mrkdwn
from bots.slack.target import ReplyPlace

log = logging.getLogger(__name__)
_MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")  # how Slack escapes a user mention in command text

Respond = Callable[..., Awaitable[Any]]
Answer = Callable[[InboundMessage, ReplyPlace], Awaitable[None]]


class SlashCommands:
    def __init__(self, service: Any, client: AsyncWebClient, *, answer: Answer,
                 author: Callable[..., Awaitable[Author]]) -> None:
        self._service = service
        self._client = client
        self._answer = answer      # runs service.handle with a reply target for the place
        self._author = author

    async def run(self, body: dict, respond: Respond) -> None:
        text = (body.get("text") or "").strip()
        sub, _, rest = text.partition(" ")
        sub, rest = sub.lower(), rest.strip()
        channel, user, team = body.get("channel_id", ""), body.get("user_id", ""), body.get("team_id", "")

        async def reply(t: str) -> None:
            await respond(text=to_mrkdwn(t), response_type="ephemeral", replace_original=False)

        configured = self._service.config.slack.slash_command
        if body.get("command") and body["command"] != configured:
            # Another command of the same app (the manifest decides what Slack sends): not ours to answer.
            await reply(f"This app answers `{configured}` — try `{configured} help`.")
            return
        try:
            author = await self._author(user, body.get("user_name", ""), team=team)
        except Exception:
            log.exception("slash command %r: could not look up %s", sub, user)
            await reply(ERROR_NOTICE)
            return
        msg = InboundMessage(platform="slack", workspace=team, channel=channel, author=author, text=rest,
                             is_direct=channel.startswith("D"), mentions_bot=True,
                             event_id=f"command:{body.get('trigger_id', '')}")
        style = partial(slack_usage, command=configured)
        if sub == "ask":  # posts a thread root in the channel: Slack's own
            if not rest:
                await reply(f"Usage: {style(ask_spec(self._service))}")
                return
            try:
                await self._ask(msg, rest, respond=reply)
            except Exception:
                log.exception("slash command ask failed in %s", channel)
                await reply(ERROR_NOTICE)
            return
        # Slack escapes a mention in command text as <@U123|name>: core wants the id.
        answer = await self._service.commands.run(msg, sub or "help", _MENTION.sub(r"\1", rest), style=style)
        if answer.confirm is not None:   # the command asks first: Confirm / Cancel under its reply
            text = to_mrkdwn(answer.text)
            await respond(text=text, blocks=confirm_blocks(text, answer.confirm), response_type="ephemeral",
                          replace_original=False)
            return
        await reply(answer.text)

    async def _ask(self, msg: InboundMessage, question: str, *, respond: Callable[[str], Awaitable[None]]) -> None:
        # A slash command has no message to reply to, and native streams live only in threads: post the
        # question as the thread root, then answer in its thread like a mention.
        try:
            root = await self._client.chat_postMessage(
                channel=msg.channel, text=f"<@{msg.author.id}> asked: {escape_mrkdwn(question)}")
        except SlackApiError as e:
            if e.response.get("error") in ("not_in_channel", "channel_not_found"):
                await respond("I can't post in this channel. Invite me first (`/invite @teambridge`), or DM me.")
                return
            raise
        ts = str(root["ts"])
        place = ReplyPlace(channel=msg.channel, thread_ts=ts, user=msg.author.id, team=msg.workspace)
        await self._answer(replace(msg, thread=ts, message_id=ts), place)


def slack_usage(spec: CommandSpec, *, command: str) -> str:
    """How a command is typed in Slack: one slash command with subcommands, `/teambridge reset [@user]`.
    (A slash command carries no file: `ask` takes text only.)"""
    spec = replace(spec, args=tuple(a for a in spec.args if a.kind != "file"))
    return "`" + plain_usage(spec, prefix=f"{command} ", user_word="@user") + "`"


def ask_spec(service: Any) -> CommandSpec:
    return next(s for s in service.commands.specs("slack") if s.name == "ask")
