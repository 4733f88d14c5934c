"""Composition root: builds core's service with its store, backend, tools and files from one Config."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from core.backends.openai import OpenAIBackend, make_openai_client
from core.backends.openai_files import OpenAIFileBackend
from core.config import Config
from core.files import AttachmentRouter
from core.knowledge import KnowledgeSync
from core.service import ChatService
from core.store import SqliteStore
from core.tools.registry import ToolRegistry
from core.usage import usage_text

log = logging.getLogger("teambridge")


def env_value(env: Mapping[str, str], name: str) -> str | None:
    """An empty variable counts as unset."""
    value = env.get(name)
    return value if value else None


def database_path(config: Config, env: Mapping[str, str]) -> Path:
    return Path(env_value(env, "TEAMBRIDGE_DB") or config.database)


@dataclass
class Runtime:
    config: Config
    store: SqliteStore
    service: ChatService
    knowledge: KnowledgeSync
    file_backend: OpenAIFileBackend
    clients: list

    async def aclose(self) -> None:
        for client in self.clients:
            await client.close()
        await self.store.close()


async def open_runtime(config: Config, env: Mapping[str, str]) -> Runtime:
    """Raises core.model.BackendError when the OpenAI key is missing (before anything is opened)."""
    clients = {name: make_openai_client(cfg) for name, cfg in config.backends.items()}
    store = SqliteStore(database_path(config, env))
    await store.open()
    tools = ToolRegistry.from_config(config)
    backends = {name: OpenAIBackend(client, tools, max_retries=config.backends[name].max_retries)
                for name, client in clients.items()}
    default_client = clients.get("openai") or next(iter(clients.values()))
    file_backend = OpenAIFileBackend(default_client)
    knowledge = KnowledgeSync(file_backend, store)
    service = ChatService(config, store, backends, files=AttachmentRouter(file_backend, store), knowledge=knowledge)

    async def usage_command(msg, rest: str) -> str:
        return await usage_text(store, service.config.prices, rest.split())

    service.add_command("usage", usage_command)
    return Runtime(config=config, store=store, service=service, knowledge=knowledge, file_backend=file_backend,
                   clients=list(clients.values()))
