"""Counting tokens of a history that teambridge keeps, to stay under a backend's `context_tokens`.

OpenAI-family model names (gpt-*, o1/o3/o4*, chatgpt-*) are counted with their real BPE encoding. tiktoken
downloads its encoding files from the internet on first use, which a locked-down server (and this project's
CI) cannot reach, so the encodings come from `bpe-openai`, a package that ships them inside its wheel with a
tiktoken-compatible API. Loading an encoding takes seconds: it loads in a worker thread and, until it is
ready (or for any other model, whose tokenizer we do not have), a conservative estimate counts instead —
conservative meaning it overcounts, so a history is condensed a little early rather than sent too long.
"""
from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, Callable, Protocol

log = logging.getLogger(__name__)

PER_ITEM = 4          # the chat template's wrapping of each message (role markers), as OpenAI's cookbook counts

_O200K = re.compile(r"^(gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o1|o3|o4|chatgpt-4o|gpt-oss)")
_CL100K = re.compile(r"^(gpt-4|gpt-3\.5|gpt-35)")


def encoding_for(model: str) -> str | None:
    """The BPE encoding of an OpenAI-family model name (a provider prefix like `openai/` is ignored)."""
    name = model.rsplit("/", 1)[-1].lower()
    if _O200K.match(name):
        return "o200k_base"
    if _CL100K.match(name):
        return "cl100k_base"
    return None


_LETTERS = re.compile(r"[A-Za-z]")
_SYMBOLS = re.compile(r"[!-@\[-`{-~]")       # digits and ASCII punctuation: often a token each
_SPACE_RUNS = re.compile(r"\s{2,}")           # indentation and blank lines


def estimate(text: str) -> int:
    """An overcount for the usual tokenizers: a token per 3 letters (English averages ~4 per token), one per
    digit or punctuation mark, one per run of whitespace, 1.5 per non-ASCII character (CJK runs ~1-1.5)."""
    letters = len(_LETTERS.findall(text))
    symbols = len(_SYMBOLS.findall(text))
    other = len(text) - len(text.encode("ascii", "ignore"))
    return -(-letters // 3) + symbols + len(_SPACE_RUNS.findall(text)) + other * 3 // 2 + 1


class TokenCounter(Protocol):
    def count(self, text: str) -> int: ...


class Tokens:
    """Counts for one model: its real encoding once loaded, the estimate until then or without one."""

    def __init__(self, model: str, *, load: Callable[[str], Any] | None = None) -> None:
        self.model = model
        self.encoding = encoding_for(model)
        self._encode: Callable[[str], list[int]] | None = None
        self._loading: asyncio.Future | None = None
        self._load = load or _load_encoding

    @property
    def exact(self) -> bool:
        return self._encode is not None

    def start_loading(self) -> None:
        """Load the encoding in a worker thread (call from a running loop); counting never waits for it."""
        if self.encoding is None or self._loading is not None:
            return
        self._loading = asyncio.ensure_future(asyncio.to_thread(self._load, self.encoding))
        self._loading.add_done_callback(self._loaded)

    async def ready(self) -> None:
        """Wait for the encoding (tests and benchmarks; a turn never waits)."""
        self.start_loading()
        if self._loading is not None:
            await asyncio.wait([self._loading])

    def _loaded(self, fut: asyncio.Future) -> None:
        if fut.cancelled():
            return
        if fut.exception() is not None or fut.result() is None:
            log.warning("token encoding %s not available (%s): estimating token counts for %s",
                        self.encoding, fut.exception() or "bpe-openai is not installed", self.model)
            return
        self._encode = fut.result().encode

    def count(self, text: str) -> int:
        encode = self._encode
        if encode is None:
            return estimate(text)
        return len(encode(text))


def _load_encoding(name: str) -> Any:
    try:
        import bpe_openai  # shipped encodings: no download at run time
    except ImportError:
        return None
    return bpe_openai.get_encoding(name)
