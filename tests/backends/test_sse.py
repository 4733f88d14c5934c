"""The SSE decoder: however the body is cut into chunks, the same events come out."""
from __future__ import annotations

import json

from hypothesis import given, strategies as st

from core.backends.sse import SSEDecoder

BODY = (b"event: response.created\ndata: {\"type\":\"response.created\"}\n\n"
        b": a comment line\r\n"
        b"id: 7\r\ndata: {\"type\":\"response.output_text.delta\",\r\ndata: \"delta\":\"h\\u00e9\"}\r\n\r\n"
        b"data:{\"type\":\"done\"}\n\n"
        b"data: [DONE]\n\n"
        b"data: {\"type\":\"after done\"}\n\n")


def decode(chunks: list[bytes]) -> tuple[list[dict], bool]:
    d = SSEDecoder()
    out = []
    for c in chunks:
        out += [json.loads(p) for p in d.feed(c)]
    return out, d.done


@given(st.lists(st.integers(min_value=0, max_value=len(BODY)), max_size=12))
def test_any_chunking_gives_the_same_events(cuts):
    points = sorted(set(cuts))
    chunks = [BODY[a:b] for a, b in zip([0, *points], [*points, len(BODY)])]
    events, done = decode(chunks)
    assert [e["type"] for e in events] == ["response.created", "response.output_text.delta", "done"]
    assert events[1]["delta"] == "hé"          # multi-line data joined with a newline, CRLF tolerated
    assert done                                # [DONE] ends it; what follows is ignored
