"""Composition root: builds core's service with its store, backend, tools and files from one Config."""
from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass, field
from typing import Callable, Mapping

from core.admin.conversations import ConversationAdmin, ConversationStore, ForgetCommand, LocalConversations
from prometheus_client import CollectorRegistry

from core.admin.metrics import Metrics
from core.admin.observe import Observers, TurnLog
from core.backends.factory import close_client, make_backend, make_client, openai_client
from core.backends.openai.conversations import OpenAIConversations
from core.backends.openai.files import OpenAIFileBackend
from core.backends.tokens import encoding_for
from core.config.schema import Config
from core.errors import ConfigError
from core.files.attachments import AttachmentRouter
from core.admin.housekeeping import vector_storage
from core.files.knowledge import KnowledgeSync
from core.chat.service import ChatService
from core.chat.limits import UsageLimiter
from core.store import is_postgres_url, make_store
from core.store.protocol import Store
from core.tools.mcp import McpServers
from core.tools.registry import ToolRegistry
from core.admin.usage import usage_text

log = logging.getLogger("teambridge")

USAGE_REFRESH_SECONDS = 10.0
DEFAULT_LEASE_SECONDS = 30.0   # TEAMBRIDGE_LEASE_SECONDS changes it (see lease_seconds)


def env_value(env: Mapping[str, str], name: str) -> str | None:
    """An empty variable counts as unset."""
    value = env.get(name)
    return value if value else None


def lease_seconds(env: Mapping[str, str]) -> float:
    """TEAMBRIDGE_LEASE_SECONDS: how long a process may stay silent before the others take it for dead and mark
    its replies in flight as cut off (default 30; it renews every third of that). Shorter: a crash is cleaned up
    sooner, but a process stalled that long (a long GC pause, a frozen VM) is taken for dead while it lives."""
    raw = env_value(env, "TEAMBRIDGE_LEASE_SECONDS")
    if raw is None:
        return DEFAULT_LEASE_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 1.0 <= value <= 3600.0:   # (a NaN fails this too)
        raise ConfigError(f"teambridge: TEAMBRIDGE_LEASE_SECONDS={raw!r}: use a number of seconds from 1 to 3600")
    return value


def orphan_sweep_seconds(lease: float) -> float:
    """Every process looks for a dead one's replies every half lease: marked within 1.5 leases of the death."""
    return lease / 2


def database_location(config: Config, env: Mapping[str, str]) -> str:
    """TEAMBRIDGE_DB wins over `database:`: an SQLite path or a postgresql:// URL."""
    return env_value(env, "TEAMBRIDGE_DB") or config.database


