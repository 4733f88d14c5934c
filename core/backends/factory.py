"""One backend per `backends:` entry, by its type (the composition root calls this; nothing is global)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from core.backends.capabilities import capabilities_of
from core.backends.chat_completions.backend import ChatCompletionsBackend
from core.backends.client import make_server_client, who
from core.backends.history import HistoryStore, LocalSessions
from core.backends.openai.backend import OpenAIBackend
from core.backends.openai.client import make_openai_client
from core.backends.responses.backend import ResponsesBackend
from core.backends.tool_calls import ToolRegistryLike

if TYPE_CHECKING:  # pragma: no cover
    from openai import AsyncOpenAI

    from core.config.schema import BackendConfig


def make_client(name: str, cfg: "BackendConfig", env: Mapping[str, str]) -> Any:
    """The connection of one backend: an AsyncOpenAI (openai type) or a ServerClient. Raises BackendError when a
    key it needs is not set."""
    if cfg.type == "openai":
        return make_openai_client(cfg)
    return make_server_client(name=name, base_url=cfg.base_url, api_key_env=cfg.api_key_env, timeout=cfg.timeout,
                              env=env)


def make_backend(name: str, cfg: "BackendConfig", client: Any, *, tools: ToolRegistryLike, store: HistoryStore) -> Any:
    """The backend of one `backends:` entry over `client` (from make_client)."""
    match cfg.type:
        case "openai":
            # spares recorded in the store as they are made: none forgotten at OpenAI (the store is the ledger)
            return OpenAIBackend(client, tools, max_retries=cfg.max_retries,
                                 spare_conversations=cfg.spare_conversations, compact_threshold=cfg.context_tokens,
                                 spare_ledger=store)
        case "responses":
            return ResponsesBackend(client.client, tools, LocalSessions(store), who=who(name),
                                    max_retries=cfg.max_retries, headers=client.headers,
                                    context_tokens=cfg.context_tokens,
                                    capabilities=capabilities_of("responses", vision=cfg.vision,
                                                                 context_tokens=cfg.context_tokens),
                                    model_label=lambda model: f"{name}/{model}")
        case "chat_completions":
            return ChatCompletionsBackend(client.client, tools, store, who=who(name), max_retries=cfg.max_retries,
                                          headers=client.headers, context_tokens=cfg.context_tokens,
                                          capabilities=capabilities_of("chat_completions", vision=cfg.vision,
                                                                       context_tokens=cfg.context_tokens),
                                          model_label=lambda model: f"{name}/{model}")
    raise ValueError(f"unknown backend type {cfg.type!r}")


def openai_client(client: Any) -> "AsyncOpenAI | None":
    """The AsyncOpenAI of an openai-type backend's connection (files, vector stores), else None."""
    from openai import AsyncOpenAI
    return client if isinstance(client, AsyncOpenAI) else None


async def close_client(client: Any) -> None:
    await (client if openai_client(client) is not None else client.client).close()
