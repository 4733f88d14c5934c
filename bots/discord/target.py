"""ReplyTarget implementations: a channel/thread/DM reply, and a slash-command (interaction) reply."""
from __future__ import annotations

import asyncio
import io
import json
import logging
import secrets
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable

import discord
from discord.http import handle_message_parameters
from discord.utils import MISSING

from bots.discord.delivery import AnswerPlan, Delivery
from bots.discord.controls import controls_row, controls_view
from bots.discord.events import ReplyChains
from bots.discord.pacing import Pacer, Pacers, Ticket
from bots.discord.text import split, to_discord
from core.model import OutboundFile
from core.ports import Limits, OnPosted, ReplyStream
from core.reply.lifetime import ReplyLifetime
from core.reply.stream import EditStream
from core.reply.tail import notice_line

log = logging.getLogger("teambridge.discord")

LIMITS = Limits(max_chars=2000, edit_interval=1.0)
DEFAULT_FILE_LIMIT = 10 * 1024 * 1024  # per file since 2025-01-16; boosts raise it per guild
TYPING_REFRESH = 8.0                   # Discord shows "typing" for ~10 s per trigger
# The typing indicator costs a request from the bot's global budget (50/s). When the first words of the
# answer come sooner than this, the message itself is the sign of life and the indicator is not sent.
TYPING_DELAY = 0.8
TYPING_MAX = 120.0
# A typing POST still on its way when the reply's first message goes out is waited for (at most this long):
# Discord shows "is typing…" for ~10 s from when the POST arrives, under the answer if it arrives after it.
TYPING_LANDS = 2.0
NO_PINGS = discord.AllowedMentions.none()  # model output must never ping @everyone or users


def _attachment_url(message: dict) -> str | None:
    """The CDN address of the file a message carries (Discord's clients refresh its signature when opened)."""
    attachments = message.get("attachments") or []
    url = attachments[0].get("url") if attachments and isinstance(attachments[0], dict) else None
    return url if isinstance(url, str) and url else None


def _too_big(file: OutboundFile, limit: int) -> str | None:
    """The notice for a file over Discord's upload limit here (Discord would answer 413 / 40005)."""
    if len(file.data) <= limit:
        return None
    return notice_line(f"{file.name} is {len(file.data) / 1_048_576:.1f} MB, more than Discord accepts here "
                       f"({limit / 1_048_576:.0f} MB), so it was not posted.")


class _Typing:
    """Keeps "is typing…" visible until the first message of the reply goes out.

    With a delay, the first trigger waits on a timer (no task, no request) and is dropped when the first
    message goes out before it fires."""

    def __init__(self, channel: discord.abc.Messageable, pacers: Pacers,
                 spare: Callable[[], bool] | None = None) -> None:
        self._channel = channel
        self._pacers = pacers
        self._spare = spare   # a slot no answer waiting to show needs (bots/discord/delivery), if known
        self._task: asyncio.Task | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._started = False
        self._stopped = False
        self._sending: asyncio.Future | None = None   # the POST /typing on its way, if one is

    async def start(self, delay: float = 0.0) -> None:
        """Show the indicator now (or after `delay` s), then refresh it in the background until stop()."""
        if self._started or self._stopped:
            return
        self._started = True
        if delay > 0:
            self._timer = asyncio.get_running_loop().call_later(delay, self._fire)
            return
        if await self._trigger() and not self._stopped:
            self._task = asyncio.create_task(self._refresh())

    def _fire(self) -> None:
        self._timer = None
        if not self._stopped:
            self._task = asyncio.create_task(self._first_then_refresh())

    async def _first_then_refresh(self) -> None:
        if await self._trigger() and not self._stopped:
            await self._refresh()

    def stop(self) -> None:
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None and not self._task.done() and not self._on_its_way():
            self._task.cancel()   # (one sending its POST ends by itself: the loop sees _stopped)

    async def landed(self) -> None:
        """After stop(): wait (at most TYPING_LANDS) for a POST /typing still on its way, so that it reaches
        Discord before the message that ends the indicator rather than after it."""
        if self._on_its_way():
            await asyncio.wait([self._sending], timeout=TYPING_LANDS)   # type: ignore[list-item]

    def _on_its_way(self) -> bool:
        return self._sending is not None and not self._sending.done()

    async def _trigger(self) -> bool:
        if self._stopped:
            return False
        try:
            # Typing is cosmetic: when the global budget is used up right now (many answers at once), skip
            # it rather than queue it in front of the answers themselves; the next refresh tries again.
            # With many answers starting at once, the slots free now are the first messages' that come next.
            if self._spare is not None and not self._spare():
                return True
            async with self._pacers.global_.slot_if_free() as free:
                if free and not self._stopped:
                    self._sending = asyncio.ensure_future(   # POST /channels/{id}/typing
                        self._channel._state.http.send_typing(self._channel.id))
                    await self._sending
            return True
        except discord.HTTPException as exc:  # typing is cosmetic: log and carry on with the answer
            log.warning("typing indicator failed in %s: %s", self._channel.id, exc)
            return False

    async def _refresh(self) -> None:
        loop = asyncio.get_running_loop()
        until = loop.time() + TYPING_MAX
        try:
            while loop.time() < until:
                await asyncio.sleep(TYPING_REFRESH)
                if not await self._trigger():
                    return
        except asyncio.CancelledError:
            pass


