"""The one command surface every platform calls: which commands exist (one table), their help text in each
platform's invocation style, dispatch, the admin gate, and the error texts.

Platforms translate in (Slack's `/teambridge reset <@U1>`, Discord's `/reset user:`, the console's `/reset U1`
all become name "reset", argument "U1") and render out (an ephemeral reply); what a command means and what it
answers lives here. Commands that need the platform itself (`ask` posts a thread root, `attach` reads a local
file) are in the table for the help text, but the platform runs them.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Awaitable, Callable, Literal, Protocol

from core.chat.access import is_admin
from core.chat.confirm import UNKNOWN, Confirmation, ConfirmReply, Confirmer, closed_text
from core.chat.confirm_relay import ConfirmRelay
from core.config.schema import Config
from core.model import InboundMessage
from core.store.signals import Signals

log = logging.getLogger("teambridge.commands")

ArgKind = Literal["text", "user", "file"]
Audience = Literal["everyone", "admins"]


@dataclass(frozen=True, slots=True)
class Arg:
    name: str                 # also the Discord option name
    kind: ArgKind = "text"
    required: bool = True
    help: str = ""            # Discord shows it under the option


@dataclass(frozen=True, slots=True)
class CommandSpec:
    name: str
    summary: str
    args: tuple[Arg, ...] = ()
    audience: Audience = "everyone"
    platforms: frozenset[str] | None = None   # None: every platform; else only these run it (the platform does)


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("ask", "ask the assistant",
                (Arg("prompt", help="Your question"),
                 Arg("file", "file", required=False, help="A file for the assistant (image, data, document)")),
                platforms=frozenset({"slack", "discord"})),
    CommandSpec("attach", "attach a file to your next message", (Arg("path"),), platforms=frozenset({"console"})),
    CommandSpec("stop", "stop the answer being written (Ctrl-C in a terminal)", platforms=frozenset({"console"})),
    CommandSpec("retry", "ask the last question again (the last answer stays)", platforms=frozenset({"console"})),
    CommandSpec("rate", "rate the last answer", (Arg("rating", help="up or down"),), platforms=frozenset({"console"})),
    CommandSpec("reset", "start a new conversation here",
                (Arg("user", "user", required=False, help="Admins: reset this member's conversation instead of yours"),)),
    CommandSpec("assistant", "choose which assistant answers you here", (Arg("name", help="Assistant"),)),
    CommandSpec("help", "what this bot can do"),
    CommandSpec("usage", "tokens and cost by user, channel, assistant or day",
                (Arg("period", required=False, help="e.g. today, 7d, 30d"),), audience="admins"),
    CommandSpec("reload", "reload config.yaml now", audience="admins"),
    CommandSpec("forget", "delete a person's conversations (asks to confirm)",
                (Arg("user", "user", help="The member whose conversations to delete"),), audience="admins"),
)

ERROR_NOTICE = "⚠️ That did not work — please try again."


class InvocationStyle(Protocol):
    """How a platform's users type a command: the platform supplies this, core writes the help with it."""

    def __call__(self, spec: CommandSpec) -> str: ...


@dataclass(frozen=True, slots=True)
class CommandReply:
    """What a command answers: shown only to the person who ran it (ephemeral where the platform has it).
    `confirm`: the command asks first; platforms with buttons show Confirm / Cancel (core/chat/confirm.py)."""
    text: str
    confirm: Confirmation | None = None


AdminHandler = Callable[[InboundMessage, str], Awaitable["str | CommandReply"]]


class CommandHost(Protocol):
    """What the surface needs from the chat service (ChatService implements it)."""

    @property
    def config(self) -> Config: ...
    async def reset(self, msg: InboundMessage, *, user: str | None = None) -> str: ...
    async def choose_assistant(self, msg: InboundMessage, name: str) -> str: ...