@dataclass
class Runtime:
    config: Config
    store: Store
    service: ChatService
    knowledge: KnowledgeSync
    file_backend: OpenAIFileBackend | None   # None without a `type: openai` backend (no uploads, no knowledge)
    clients: list
    metrics: Metrics
    env: Mapping[str, str] = field(default_factory=dict)
    mcp: McpServers | None = None

    backend_configs: dict = field(default_factory=dict)   # backend name -> (its config, its client)
    backends: list = field(default_factory=list)          # every backend built, for a clean close
    conversations: Callable[[], ConversationAdmin] | None = None   # the admins' view, on the current config
    prepared: bool = False                                # a long-running process: backends set up ahead

    def prepare(self) -> None:
        """`teambridge run`, once started: each backend sets up now what its first answers would otherwise set up
        on their way to the model (spare conversations, its HTTP session). Not for one-off commands and chats:
        a spare made for them would only be deleted again at exit."""
        self.prepared = True
        for backend in self.backends:
            backend.prepare()

    async def apply_config(self, config: Config) -> None:
        """Hot reload: rebuild what is built from the config, then swap it in for new turns.

        The tool registry is rebuilt (new or changed function tools), a client is made for a new or changed
        `backends` entry, and the knowledge vector stores are synced when any assistant's file_search files
        changed — before the swap, so the first turn on the new config already searches them. Raises (and the
        running config stays) when the tools can't be built; a failed knowledge sync is logged and the previous
        vector stores stay in use."""
        tools = ToolRegistry.from_config(config, mcp=self.mcp, audit=self.store)
        if self.mcp is not None:  # changed servers restart, the others keep their connection
            await self.mcp.update(config.mcp_servers)
        backends = {}
        for name, cfg in config.backends.items():
            known = self.backend_configs.get(name)
            if known is not None and known[0] == cfg:
                client = known[1]
            else:
                client = make_client(name, cfg, self.env)
                self.clients.append(client)   # an old client may still serve a turn in flight: closed at exit
                self.backend_configs[name] = (cfg, client)
            backends[name] = make_backend(name, cfg, client, tools=tools, store=self.store)
        if _knowledge_files(config) != _knowledge_files(self.config):
            try:
                for report in await self.knowledge.sync(config):
                    for line in report.lines():
                        (log.warning if report.failed else log.info)("%s", line)
            except Exception:
                log.exception("config reload: knowledge sync failed; file_search keeps the previous files")
        self.backends.extend(backends.values())
        if self.prepared:
            for backend in backends.values():
                backend.prepare()
        self.service.apply_config(config, backends=backends, tools=tools)
        self.config = config

    async def aclose(self) -> None:
        if self.mcp is not None:  # stops the stdio servers teambridge started
            await self.mcp.aclose()
        # each finishes labelling its spare conversations and deletes the unused ones, then closes its client:
        # side by side, so that several backends' shutdowns don't add up
        await asyncio.gather(*(backend.aclose() for backend in self.backends))
        for client in self.clients:
            await close_client(client)
        await self.store.close()


def _knowledge_files(config: Config) -> dict:
    """What a knowledge sync depends on: each file_search assistant's file patterns and chunking."""
    out = {}
    for name, assistant in config.assistants.items():
        tool = assistant.tool("file_search")
        if tool is not None:
            out[name] = (tuple(tool.files), tool.chunking, config.base_dir)
    return out


async def vector_storage_or_none(config: Config, store: Store, file_backend: OpenAIFileBackend | None):
    """Sizes of our vector stores for the usage report, or None (the report then says storage isn't included)."""
    if file_backend is None:
        return None
    try:
        return await vector_storage(config, store, file_backend)
    except Exception as err:  # tokens are still worth showing without storage
        log.warning("could not read vector store sizes from OpenAI: %s", err)
        return None


