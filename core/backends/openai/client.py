"""The AsyncOpenAI client for `type: openai`, and what OpenAI asks of a request (safety identifier)."""
from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING

from openai import AsyncOpenAI, DefaultAioHttpClient

from core.errors import BackendError

if TYPE_CHECKING:  # pragma: no cover
    from core.config.schema import OpenAIBackendConfig


def make_openai_client(cfg: "OpenAIBackendConfig") -> AsyncOpenAI:
    """The client of one `type: openai` backend (the composition root calls this and injects it).

    The key comes from the environment only; OPENAI_BASE_URL wins over the config's base_url so that the
    whole process (responses, conversations, files, vector stores, containers) can be pointed elsewhere.
    """
    key = os.environ.get("OPENAI_API_KEY", "").strip()
    if not key:
        raise BackendError("OPENAI_API_KEY is not set: put it in the environment or .env")
    base_url = os.environ.get("OPENAI_BASE_URL", "").strip() or cfg.base_url or None
    # The SDK's aiohttp transport: with hundreds of answers streaming at once, httpx's connection pool and
    # per-read timeouts cost about a third more CPU per answer (measured with the bench's stand-ins).
    return AsyncOpenAI(api_key=key, base_url=base_url, timeout=cfg.timeout, max_retries=cfg.max_retries,
                       http_client=DefaultAioHttpClient(timeout=cfg.timeout))


def safety_identifier(user_id: str) -> str:
    """A stable, non-reversible id for OpenAI's abuse detection (the raw platform user id never leaves)."""
    return hashlib.sha256(user_id.encode()).hexdigest()[:32]