def per_spec(params, *, edit: bool):
    """The body as Discord's OpenAPI describes it. discord.py's helper sends the ids of `message_reference` as
    JSON numbers (snowflakes are strings in the spec; numbers above 2**53 lose precision in JSON readers
    that use doubles) and a `tts` field on edits (Edit Message has none)."""
    def fix(payload: dict) -> dict:
        if edit:
            payload.pop("tts", None)
        ref = payload.get("message_reference")
        if isinstance(ref, dict):
            payload["message_reference"] = {k: str(v) if k.endswith("_id") and isinstance(v, int) else v
                                            for k, v in ref.items()}
        return payload

    if params.payload is not None:
        fix(params.payload)
    for part in params.multipart or ():
        if part.get("name") == "payload_json":
            part["value"] = json.dumps(fix(json.loads(part["value"])))
    return params


class ChannelTarget:
    """Answer to a message: the first part replies to it, each further part replies to the previous one
    (so a reply to any part continues the same conversation).

    Pacing priorities: the reply's first message goes first (nothing of it shows yet), then final edits
    (`final=True`) and later parts, then progress edits of a reply still streaming. Once the reply's final
    text is ready (its lifetime says so), its progress edits still waiting for a slot are dropped: edit()
    returns False and core's EditStream sends the final text in their place. With a `delivery`, the reply
    queues for its first message with its first text and shows what it has when its turn comes — the whole
    answer if it ended meanwhile (bots/discord/delivery)."""

    limits = LIMITS

    def __init__(self, channel: discord.abc.Messageable, *, pacers: Pacers, chains: ReplyChains,
                 reply_to: discord.Message | None, root: int | None, file_limit: int | None = None,
                 typing_delay: float = TYPING_DELAY, delivery: Delivery | None = None) -> None:
        self._channel = channel
        self._pacers = pacers
        self._chains = chains
        # The next message replies to this one (a message_reference payload): the user's message, then
        # each part of the reply in turn.
        # (The reference is built when the first message goes out: not in the way of the request to the model.)
        self._reply_to: dict | None = None
        self._replying_to = reply_to
        self._root = root
        guild = getattr(channel, "guild", None)
        self._guild_id: int | None = guild.id if guild is not None else None
        self._typing = _Typing(channel, pacers, delivery.spare if delivery is not None else None)
        self._typing_delay = typing_delay
        self._waiting: dict[str, Ticket] = {}  # progress edits waiting for a slot, by message id
        self._ending = False                   # the reply's final text goes out next
        self._posted = False                   # a message of this reply is out
        self._delivery = delivery
        self._plan: AnswerPlan | None = None
        self._lifetime: ReplyLifetime | None = None   # the reply's (its buttons: bots/discord/controls.py)
        self._latest: str | None = None               # the reply's latest message
        self._file_limit = file_limit   # (None: the guild's, looked up on the first upload)

    @property
    def channel_id(self) -> int:
        return self._channel.id

    def _pace(self, *, urgent: bool = True, ticket: Ticket | None = None, first: bool = False):
        return self._pacers.for_channel(self._channel.id, urgent=urgent, ticket=ticket, first=first)

    @asynccontextmanager
    async def _first_or_paced(self, *, first: bool, answer: bool = False) -> AsyncIterator[None]:
        """A first message goes out on the slots its answer queued for with its first text (bots/discord/delivery),
        keeping that place in the queue; any other message queues now."""
        slots = await self._plan.first_slots() if answer and self._plan is not None else None
        if slots is None:
            async with self._pace(first=first):
                yield
            return
        with slots.use():
            yield

    async def _send(self, *, content: str | None = None, file: discord.File | None = None,
                    view=MISSING, answer: bool = False) -> int:
        return int((await self._deliver(content=content, file=file, view=view, answer=answer))["id"])

    async def _deliver(self, *, content: str | None = None, file: discord.File | None = None,
                       view=MISSING, answer: bool = False) -> dict:
        """POST the message through discord.py's HTTPClient route (its bucket and 429 handling included) and
        keep only the id: `channel.send()` would build a full Message (author, member, mentions, embeds…)
        from every response, which nothing here reads — a measurable share of the bot's CPU per answer."""
        self._typing.stop()
        await self._typing.landed()
        state = self._channel._state
        if self._replying_to is not None:
            self._reply_to = self._replying_to.to_reference(fail_if_not_exists=False).to_dict()
            self._replying_to = None
        # The same payload channel.send() builds: no pings, no reply ping, and a nonce Discord enforces, so
        # a send that discord.py retries after a 5xx can't post the part twice.
        with handle_message_parameters(content=content, file=file if file is not None else MISSING,
                                       nonce=secrets.randbits(64), allowed_mentions=NO_PINGS, view=view,
                                       message_reference=self._reply_to if self._reply_to is not None else MISSING,
                                       previous_allowed_mentions=state.allowed_mentions,
                                       mention_author=False) as params:
            async with self._first_or_paced(first=not self._posted, answer=answer):
                data = await state.http.send_message(self._channel.id, params=per_spec(params, edit=False))
        self._posted = True
        message_id = int(data["id"])
        self._reply_to = discord.MessageReference(message_id=message_id, channel_id=self._channel.id,
                                                  guild_id=self._guild_id, fail_if_not_exists=False).to_dict()
        if self._root is not None:
            await self._chains.remember_bot_message(message_id, self._root)
        return data

    async def post(self, text: str) -> str:
        view = controls_row(self._lifetime, latest=True, final=False)
        self._latest = str(await self._send(content=to_discord(text), view=view, answer=True))
        return self._latest

    async def edit(self, message_id: str, text: str, *, final: bool = False) -> bool:
        if final:
            await self._edit_now(message_id, text, final=True)
            return True
        if self._ending or (self._plan is not None and not self._plan.progress()):
            return False  # moot (the final text follows), or no room in the budget now (a later edit shows it)
        ticket = self._waiting[message_id] = Ticket()
        try:
            async with self._pace(urgent=False, ticket=ticket) as granted:
                if not granted:
                    return False  # the final text is ready: this progress edit is moot
                await self._do_edit(message_id, text)
                return True
        finally:
            if self._waiting.get(message_id) is ticket:
                del self._waiting[message_id]

    async def _edit_now(self, message_id: str, text: str, *, final: bool = False) -> None:
        async with self._pace():
            await self._do_edit(message_id, text, final=final)

    async def _do_edit(self, message_id: str, text: str, *, final: bool = False) -> None:
        # PATCH through the HTTPClient route, like _send: the response's Message would go unused.
        state = self._channel._state
        view = controls_row(self._lifetime, latest=message_id == self._latest, final=final)
        with handle_message_parameters(content=to_discord(text), allowed_mentions=NO_PINGS, view=view,
                                       previous_allowed_mentions=state.allowed_mentions) as params:
            await state.http.edit_message(self._channel.id, int(message_id), params=per_spec(params, edit=True))

    def _final_text_ready(self, _state: str) -> None:
        """The reply's final text goes out next: progress edits still waiting for a slot drop out."""
        self._ending = True
        for ticket in self._waiting.values():
            ticket.withdraw()

    async def upload(self, file: OutboundFile) -> str | None:
        if not self._file_limit:
            guild = getattr(self._channel, "guild", None)
            self._file_limit = guild.filesize_limit if guild is not None else DEFAULT_FILE_LIMIT
        if (refusal := _too_big(file, self._file_limit)) is not None:
            await self.notice(refusal)
            return None
        if self._plan is not None:   # a slot kept for the answer's end shows what it has: this may queue a while
            self._plan.posting_file()
        return _attachment_url(await self._deliver(file=discord.File(io.BytesIO(file.data), filename=file.name)))

    async def notice(self, text: str, *, ephemeral: bool = False) -> None:
        # Only interaction replies can be ephemeral; in a channel a notice is a normal reply.
        for part in split(text):
            await self._send(content=part)

    async def typing(self) -> None:
        await self._typing.start(self._typing_delay)

    def open_stream(self, on_posted: OnPosted) -> ReplyStream | None:
        plan = self._plan = self._delivery.open(self._channel.id) if self._delivery is not None else None
        stream = EditStream(self, on_posted=on_posted, may_start=plan.may_start if plan is not None else None)
        stream.lifetime.on_ending(self._final_text_ready)
        if plan is not None:  # the answer is done once its final text is ready (its last write may still queue)
            plan.on_ready = stream.resume
            plan.busy = lambda: stream.tool_running
            stream.lifetime.on_ending(lambda _state: plan.end())
            stream.lifetime.on_ended(lambda _state: plan.close())
        self._lifetime = stream.lifetime
        return stream


