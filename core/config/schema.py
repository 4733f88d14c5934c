"""config.yaml -> pydantic models. Secrets never live here: tokens and keys come from the environment.

Loading with `PATH:LINE: key.path: message` errors and cross-reference checks: see load_config().
"""
from __future__ import annotations

import difflib
import glob
import os
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from core.config.policy import LimitsConfig, PricesConfig
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class _Strict(BaseModel):
    # Discord snowflakes and Slack-ish ids are often written unquoted in YAML (`123456789012345678:`),
    # which YAML reads as int: accept numbers wherever the schema wants a string.
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


# ---- tools --------------------------------------------------------------------------------------


_FUNCTION_REF = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*")
_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


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
        if not _FUNCTION_REF.fullmatch(v):
            raise ValueError(f"must look like 'package.module:function' (got {v!r})")
        return v

    @field_validator("name")
    @classmethod
    def _tool_name(cls, v: str | None) -> str | None:
        # The Responses API rejects other function names with a 400 at the first request.
        if v is not None and not _TOOL_NAME.fullmatch(v):
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


ToolConfig = Annotated[
    CodeInterpreterTool | FileSearchTool | FunctionTool | ImageGenerationTool,
    Field(discriminator="type"),
]


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

    def tool(self, kind: str):
        return next((t for t in self.tools if t.type == kind), None)


# ---- backends -----------------------------------------------------------------------------------


class OpenAIBackendConfig(_Strict):
    type: Literal["openai"] = "openai"
    base_url: str | None = None           # OPENAI_BASE_URL wins when set
    timeout: float = Field(120, gt=0)
    max_retries: int = Field(3, ge=0, le=10)
    spare_conversations: int = Field(4, ge=0, le=50)  # made ahead, so a new thread's first answer starts sooner


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


class ConsoleConfig(_Strict):
    assistant: str | None = None


class Config(_Strict):
    database: str = "teambridge.db"
    default_assistant: str
    shutdown_grace_seconds: float = Field(30, ge=0)
    backends: dict[str, OpenAIBackendConfig] = {"openai": OpenAIBackendConfig()}
    assistants: dict[str, AssistantConfig]
    admins: list[str] = []                 # user ids allowed to run admin commands
    limits: LimitsConfig = LimitsConfig()
    prices: PricesConfig = PricesConfig()
    slack: SlackConfig = SlackConfig()
    discord: DiscordConfig = DiscordConfig()
    console: ConsoleConfig = ConsoleConfig()
    base_dir: Path = Path(".")             # set by the loader: directory of the config file

    def assistant(self, name: str) -> AssistantConfig:
        return self.assistants[name]


# ---- loading ------------------------------------------------------------------------------------


class ConfigError(Exception):
    """A config that cannot be used. `errors` holds one `PATH:LINE: key.path: message` line per problem."""

    def __init__(self, errors: list[str] | str) -> None:
        self.errors: list[str] = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("\n".join(self.errors))


# Keys that look like credentials. `max_output_tokens` and friends end in "tokens" and do not match.
_SECRET_KEY = re.compile(r"(?:^|[_-])(?:api[_-]?key|apikey|token|secret|password|passwd)$", re.IGNORECASE)
# Mappings whose keys are names chosen by the admin (or JSON schema properties), not settings.
_NAME_MAPS = {"assistants", "backends", "channels", "properties", "parameters"}

_Loc = tuple[Any, ...]


def load_config(path: str | Path) -> Config:
    """Read, validate and cross-check a config file. Raises ConfigError listing every problem found."""
    path = Path(path)
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{shown}: file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{shown}: cannot read: {exc}"]) from None

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        context = exc.context or ""
        if context and exc.context_mark and exc.problem_mark and exc.context_mark.line != exc.problem_mark.line:
            context += f" that starts on line {exc.context_mark.line + 1}"
        what = " ".join(p for p in (exc.problem, f"({context})" if context else None) if p)
        raise ConfigError([f"{shown}:{line}: yaml: {what or exc}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{shown}:1: yaml: {exc}"]) from None

    if root is None:
        raise ConfigError([f"{shown}:1: <root>: the file is empty; it needs at least default_assistant and assistants"])
    if not isinstance(root, yaml.MappingNode) or not isinstance(data, dict):
        raise ConfigError([f"{shown}:{root.start_mark.line + 1}: <root>: must be a mapping of keys to values"])

    doc = _Doc(shown, root)
    errors: list[str] = []
    skip: set[str] = set()  # key paths already reported here; pydantic's "unknown key" would repeat them

    _check_duplicates(doc, root, (), errors)
    for loc in _secret_keys(root, ()):
        errors.append(doc.error(loc, f"secrets never go in the config file: remove it and set the environment "
                                     f"variable {_env_var_for(loc)} instead"))
        skip.add(_dotted(loc))
        _drop(data, loc)

    if "base_dir" in data:
        errors.append(doc.error(("base_dir",), "is set by the loader to the config file's directory; remove it"))
        del data["base_dir"]
    assistants = data.get("assistants")
    if isinstance(assistants, dict):
        for key, body in assistants.items():
            if not isinstance(body, dict):
                continue
            # A copy: YAML aliases (`math: *food`) share one dict, which would end up with the last name.
            assistants[key] = body = dict(body)
            if "name" in body and str(body["name"]) != str(key):
                errors.append(doc.error(("assistants", key, "name"),
                                        f"an assistant's name is its key under assistants ({key!r}); remove it"))
            body["name"] = str(key)
    base_dir = path.resolve().parent
    data["base_dir"] = str(base_dir)

    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc, message = _explain(err)
            if _dotted(loc) not in skip:
                errors.append(doc.error(loc, message))
    errors.extend(_cross_check(data, base_dir, doc))
    if errors or config is None:
        raise ConfigError(_by_line(shown, errors))
    return config


