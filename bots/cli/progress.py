"""Progress of long CLI work (knowledge sync, prune) on one updating line of standard error — at a terminal only,
so pipes and logs get the result lines and nothing else."""
from __future__ import annotations

import sys
from typing import TextIO


class Progress:
    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._live = self._stream.isatty()
        self._shown = False

    def __call__(self, done: int, total: int, what: str) -> None:
        if not self._live:
            return
        self._stream.write(f"\r\x1b[K[{done}/{total}] {what}")
        self._stream.flush()
        self._shown = True

    def done(self) -> None:
        """Clear the line, so the result prints where the progress was."""
        if self._shown:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._shown = False
