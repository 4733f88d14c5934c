"""The AsyncOpenAI client of a model server (`type: responses` / `type: chat_completions`).

Only what the config names reaches that server: its base_url (OPENAI_BASE_URL is for `type: openai` only) and
the key in the environment variable named by `api_key_env`. The SDK would otherwise fill in OPENAI_API_KEY,
OPENAI_ORG_ID and OPENAI_PROJECT_ID from the environment and send OpenAI's credentials to a third party.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import openai
from openai import AsyncOpenAI, DefaultAioHttpClient

from core.errors import BackendError

# The SDK refuses to build a client without a key; a local server needs none, so the client gets this
# placeholder and every request omits the Authorization header (ServerClient.headers).
_NO_KEY = "no-key"


@dataclass(frozen=True, slots=True)
class ServerClient:
    client: AsyncOpenAI
    headers: dict[str, Any] = field(default_factory=dict)   # extra_headers for every request


def make_server_client(*, name: str, base_url: str, api_key_env: str | None, timeout: float,
                       env: Mapping[str, str]) -> ServerClient:
    key = None
    if api_key_env:
        key = (env.get(api_key_env) or "").strip() or None
        if key is None:
            raise BackendError(f"{api_key_env} is not set: backend “{name}” takes its API key from it "
                               "(put it in the environment or .env, or remove api_key_env for a server without a key)")
    client = AsyncOpenAI(api_key=key or _NO_KEY, base_url=base_url, timeout=timeout, max_retries=0,
                         default_headers={"OpenAI-Organization": openai.Omit(), "OpenAI-Project": openai.Omit()},
                         http_client=DefaultAioHttpClient(timeout=timeout))
    return ServerClient(client, {} if key else {"Authorization": openai.Omit()})


def who(name: str) -> str:
    """How messages name a backend: “the model server “local””."""
    return f"the model server “{name}”"
