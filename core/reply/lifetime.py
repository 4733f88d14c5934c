"""A reply's lifetime, owned by the reply seam: streaming, then finished, stopped or failed.

Every ReplyStream has one (`stream.lifetime`) and moves it on; platforms and buttons watch or act on it:
- `on_ending(callback)`: the outcome is known and the final text is about to go out (a platform can drop
  progress edits still waiting for a slot: the final text makes them moot);
- `on_ended(callback)`: the reply's last call was made (or failed for good): what a platform reserved for the
  reply can go back. Called once, however the reply ends;
- `stop()`: a reader asked to stop the reply (a stop button, Slack's own stop on a streaming message): the
  stream's next `text()` raises ReplyStopped, the service stops the model and closes the stream with a short
  "stopped" note after the text so far;
- `answer_id`: the id the answer's buttons carry (core.reply.controls sets it before the first text; "" when
  the answer has no controls): a platform draws Stop while `state == "streaming"`, then Retry and the ratings.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Callable, Iterator, Literal

from core.model import ReplyStopped

log = logging.getLogger(__name__)

ReplyState = Literal["streaming", "finished", "stopped", "failed"]
Listener = Callable[[ReplyState], None]


class ReplyLifetime:
    __slots__ = ("state", "stop_requested", "ended", "answer_id", "_on_ending", "_on_ended")

    def __init__(self) -> None:
        self.state: ReplyState = "streaming"
        self.answer_id = ""
        self.stop_requested = False
        self.ended = False
        self._on_ending: list[Listener] = []
        self._on_ended: list[Listener] = []

    def on_ending(self, callback: Listener) -> None:
        self._on_ending.append(callback)

    def on_ended(self, callback: Listener) -> None:
        self._on_ended.append(callback)

    def stop(self) -> None:
        """Ask the stream to stop: nobody wants the rest of this reply."""
        self.stop_requested = True

    def check(self) -> None:
        """Raise ReplyStopped once a stop was asked for (streams call it on each delta)."""
        if self.stop_requested:
            raise ReplyStopped()

    @contextmanager
    def ending(self, outcome: Literal["finished", "failed"]) -> Iterator[None]:
        """Around a stream's close()/fail(): the outcome is known on entry, the reply has ended on exit
        (also when sending the final text raised)."""
        self.state = "stopped" if self.stop_requested and outcome == "finished" else outcome
        self._call(self._on_ending)
        try:
            yield
        finally:
            if not self.ended:
                self.ended = True
                self._call(self._on_ended)

    def _call(self, listeners: list[Listener]) -> None:
        for callback in listeners:
            try:
                callback(self.state)
            except Exception:  # noqa: BLE001 - a watcher's bug must not lose the reply's text
                log.exception("reply lifetime listener %r failed", callback)
