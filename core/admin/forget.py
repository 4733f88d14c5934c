"""The admins' `/forget USER` in chat: says what would be deleted and asks; Confirm (a button on Slack and
Discord) deletes the person's conversations and replaces their id in the usage rows with a digest.

Only the admin who asked can confirm, within CONFIRM_SECONDS; a double click or a click on an old question gets a
clear answer and deletes nothing twice (core/chat/confirm.py). Where there are no buttons (the console), running
the same command again within the time confirms.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Callable

from core.chat.commands import CommandReply
from core.chat.confirm import Answered, Closed, Confirmation, ConfirmReply, NotYours, Questions, closed_text
from core.model import InboundMessage

if TYPE_CHECKING:  # pragma: no cover
    from core.admin.conversations import ConversationAdmin

log = logging.getLogger("teambridge.admin.forget")

NAME = "forget"
NOT_YOURS = "Only the admin who asked can confirm this."
BUTTONS = frozenset({"slack", "discord"})   # platforms that show a Confirmation as buttons


class ForgetCommand:
    CONFIRM_SECONDS = 120.0

    def __init__(self, admin: Callable[[], "ConversationAdmin"], *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._admin = admin            # re-read each time: a hot reload rebuilds it
        self._questions = Questions(ttl=self.CONFIRM_SECONDS, clock=clock)

    async def __call__(self, msg: InboundMessage, rest: str) -> str | CommandReply:
        user = rest.split()[0] if rest.split() else ""
        if not user:
            return "Name the person whose conversations to delete."
        asked = self._questions.pending(msg.author.id, user)
        if asked is not None and msg.platform not in BUTTONS:   # the same command again: the console's "yes"
            self._questions.answer(asked, msg.author.id, True)
            return await self._delete(msg, user)
        rows = await self._admin().list(user=user)
        key = self._questions.ask(msg.author.id, user)
        what = f"{len(rows)} conversation{'s' if len(rows) != 1 else ''}"
        hint = ("Confirm or cancel below (within two minutes)." if msg.platform in BUTTONS
                else "Run the same command again within two minutes to confirm.")
        return CommandReply(f"This deletes {what} of {user} at the model provider and here, and replaces their id "
                            f"in the usage record with a digest. {hint}",
                            confirm=Confirmation(f"{NAME}:{key}", "Delete", "Cancel"))

    def knows(self, key: str) -> bool:
        return self._questions.knows(key)

    async def confirm(self, msg: InboundMessage, key: str, accepted: bool) -> ConfirmReply:
        """A click on Delete (accepted) or Cancel; `msg.author` clicked."""
        match self._questions.answer(key, msg.author.id, accepted):
            case Answered(subject=user, accepted=True):
                return ConfirmReply(await self._delete(msg, user))
            case Answered(subject=user):
                return ConfirmReply(f"Cancelled — nothing of {user} was deleted.")
            case NotYours():
                log.info("forget: %s clicked a confirmation another admin asked for", msg.author.id)
                return ConfirmReply(NOT_YOURS, settled=False)
            case Closed(how=how):
                return ConfirmReply(closed_text(how, again="Run the command again to start over."))

    async def _delete(self, msg: InboundMessage, user: str) -> str:
        admin = self._admin()
        report = await admin.delete(await admin.list(user=user), forget_user=user)
        log.info("forget: %s deleted the conversations of %s (%d)", msg.author.id, user, len(report.deleted))
        return " ".join(report.lines())