def _by_line(shown: str, errors: list[str]) -> list[str]:
    """Errors in file order (stable), without repeats."""
    def line(e: str) -> int:
        rest = e[len(shown) + 1:]
        number = rest.split(":", 1)[0]
        return int(number) if number.isdigit() else 0
    return sorted(dict.fromkeys(errors), key=line)


def check_summary(config: Config) -> list[str]:
    """One line per assistant for `teambridge check`, e.g. `math: gpt-4.1-mini, tools: code_interpreter, scope thread`."""
    lines = []
    for name, a in config.assistants.items():
        tools = ", ".join(_tool_label(t) for t in a.tools) or "none"
        lines.append(f"{name}: {a.model}, tools: {tools}, scope {a.scope}")
    return lines


def _tool_label(tool: Any) -> str:
    if isinstance(tool, FunctionTool):
        return f"function {tool.name or tool.function.rsplit(':', 1)[1].rsplit('.', 1)[-1]}"
    if isinstance(tool, FileSearchTool):
        return f"file_search ({len(tool.files)} file pattern{'s' if len(tool.files) != 1 else ''})"
    return tool.type


# ---- locating errors in the YAML node tree -------------------------------------------------------


class _Doc:
    """The composed YAML tree of one file: turns a pydantic-style loc into `PATH:LINE: key.path`."""

    def __init__(self, shown: str, root: yaml.Node) -> None:
        self.shown = shown
        self.root = root

    def locate(self, loc: _Loc) -> tuple[int, str]:
        node: yaml.Node | None = self.root
        line = self.root.start_mark.line + 1
        parts: list[str] = []
        for i, comp in enumerate(loc):
            if comp == "[key]":       # pydantic's marker for "the dict key itself is wrong"
                continue
            if isinstance(comp, str) and _is_tag(loc[:i], comp):
                continue              # a discriminated union's tag ('function'): in the loc, not in the YAML
            if isinstance(node, yaml.MappingNode):
                hit = _lookup(node, comp)
                if hit is None:
                    node = None       # a missing key: stay on the parent mapping's line
                    parts.append(str(comp))
                    continue
                key_node, node = hit
                # The key's line, for values too: a block mapping's value starts on the next line.
                line = key_node.start_mark.line + 1
            elif isinstance(node, yaml.SequenceNode) and isinstance(comp, int) and 0 <= comp < len(node.value):
                node = node.value[comp]
                line = node.start_mark.line + 1
            else:
                node = None
            parts.append(str(comp))
        return line, ".".join(parts) or "<root>"

    def error(self, loc: _Loc, message: str) -> str:
        line, dotted = self.locate(loc)
        return f"{self.shown}:{line}: {dotted}: {message}"


def _scalar(node: yaml.Node | None) -> str | None:
    return node.value if isinstance(node, yaml.ScalarNode) else None


def _lookup(node: yaml.MappingNode, comp: Any) -> tuple[yaml.Node, yaml.Node] | None:
    want = str(comp)
    found = None
    for key_node, value_node in node.value:  # the last duplicate wins, as in yaml.safe_load
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == want:
            found = (key_node, value_node)
    return found


def _dotted(loc: _Loc) -> str:
    return ".".join(str(c) for c in loc)


def _check_duplicates(doc: _Doc, node: yaml.Node, loc: _Loc, errors: list[str]) -> None:
    # PyYAML silently keeps the last of two equal keys; an admin editing the first one would wonder why
    # nothing changes.
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            if key is None:
                continue
            if key in seen:
                errors.append(f"{doc.shown}:{key_node.start_mark.line + 1}: {_dotted(loc + (key,))}: "
                              f"duplicate key (first set on line {seen[key]}); the last one wins, remove one")
            else:
                seen[key] = key_node.start_mark.line + 1
            _check_duplicates(doc, value_node, loc + (key,), errors)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_duplicates(doc, item, loc + (i,), errors)


