"""How one Slack reply is delivered, chosen when it opens from the workspace's budgets (bots/slack/ratelimit.py),
and what it holds of them until it ends.

Every reply in a workspace draws from the same per-method budgets, so each reply picks its transport when it
opens, from what the budgets have room for *now* (counting what the replies opened a moment earlier have
reserved):
- NATIVE (chat.startStream/appendStream/stopStream, bots/slack/stream.py) when Tier 2 has a start and a stop
  to spare soon: the reader watches the answer being written;
- EDIT (chat.postMessage, then chat.update: core's EditStream) when Tier 3 has room for the reply's edits;
- POST (chat.postMessage only, limited per channel, not per workspace) otherwise: the answer appears whole when
  it is complete, long answers in parts (bots/slack/post_when_ready.py).
So a burst of answers never queues behind a per-workspace minute: the first ones stream, the rest are posted
when ready, and no reply waits minutes for an edit slot.
"""
from __future__ import annotations

from dataclasses import dataclass

from bots.slack.ratelimit import RateBudget

NATIVE, EDIT, POST = "native stream", "post + edits", "post when ready"


@dataclass(frozen=True, slots=True)
class StreamSettings:
    flush_chars: int = 300
    flush_interval: float = 1.0
    max_chars: int = 11_000     # a streamed message ends at ~12k (msg_too_long); roll over before
    max_age: float = 240.0      # Slack finalises a stream ~5 min after start; roll over before
    # Choosing the transport of each reply from the workspace's budgets (TransportChoice):
    budget_wait: float = 1.0    # a call that would wait longer than this for its budget is "no room"
    edit_calls: int = 2         # chat.update calls an edited reply reserves: one while it streams, the final
    # A native stream is chosen only while its share of chat.appendStream (every open stream gets an even share)
    # lets it append at least this often; otherwise the reader would see its first words and then long silence.
    max_append_interval: float = 15.0
    post_max_chars: int = 11_000  # post when ready: messages are never edited, so markdown_text's 12k applies
    # Post when ready: an answer still being written this many seconds after its first words shows what is ready
    first_post_after: float = 2.0
    post_interval: float = 10.0    # ...and again this often
    # The thinking status ("is thinking…") goes out only when the answer's first words have not come this many
    # seconds after the message: never in front of the request to the model (a Web API call costs about as much
    # CPU as the rest of the way there), and a quick answer is its own sign of life. 0: at once.
    status_delay: float = 0.5


class TransportChoice:
    """One reply's claims on the workspace's budgets: the calls its transport reserved (`reservation`), and
    whether it counts among the edited replies that share chat.update. `release()` gives both back."""

    def __init__(self, budget: RateBudget | None, settings: StreamSettings) -> None:
        self._budget = budget
        self._settings = settings
        self.reservation = budget.reservation() if budget is not None else None
        self.editing = False

    def _room(self, method: str, n: int = 1) -> bool:
        return self._budget is None or self._budget.delay(method, n) <= self._settings.budget_wait

    def _reserve(self, method: str, n: int = 1) -> None:
        if self.reservation is not None:
            self.reservation.add(method, n)

    def choose(self, *, native_ok: bool) -> str:
        """The transport for this reply's whole life, from the budgets as the replies already open will
        spend them: a native stream needs its start and stop (reserved now) and a useful share of the
        append budget; post + edits reserves its edits (one while it streams, the final); else post when
        ready (chat.postMessage is limited per channel, not per workspace). Progress calls beyond what is
        reserved are made only when their budget has room at that moment."""
        if (native_ok and self._room("chat.startStream") and self._room("chat.stopStream")
                and (self._budget is None or self._budget.share(
                    "chat.appendStream", self._budget.streaming_replies + 1) <= self._settings.max_append_interval)):
            self._reserve("chat.startStream")
            self._reserve("chat.stopStream")
            return NATIVE
        if self._budget is None or self._room("chat.update", self._settings.edit_calls):
            self._reserve("chat.update", self._settings.edit_calls)
            return EDIT
        return POST

    def start_editing(self) -> None:
        """The reply goes out as post + edits: it takes its share of chat.update from now on."""
        if self._budget is not None:
            self.editing = True
            self._budget.edited_replies += 1

    def release(self) -> None:
        if self.reservation is not None:
            self.reservation.release()
        if self.editing and self._budget is not None:
            self.editing = False
            self._budget.edited_replies -= 1