class InteractionTarget:
    """Answer to a slash command that was deferred with thinking=True: the first part edits the original
    response (@original), further parts and files are followups on the interaction webhook."""

    limits = LIMITS

    def __init__(self, interaction: discord.Interaction, *, chains: ReplyChains, root: int | None,
                 original_id: int | None) -> None:
        self._interaction = interaction
        self._chains = chains
        self._root = root
        self._original_id = original_id
        self._original_used = False
        self._followups: dict[str, discord.WebhookMessage] = {}
        self._lifetime: ReplyLifetime | None = None   # the reply's (its buttons: bots/discord/controls.py)
        self._latest: str | None = None
        # Interaction webhooks have their own bucket per token (outside the global limit).
        self._pacer = Pacer(5, 2.0)
        self._file_limit = interaction.filesize_limit or DEFAULT_FILE_LIMIT

    @property
    def answered(self) -> bool:
        return self._original_used

    async def _remember(self, message_id: int) -> None:
        if self._root is not None:
            await self._chains.remember_bot_message(message_id, self._root)

    async def post(self, text: str) -> str:
        async with self._pacer.slot():
            return await self._post(text)

    async def _post(self, text: str, *, controls: bool = True) -> str:
        view = controls_view(self._lifetime, latest=True, final=False) if controls else MISSING
        if not self._original_used:
            self._original_used = True
            msg = await self._interaction.edit_original_response(content=to_discord(text), allowed_mentions=NO_PINGS,
                                                                 view=view)
            self._original_id = msg.id
            await self._remember(msg.id)
            self._latest = str(msg.id)
            return str(msg.id)
        msg = await self._interaction.followup.send(content=to_discord(text), wait=True, allowed_mentions=NO_PINGS,
                                                    view=view)
        self._followups[str(msg.id)] = msg
        await self._remember(msg.id)
        self._latest = str(msg.id)
        return str(msg.id)

    async def edit(self, message_id: str, text: str, *, final: bool = False) -> bool:
        async with self._pacer.slot():
            await self._edit(message_id, text, final=final)
        return True

    async def _edit(self, message_id: str, text: str, *, final: bool = False) -> None:
        view = controls_view(self._lifetime, latest=message_id == self._latest, final=final)
        if self._original_id is not None and message_id == str(self._original_id):
            await self._interaction.edit_original_response(content=to_discord(text), allowed_mentions=NO_PINGS,
                                                           view=view)
        else:
            await self._interaction.followup.edit_message(int(message_id), content=to_discord(text),
                                                          allowed_mentions=NO_PINGS, view=view)

    async def upload(self, file: OutboundFile) -> str | None:
        if (refusal := _too_big(file, self._file_limit)) is not None:
            await self.notice(refusal)
            return None
        dfile = discord.File(io.BytesIO(file.data), filename=file.name)
        async with self._pacer.slot():
            if not self._original_used:
                self._original_used = True
                msg = await self._interaction.edit_original_response(attachments=[dfile])
                return msg.attachments[0].url if msg.attachments else None
            msg = await self._interaction.followup.send(file=dfile, wait=True)
        await self._remember(msg.id)
        return msg.attachments[0].url if msg.attachments else None

    async def notice(self, text: str, *, ephemeral: bool = False) -> None:
        parts = split(text)
        if not self._original_used:
            # The defer was public, so the "thinking…" message can't turn ephemeral: the notice replaces it.
            async with self._pacer.slot():
                await self._post(parts[0], controls=False)
            parts = parts[1:]
        for part in parts:
            async with self._pacer.slot():
                await self._interaction.followup.send(content=part, ephemeral=ephemeral,
                                                      allowed_mentions=NO_PINGS)

    async def typing(self) -> None:
        return None  # the deferred response already shows "<bot> is thinking…"

    def open_stream(self, on_posted) -> ReplyStream | None:
        stream = EditStream(self, on_posted=on_posted)
        self._lifetime = stream.lifetime
        return stream