def _secret_keys(node: yaml.Node, loc: _Loc) -> list[_Loc]:
    found: list[_Loc] = []
    if isinstance(node, yaml.MappingNode):
        names_only = bool(loc) and loc[-1] in _NAME_MAPS
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            if key is None:
                continue
            if not names_only and _SECRET_KEY.search(key):
                found.append(loc + (key,))
                continue
            if key == "parameters":   # a JSON schema may well have a property called "token"
                continue
            found.extend(_secret_keys(value_node, loc + (key,)))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found.extend(_secret_keys(item, loc + (i,)))
    return found


def _env_var_for(loc: _Loc) -> str:
    key = str(loc[-1]).lower()
    if loc[0] == "slack":
        if "app" in key:
            return "SLACK_APP_TOKEN"
        if "sign" in key or "secret" in key:
            return "SLACK_SIGNING_SECRET"
        return "SLACK_BOT_TOKEN"
    if loc[0] == "discord":
        return "DISCORD_BOT_TOKEN"
    return "OPENAI_API_KEY"


def _drop(data: Any, loc: _Loc) -> None:
    for comp in loc[:-1]:
        try:
            data = data[comp]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(data, dict):
        data.pop(loc[-1], None)


# ---- readable pydantic messages ------------------------------------------------------------------


def _explain(err: dict[str, Any]) -> tuple[_Loc, str]:
    """A pydantic error -> (loc, message an admin understands)."""
    loc: _Loc = tuple(err["loc"])
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    if kind == "extra_forbidden":
        key = loc[-1]
        message = f"unknown key {key!r}"
        known = _fields_at(loc[:-1])
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.7)
        if close:
            message += f" (did you mean {close[0]!r}?)"
        elif known:
            message += f"; allowed here: {', '.join(sorted(known))}"
        return loc, message
    if kind == "missing":
        return loc, f"required key {loc[-1]!r} is missing"
    if kind == "union_tag_invalid":
        return loc + ("type",), f"unknown tool type {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        return loc + ("type",), "every tool needs a type: code_interpreter, file_search, function or image_generation"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        hint = ""
        if len(loc) >= 2 and loc[-2] == "tools" and isinstance(value, str):
            hint = f" (write `- type: {value}`)"
        return loc, f"must be a mapping of keys to values, not {_kind_of(value)}{hint}"
    if kind == "list_type":
        return loc, f"must be a list, not {_kind_of(value)}"
    message = str(err.get("msg", "invalid value"))
    if message.startswith("Value error, "):
        return loc, message[len("Value error, "):]
    message = message.replace("Input should be", "must be")
    if isinstance(value, (str, int, float, bool)) and not isinstance(value, dict):
        message += f" (got {value!r})"
    elif value is None:
        message += " (got nothing)"
    return loc, message


def _kind_of(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"{type(value).__name__} {value!r}"


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return tp
            tp = members[0]
        else:
            return tp


def _type_at(loc: _Loc) -> Any:
    """The schema type at `loc` (discriminator tags in the loc pick the union member), or None."""
    tp: Any = Config
    for comp in loc:
        tp = _unwrap(tp)
        origin = typing.get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(comp))
            if field is None:
                return None
            tp = field.annotation
        elif origin is dict:
            tp = typing.get_args(tp)[1]
        elif origin is list:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            tp = next((m for m in typing.get_args(tp) if _tag_of(m) == comp), None)
            if tp is None:
                return None
        else:
            return None
    return _unwrap(tp)


def _is_tag(loc: _Loc, comp: Any) -> bool:
    tp = _type_at(loc)
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and any(
        _tag_of(m) == comp for m in typing.get_args(tp))


def _fields_at(loc: _Loc) -> list[str]:
    """Field names an admin may write at `loc`."""
    tp = _type_at(loc)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        hidden = {"name"} if tp is AssistantConfig else {"base_dir"} if tp is Config else set()
        return [f for f in tp.model_fields if f not in hidden]
    return []


def _tag_of(tp: Any) -> Any:
    if isinstance(tp, type) and issubclass(tp, BaseModel) and "type" in tp.model_fields:
        args = typing.get_args(tp.model_fields["type"].annotation)
        return args[0] if args else None
    return None


# ---- cross references -----------------------------------------------------------------------------


