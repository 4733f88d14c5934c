"""Text that can always be encoded.

JSON may carry lone UTF-16 surrogates ("\\ud800"), and a terminal's undecodable bytes become lone surrogates
too ("\\udcff", surrogateescape). Python keeps them in a str; they then fail to encode as UTF-8 in SQLite, in
the OpenAI request or in the next platform call. Every inbound text passes through `clean` once.
"""
from __future__ import annotations

import re

_SURROGATE = re.compile("[\ud800-\udfff]")


def clean(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD (pairs were already joined by the JSON decoder)."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def has_surrogates(text: str) -> bool:
    """Whether `text` holds a lone surrogate (what `clean` replaces)."""
    return _SURROGATE.search(text) is not None
