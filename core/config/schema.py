"""config.yaml's schema as pydantic models (extra keys forbidden). Secrets never live here: tokens and keys come
from the environment.

Loading with `PATH:LINE: key.path: message` errors: core.config.load; cross-references: core.config.checks.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, overload

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from core.config.policy import LimitsConfig, PricesConfig


class _Strict(BaseModel):
    # Discord snowflakes and Slack-ish ids are often written unquoted in YAML (`123456789012345678:`),
    # which YAML reads as int: accept numbers wherever the schema wants a string.
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


# ---- tools --------------------------------------------------------------------------------------


FUNCTION_REF = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*")
TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class CodeInterpreterTool(_Strict):
    type: Literal["code_interpreter"]
    memory_limit: Literal["1g", "4g", "16g", "64g"] | None = None


class ChunkingConfig(_Strict):
    max_chunk_size_tokens: int = Field(800, ge=100, le=4096)
    chunk_overlap_tokens: int = Field(400, ge=0)


class FileSearchTool(_Strict):
    type: Literal["file_search"]
    files: list[str] = []                 # paths or globs, relative to the config file
    max_num_results: int | None = Field(None, ge=1, le=50)
    score_threshold: float | None = Field(None, ge=0, le=1)
    chunking: ChunkingConfig | None = None


class FunctionTool(_Strict):
    type: Literal["function"]
    function: str                         # "package.module:function"
    name: str | None = None               # defaults to the Python function's name
    description: str | None = None        # defaults to the docstring's first paragraph
    parameters: dict[str, Any] | None = None  # explicit JSON schema; else derived from type hints
    timeout: float = Field(30.0, gt=0)

    @field_validator("function")
    @classmethod
    def _import_path(cls, v: str) -> str:
        if not FUNCTION_REF.fullmatch(v):
            raise ValueError(f"must look like 'package.module:function' (got {v!r})")
        return v

    @field_validator("name")
    @classmethod
    def _tool_name(cls, v: str | None) -> str | None:
        # The Responses API rejects other function names with a 400 at the first request.
        if v is not None and not TOOL_NAME.fullmatch(v):
            raise ValueError(f"must be 1-64 letters, digits, '_' or '-' (got {v!r})")
        return v

    @field_validator("parameters")
    @classmethod
    def _schema_is_object(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None and v.get("type") != "object":
            raise ValueError("must be a JSON schema with type: object")
        return v


class ImageGenerationTool(_Strict):
    type: Literal["image_generation"]
    size: str | None = None
    quality: str | None = None


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class McpTool(_Strict):
    """Tools of one MCP server (see `mcp_servers`), offered to the model as function tools."""
    type: Literal["mcp"]
    server: str
    allowed_tools: list[str] | None = None            # default: every tool the server lists
    require_approval: Literal["never", "always"] | list[str] = "never"

    def needs_approval(self, tool: str) -> bool:
        if isinstance(self.require_approval, list):
            return tool in self.require_approval
        return self.require_approval == "always"


class WebSearchTool(_Strict):
    """OpenAI's hosted web search (type: openai backends)."""
    type: Literal["web_search"]
    search_context_size: Literal["low", "medium", "high"] | None = None


ToolConfig = Annotated[
    CodeInterpreterTool | FileSearchTool | FunctionTool | ImageGenerationTool | McpTool | WebSearchTool,
    Field(discriminator="type"),
]


# ---- MCP servers ----------------------------------------------------------------------------------