def _cross_check(data: dict[str, Any], base_dir: Path, doc: _Doc) -> list[str]:
    """Names that must refer to something, tools that must import, files that must exist.

    Works on the raw YAML data, defensively, so these problems are reported together with schema errors
    instead of one round of fixes later.
    """
    errors: list[str] = []
    assistants = data.get("assistants")
    assistants = assistants if isinstance(assistants, dict) else {}
    names = sorted(str(k) for k in assistants)
    backends = data.get("backends", {"openai": {}})
    backend_names = sorted(str(k) for k in backends) if isinstance(backends, dict) else []

    def assistant_ref(loc: _Loc, value: Any) -> None:
        if isinstance(value, (str, int)) and str(value) not in names:
            close = difflib.get_close_matches(str(value), names, n=1, cutoff=0.75)
            hint = f"did you mean {close[0]!r}? " if close else ""
            errors.append(doc.error(loc, f"unknown assistant {str(value)!r}; {hint}assistants: "
                                         f"{', '.join(names) or 'none'}"))

    if isinstance(data.get("assistants"), dict) and not assistants:
        errors.append(doc.error(("assistants",), "define at least one assistant"))
    if assistants:
        assistant_ref(("default_assistant",), data.get("default_assistant"))
        for section in ("slack", "discord"):
            platform = data.get(section)
            if not isinstance(platform, dict):
                continue
            assistant_ref((section, "default_assistant"), platform.get("default_assistant"))
            assistant_ref((section, "dm_assistant"), platform.get("dm_assistant"))
            channels = platform.get("channels")
            for channel, route in (channels.items() if isinstance(channels, dict) else ()):
                if isinstance(route, dict):
                    assistant_ref((section, "channels", channel, "assistant"), route.get("assistant"))
        console = data.get("console")
        if isinstance(console, dict):
            assistant_ref(("console", "assistant"), console.get("assistant"))

    for name, assistant in assistants.items():
        if not isinstance(assistant, dict):
            continue
        base = ("assistants", name)
        backend = assistant.get("backend", "openai")
        if isinstance(backend, str) and isinstance(backends, dict) and backend not in backend_names:
            errors.append(doc.error(base + ("backend",) if "backend" in assistant else base,
                                    f"unknown backend {backend!r}; backends: {', '.join(backend_names) or 'none'}"))
        tools = assistant.get("tools")
        seen: dict[str, int] = {}
        for i, tool in enumerate(tools if isinstance(tools, list) else ()):
            if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
                continue
            loc = base + ("tools", i)
            tool_name = tool["type"]
            ref = tool.get("function")
            if tool_name == "function" and isinstance(ref, str) and _FUNCTION_REF.fullmatch(ref):
                tool_name = str(tool.get("name") or ref.rsplit(":", 1)[1].rsplit(".", 1)[-1])
                problem = _function_problem(ref, base_dir, tool)
                if problem:
                    # Located like pydantic's locs, which carry the union tag: tools.0.function.function.
                    errors.append(doc.error(loc + ("function", "function"), problem))
            elif tool_name == "file_search" and isinstance(tool.get("files"), list):
                for j, pattern in enumerate(tool["files"]):
                    if isinstance(pattern, str) and not _matching_files(pattern, base_dir):
                        errors.append(doc.error(loc + ("file_search", "files", j),
                                                f"no file matches {pattern!r} (relative to {base_dir})"))
            if tool_name in seen:
                errors.append(doc.error(loc, f"duplicate tool name {tool_name!r} (also tools.{seen[tool_name]}); "
                                             "give one of them another name"))
            else:
                seen[tool_name] = i
    return errors


def _function_problem(ref: str, base_dir: Path, tool: dict[str, Any]) -> str | None:
    """Import the function and build its declaration as the registry will: any failure, as one message."""
    # Imported lazily: core.tools.registry imports this module.
    from core.tools.registry import ToolRegistry, import_function

    try:
        function = import_function(ref, base_dir)
        name = tool.get("name") if isinstance(tool.get("name"), str) and _TOOL_NAME.fullmatch(tool["name"]) else None
        parameters = tool.get("parameters")
        ToolRegistry().register(function, name=name, ref=ref,
                                parameters=parameters if isinstance(parameters, dict) and parameters.get("type") == "object"
                                else None)
    except ConfigError as exc:
        return "; ".join(exc.errors)
    return None


def _matching_files(pattern: str, base_dir: Path) -> list[str]:
    full = pattern if os.path.isabs(pattern) else os.path.join(base_dir, pattern)
    return [p for p in glob.glob(full, recursive=True) if os.path.isfile(p)]


def resolve_files(config: Config, tool: FileSearchTool) -> list[Path]:
    """The existing files a file_search tool names (globs expanded, relative to the config's directory), sorted."""
    found: set[str] = set()
    for pattern in tool.files:
        found.update(_matching_files(pattern, config.base_dir))
    return sorted(Path(p) for p in found)