class CommandSurface:
    def __init__(self, host: CommandHost, handlers: dict[str, AdminHandler] | None = None, *,
                 signals: Signals | None = None) -> None:
        self._host = host
        self._specs: dict[str, CommandSpec] = {spec.name: spec for spec in COMMANDS}
        self._handlers: dict[str, AdminHandler] = dict(handlers or {})
        self._confirmers: dict[str, Confirmer] = {}
        # clicks on questions another process asked go there (and theirs on ours come here)
        self._relay = (ConfirmRelay(signals, knows=self._knows, decide=self._confirm_here)
                       if signals is not None and signals.shared else None)

    def add(self, name: str, handler: AdminHandler, *, summary: str = "", args: tuple[Arg, ...] = (),
            confirm: Confirmer | None = None) -> None:
        """The handler of an admin command. A name the table has (usage, reload) keeps its entry; a new name
        becomes an admin command with this summary — register it before the platforms start, so Discord's
        slash commands include it."""
        name = name.lower()
        if name not in self._specs:
            self._specs[name] = CommandSpec(name, summary or name, args, audience="admins")
        self._handlers[name] = handler
        if confirm is not None:   # answers the clicks on the Confirm / Cancel buttons its replies carry
            self._confirmers[name] = confirm
            if self._relay is not None:
                self._relay.listen()

    @property
    def tasks(self) -> frozenset:
        """Clicks from other processes being acted on in this one (ChatService.shutdown waits for them)."""
        return self._relay.tasks if self._relay is not None else frozenset()

    def specs(self, platform: str) -> tuple[CommandSpec, ...]:
        """The commands a platform offers, in table order (Discord registers exactly these as slash commands)."""
        return tuple(s for s in self._specs.values() if s.platforms is None or platform in s.platforms)

    async def run(self, msg: InboundMessage, name: str, argument: str = "", *,
                  style: InvocationStyle) -> CommandReply:
        """Run one command for `msg.author`. Never raises: a failure is logged and answered with one line."""
        name = name.strip().lower()
        argument = argument.strip()
        try:
            reply = await self._dispatch(msg, name, argument, style)
        except Exception:
            log.exception("command %r failed for %s in %s", name, msg.author.id, msg.channel)
            return CommandReply(ERROR_NOTICE)
        return reply if isinstance(reply, CommandReply) else CommandReply(reply)

    async def confirm(self, msg: InboundMessage, token: str, accepted: bool) -> ConfirmReply:
        """A click on a Confirm (accepted) or Cancel button; `msg.author` clicked, `token` is the button's.
        A question another process asked is decided there. Never raises: a failure is logged and answered with
        one line (the question stays open)."""
        if self._relay is not None and not self._knows(token):
            reply = await self._relay.elsewhere(msg, token, accepted)
            if reply is not None:
                return reply
        return await self._confirm_here(msg, token, accepted)

    def _knows(self, token: str) -> bool:
        name, _, key = token.partition(":")
        confirmer = self._confirmers.get(name)
        return confirmer is not None and bool(key) and confirmer.knows(key)

    async def _confirm_here(self, msg: InboundMessage, token: str, accepted: bool) -> ConfirmReply:
        name, _, key = token.partition(":")
        confirmer, spec = self._confirmers.get(name), self._specs.get(name)
        if confirmer is None or spec is None or not key:
            log.info("a confirmation click with an unknown token from %s dropped", msg.author.id)
            return ConfirmReply(closed_text(UNKNOWN, again="Run the command again to start over."))
        if spec.audience == "admins" and not is_admin(self._host.config, msg.author):
            return ConfirmReply(f"Only admins can use “{name}”.", settled=False)
        try:
            return await confirmer.confirm(msg, key, accepted)
        except Exception:
            log.exception("confirming %r failed for %s in %s", name, msg.author.id, msg.channel)
            return ConfirmReply(ERROR_NOTICE, settled=False)

    async def _dispatch(self, msg: InboundMessage, name: str, argument: str,
                        style: InvocationStyle) -> "str | CommandReply":
        spec = self._specs.get(name)
        if spec is None:
            return f"Unknown command “{name}”. Try {style(self._specs['help'])}."
        if spec.audience == "admins" and not is_admin(self._host.config, msg.author):
            return f"Only admins can use “{name}”."
        if spec.platforms is not None and msg.platform not in spec.platforms:
            return f"“{name}” is not available here."
        match name:
            case "help":
                return self.help_text(msg, style)
            case "reset":
                return await self._host.reset(msg, user=argument or None)
            case "assistant":
                if not argument:
                    return (f"Assistants: {', '.join(self._host.config.assistants)}. "
                            f"Choose one with {style(spec)}.")
                return await self._host.choose_assistant(msg, argument)
        handler = self._handlers.get(name)
        if handler is None:  # e.g. `reload` where nothing watches a config file
            return f"“{name}” is not available here."
        return await handler(msg, argument)

    def help_text(self, msg: InboundMessage, style: InvocationStyle) -> str:
        config = self._host.config
        lines = ["*teambridge* — AI assistants in your chat.", "", "Assistants:"]
        for name, assistant in config.assistants.items():
            tools = ", ".join(t.type.replace("_", " ") for t in assistant.tools) or "chat"
            lines.append(f"• {name} — {assistant.description or tools}")
        offered = self.specs(msg.platform)
        lines += ["", "Commands:"]
        lines += [f"• {style(s)} — {s.summary}" for s in offered if s.audience == "everyone"]
        if is_admin(config, msg.author):
            lines += ["", "For admins:"]
            lines += [f"• {style(s)} — {s.summary}" for s in offered if s.audience == "admins"]
        return "\n".join(lines)


def plain_usage(spec: CommandSpec, *, prefix: str = "/", user_word: str = "USER") -> str:
    """`/reset [USER]`: the console's style, and the base of Slack's (`/teambridge reset [@user]`)."""
    words = [f"{prefix}{spec.name}"]
    for arg in spec.args:
        word = user_word if arg.kind == "user" else arg.name.upper()
        words.append(word if arg.required else f"[{word}]")
    return " ".join(words)