class McpServerConfig(_Strict):
    """One MCP server: streamable HTTP (`url`) or stdio (`command`, started and stopped by teambridge)."""
    url: str | None = None
    headers: dict[str, str] = {}          # header name -> NAME of the environment variable holding its value
    command: list[str] | None = None
    env: dict[str, str] = {}              # stdio: variable for the server -> NAME of ours holding its value
    cwd: str | None = None                # stdio: working directory, relative to the config file
    timeout: float = Field(30, gt=0)      # seconds one tool call may take
    connect_timeout: float = Field(20, gt=0)   # a stdio server's start (Python + the SDK) counts too

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"https?://[^/\s]+", v):
            raise ValueError(f"must be an http:// or https:// URL (got {v!r})")
        return v

    @field_validator("headers", "env")
    @classmethod
    def _variable_names(cls, v: dict[str, str]) -> dict[str, str]:
        for key, variable in v.items():
            if not _ENV_NAME.fullmatch(variable):
                raise ValueError(f"{key}: the value is the NAME of an environment variable (like TICKETS_TOKEN), "
                                 "never the secret itself")
        return v

    @field_validator("command")
    @classmethod
    def _command(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and (not v or not v[0]):
            raise ValueError("must name the program to start, e.g. [python, -m, notes_server]")
        return v

    @model_validator(mode="after")
    def _one_transport(self) -> "McpServerConfig":
        if (self.url is None) == (self.command is None):
            raise ValueError("give either url (streamable HTTP) or command (stdio)")
        if self.url is not None and (self.env or self.cwd):
            raise ValueError("env and cwd are for stdio servers (command)")
        if self.command is not None and self.headers:
            raise ValueError("headers are for HTTP servers (url)")
        return self


class ApprovalsConfig(_Strict):
    """Tool calls that need a person's approval (require_approval)."""
    timeout_seconds: float = Field(300, gt=0)   # unanswered this long: denied
    approvers: Literal["asker_or_admin", "admin"] = "asker_or_admin"


# ---- files routing (attachments) ---------------------------------------------------------------


class FilesConfig(_Strict):
    max_image_mb: float = Field(20, gt=0)
    max_code_interpreter_mb: float = Field(50, gt=0)
    max_document_mb: float = Field(50, gt=0)
    conversation_store_expiry_days: int = Field(7, ge=1, le=365)


# ---- access -------------------------------------------------------------------------------------


class AccessConfig(_Strict):
    allow_users: list[str] = []
    deny_users: list[str] = []
    allow_roles: list[str] = []
    deny_roles: list[str] = []
    allow_channels: list[str] = []
    deny_channels: list[str] = []
    allow_workspaces: list[str] = []
    deny_workspaces: list[str] = []
    allow_dms: bool = True


# ---- assistants ---------------------------------------------------------------------------------

Scope = Literal["thread", "channel", "user", "channel_user"]


class AssistantConfig(_Strict):
    name: str = ""                        # filled from the mapping key
    description: str = ""
    backend: str = "openai"
    model: str
    instructions: str = ""
    tools: list[ToolConfig] = []
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_output_tokens: int | None = Field(None, ge=16)
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    scope: Scope = "thread"
    vision: bool = True                   # model accepts input_image
    max_tool_rounds: int = Field(8, ge=1, le=50)
    files: FilesConfig = FilesConfig()
    access: AccessConfig = AccessConfig()
    limits: LimitsConfig | None = None     # overrides of the global limits for this assistant
    reset_deletes: bool = False            # /reset also deletes the old conversation at the backend

    @overload
    def tool(self, kind: Literal["file_search"]) -> FileSearchTool | None: ...
    @overload
    def tool(self, kind: Literal["code_interpreter"]) -> CodeInterpreterTool | None: ...
    @overload
    def tool(self, kind: Literal["function"]) -> FunctionTool | None: ...
    @overload
    def tool(self, kind: Literal["mcp"]) -> McpTool | None: ...
    @overload
    def tool(self, kind: str) -> ToolConfig | None: ...

    def tool(self, kind: str) -> ToolConfig | None:
        """The first tool of this type (for function tools: the first of them), or None."""
        return next((t for t in self.tools if t.type == kind), None)


# ---- backends -----------------------------------------------------------------------------------


ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class OpenAIBackendConfig(_Strict):
    """OpenAI's Responses API with Conversations: the history lives at OpenAI (also Azure OpenAI's v1 API)."""
    type: Literal["openai"] = "openai"
    base_url: str | None = None           # OPENAI_BASE_URL wins when set
    timeout: float = Field(120, gt=0)
    max_retries: int = Field(3, ge=0, le=10)
    spare_conversations: int = Field(4, ge=0, le=50)  # made ahead, so a new thread's first answer starts sooner
    context_tokens: int | None = Field(None, ge=1000)  # compaction threshold (context_management); None: OpenAI's


class _ModelServerConfig(_Strict):
    """A model server that keeps no state: teambridge keeps each conversation's history and sends it along."""
    base_url: str
    api_key_env: str | None = None        # the NAME of the environment variable holding the key, never the key
    timeout: float = Field(120, gt=0)
    max_retries: int = Field(3, ge=0, le=10)
    context_tokens: int = Field(32000, ge=1000)   # history a turn may send; older turns condensed or dropped
    vision: bool = True                   # images go along as input (inline)

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and not ENV_NAME.fullmatch(v):
            raise ValueError("must be the NAME of an environment variable (letters, digits, _), not the key itself")
        return v

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"https?://", v):
            raise ValueError(f"must be an http(s) URL like http://127.0.0.1:11434/v1 (got {v!r})")
        return v


class ResponsesBackendConfig(_ModelServerConfig):
    """The Responses API without server-side state (Ollama, vLLM, LM Studio, llama.cpp, OpenRouter, LiteLLM)."""
    type: Literal["responses"]


class ChatCompletionsBackendConfig(_ModelServerConfig):
    """The Chat Completions API (any OpenAI-compatible server; Anthropic's and Gemini's compatible endpoints)."""
    type: Literal["chat_completions"]


def _backend_type(value: Any) -> str:
    # `type` may be left out for the OpenAI backend, as before there were other types.
    if isinstance(value, dict):
        return str(value.get("type", "openai"))
    return str(getattr(value, "type", "openai"))


