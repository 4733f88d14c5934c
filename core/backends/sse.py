"""The data lines of a `text/event-stream` body (the Responses and Chat Completions APIs both stream so).

A plain incremental decoder instead of the SDK's typed stream: text deltas are the hot path, and building a
pydantic model per event costs more CPU than everything else in a reply. The `event:` line is ignored — the
JSON carries its own `type` — and so are `id:`, `retry:` and comments.
"""
from __future__ import annotations


class SSEDecoder:
    """Feed body chunks, get each complete event's data payload (multi-line data joined with newlines).

    `done` turns true at `data: [DONE]` (OpenAI-compatible servers end Chat Completions streams with it);
    whatever follows is ignored."""

    __slots__ = ("_buf", "_data", "done")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[bytes] = []
        self.done = False

    def feed(self, chunk: bytes) -> list[bytes]:
        if self.done:
            return []
        lines = (self._buf + chunk).split(b"\n")
        self._buf = lines.pop()
        out: list[bytes] = []
        data = self._data
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if line:
                if line.startswith(b"data:"):
                    data.append(line[6:] if line[5:6] == b" " else line[5:])
                continue
            if not data:
                continue
            payload = data[0] if len(data) == 1 else b"\n".join(data)
            data.clear()
            if payload == b"[DONE]":
                self.done = True
                break
            out.append(payload)
        return out