async def open_runtime(config: Config, env: Mapping[str, str]) -> Runtime:
    """Raises core.errors.BackendError when a backend's key is missing (before anything is opened)."""
    clients = {name: make_client(name, cfg, env) for name, cfg in config.backends.items()}
    # TEAMBRIDGE_INSTANCE: a stable name for this process (several processes on one PostgreSQL database), so that
    # after a restart it marks its own cut replies at once; unset, they are marked after its lease runs out.
    location = database_location(config, env)
    store = make_store(location, owner=env_value(env, "TEAMBRIDGE_INSTANCE"), lease=lease_seconds(env))
    await store.open()
    mcp = McpServers(config.mcp_servers, env, base_dir=config.base_dir)
    tools = ToolRegistry.from_config(config, mcp=mcp, audit=store)
    await mcp.start()   # connects in the background: a server that is down does not hold anything up
    backends = {name: make_backend(name, cfg, clients[name], tools=tools, store=store)
                for name, cfg in config.backends.items()}
    await _load_encodings(config, backends)
    # Files, vector stores and containers live at OpenAI: the first `type: openai` backend's client serves them.
    openai_clients = [c for c in (openai_client(clients.get("openai")), *map(openai_client, clients.values())) if c]
    file_backend = OpenAIFileBackend(openai_clients[0]) if openai_clients else None
    knowledge = KnowledgeSync(file_backend, store)
    # Where each backend's conversations live, for the admins' view: OpenAI's Conversations API, or our history.
    conversation_stores: dict[str, ConversationStore] = {}
    for name, backend in backends.items():
        api = openai_client(clients[name])
        conversation_stores[name] = (OpenAIConversations(api) if backend.capabilities.server_history and api
                                     else LocalConversations(backend.session))

    def conversations() -> ConversationAdmin:
        return ConversationAdmin(service.config, store, conversation_stores, file_backend)

    # Several processes on one PostgreSQL database: budgets count every process's turns (re-read every 10 s).
    # ... and the per-minute message rate counts a user's messages on every process (store.message_rates()).
    limiter = UsageLimiter(store, refresh=USAGE_REFRESH_SECONDS if is_postgres_url(location) else None,
                           rates=store.message_rates())
    metrics = Metrics(CollectorRegistry())  # this process's own registry, never prometheus_client's global one
    service = ChatService(config, store, backends, files=AttachmentRouter(file_backend, store), knowledge=knowledge,
                          turn_locks=store.turn_locks(), claims=store, limiter=limiter,
                          erase=lambda record: conversations().erase(record), tools=tools,
                          observer=Observers(TurnLog(), metrics))

    async def usage_command(msg, rest: str) -> str:
        storage = await vector_storage_or_none(service.config, store, file_backend)
        return await usage_text(store, service.config.prices, rest.split(), storage=storage)

    service.add_command("usage", usage_command)
    forget = ForgetCommand(conversations)
    service.commands.add("forget", forget, confirm=forget)
    return Runtime(config=config, store=store, service=service, knowledge=knowledge, file_backend=file_backend,
                   clients=list(clients.values()), env=dict(env), metrics=metrics,
                   backend_configs={name: (config.backends[name], client) for name, client in clients.items()},
                   backends=list(backends.values()), conversations=conversations, mcp=mcp)


async def _load_encodings(config: Config, backends: dict) -> None:
    """A backend that keeps the history counts its tokens with the model's real encoding where there is one:
    loaded now, at start (about a second, holding the GIL), rather than in the middle of someone's answer."""
    for assistant in config.assistants.values():
        backend = backends.get(assistant.backend)
        if backend is not None and not backend.capabilities.server_history and encoding_for(assistant.model):
            await backend.tokens(assistant.model).ready()


async def sync_knowledge(runtime: Runtime) -> None:
    """Bring the knowledge vector stores up to date before answering; failures also go to the terminal."""
    for report in await runtime.knowledge.sync(runtime.config):
        for line in report.lines():
            log.info("%s", line)
        if not report.ok:
            for line in report.lines():
                print(line, file=sys.stderr)


async def sweep_orphaned_replies(service: ChatService, adapters: list,
                                 every: float = DEFAULT_LEASE_SECONDS / 2) -> None:
    """Several processes on one database: a process that died leaves replies cut off mid-answer. Every `every`
    seconds each live process takes those whose owner's lease ran out and marks them (each is taken once)."""
    while True:
        await asyncio.sleep(every)
        for adapter in adapters:
            try:
                marked = await service.recover_interrupted(adapter, at_start=False)
            except Exception:
                log.exception("%s: could not look for replies cut off by another process", adapter.name)
                continue
            if marked:
                log.info("%s: marked %d replies cut off by a process that stopped", adapter.name, marked)


RETENTION_SWEEP_SECONDS = 3600.0


async def sweep_retention(runtime: Runtime, every: float = RETENTION_SWEEP_SECONDS) -> None:
    """`retention: {conversations_days: N}`: once at start and then every `every` seconds, conversations idle
    longer than N days are deleted at the backend and here (read from the current config: a reload applies)."""
    while True:
        days = runtime.config.retention.conversations_days
        if days is not None and runtime.conversations is not None:
            observer = runtime.service.observer
            try:
                report = await runtime.conversations().sweep(days)
            except Exception:
                log.exception("retention sweep failed; trying again in %.0f s", every)
                observer.retention_swept(0, failed=True)
            else:
                observer.retention_swept(len(report.deleted))
                log.info("retention: conversations idle for more than %d days: %s", days,
                         " ".join(report.lines()) if report.deleted else "none to delete")
        await asyncio.sleep(every)