BackendConfig = Annotated[
    Annotated[OpenAIBackendConfig, Tag("openai")] | Annotated[ResponsesBackendConfig, Tag("responses")]
    | Annotated[ChatCompletionsBackendConfig, Tag("chat_completions")],
    Discriminator(_backend_type)]


# ---- platforms ----------------------------------------------------------------------------------


class ChannelRoute(_Strict):
    assistant: str | None = None
    respond_without_mention: bool = False  # answer every message in this channel
    follow_threads: bool = True            # Slack: keep answering in a thread the bot is part of


class SlackConfig(_Strict):
    enabled: bool = True
    mode: Literal["socket", "http"] = "socket"
    http_port: int = Field(3000, ge=1, le=65535)
    default_assistant: str | None = None
    dm_assistant: str | None = None
    allow_dms: bool = True
    follow_threads: bool = True
    native_streaming: bool = True
    # Slack's Agent messaging experience (manifest features.agent_view): each DM message starts a thread of its own
    agent_view: bool = False
    slash_command: str = "/teambridge"
    channels: dict[str, ChannelRoute] = {}
    max_file_mb: float = Field(50, gt=0)


class DiscordConfig(_Strict):
    enabled: bool = True
    default_assistant: str | None = None
    dm_assistant: str | None = None
    allow_dms: bool = True
    auto_thread: bool = False
    guilds: list[str] = []                 # sync slash commands per guild (instant); empty = global
    channels: dict[str, ChannelRoute] = {}
    max_file_mb: float = Field(10, gt=0)
    # Sharding (large bots, or several processes): the total number of shards, and the ones this process runs
    # (default: all of them). Each process on one PostgreSQL database runs its own shards; the one with shard 0
    # also gets the DMs and syncs the slash commands. Read at start (a reload does not re-shard).
    shard_count: int | None = Field(None, ge=1)
    shard_ids: list[int] | None = None

    @model_validator(mode="after")
    def _shards_fit(self) -> "DiscordConfig":
        if self.shard_ids is None:
            return self
        if self.shard_count is None:
            raise ValueError("shard_ids needs shard_count (the total number of shards)")
        if not self.shard_ids:
            raise ValueError("shard_ids: list at least one shard (or leave it out for all of them)")
        wrong = [i for i in self.shard_ids if not 0 <= i < self.shard_count]
        if wrong:
            raise ValueError(f"shard_ids {wrong} are not shards of shard_count {self.shard_count} "
                             f"(0 to {self.shard_count - 1})")
        if len(set(self.shard_ids)) != len(self.shard_ids):
            raise ValueError("shard_ids lists a shard twice")
        return self

    @property
    def runs_shard_zero(self) -> bool:
        """This process gets the DMs and syncs the slash commands (one process does, not each)."""
        return self.shard_ids is None or 0 in self.shard_ids


class ConsoleConfig(_Strict):
    assistant: str | None = None


class RetentionConfig(_Strict):
    conversations_days: int | None = Field(None, ge=1)  # idle longer: deleted at the backend and here; None: kept


class MonitoringConfig(_Strict):
    """`teambridge run` serves /healthz, /readyz and /metrics here (port 0: any free port, logged at start)."""
    port: int = Field(9464, ge=0, le=65535)
    host: str = "127.0.0.1"


class Config(_Strict):
    database: str = "teambridge.db"
    default_assistant: str
    shutdown_grace_seconds: float = Field(30, ge=0)
    backends: dict[str, BackendConfig] = {"openai": OpenAIBackendConfig()}
    assistants: dict[str, AssistantConfig]
    admins: list[str] = []                 # user ids allowed to run admin commands
    limits: LimitsConfig = LimitsConfig()
    prices: PricesConfig = PricesConfig()
    slack: SlackConfig = SlackConfig()
    discord: DiscordConfig = DiscordConfig()
    console: ConsoleConfig = ConsoleConfig()
    retention: RetentionConfig = RetentionConfig()
    mcp_servers: dict[str, McpServerConfig] = {}
    approvals: ApprovalsConfig = ApprovalsConfig()
    monitoring: MonitoringConfig | None = None   # off when absent
    base_dir: Path = Path(".")             # set by the loader: directory of the config file

    @field_validator("database")
    @classmethod
    def _no_password_in_yaml(cls, value: str) -> str:
        # an SQLite path, or postgresql://user@host:5432/name. Secrets come from the environment only:
        # PGPASSWORD, or the whole URL in TEAMBRIDGE_DB.
        if value.startswith(("postgresql://", "postgres://")):
            credentials = value.split("://", 1)[1].split("@", 1)
            if len(credentials) == 2 and ":" in credentials[0]:
                raise ValueError("no password in config.yaml: set PGPASSWORD, or put the whole URL in TEAMBRIDGE_DB")
        return value

    def assistant(self, name: str) -> AssistantConfig:
        return self.assistants[name]
