"""Logging for the `teambridge` process: level and format from the environment, the libraries' chatter muted.

TEAMBRIDGE_LOG_LEVEL (default INFO; `chat` defaults to WARNING so the console stays clean) and
TEAMBRIDGE_LOG_FORMAT (`text` | `json`: one JSON object per line, for log shippers). At INFO there is one line
per answered message (core.admin.observe.TurnLog) and no line per HTTP request.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from typing import Mapping, TextIO

FORMATS = ("text", "json")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# Libraries that log every HTTP request at INFO (httpx2 under the OpenAI SDK: "HTTP Request: POST …"), or
# request/response bodies at DEBUG — which may hold user content. Only their warnings and errors are ours to see.
CHATTY = ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "aiohttp", "aiohttp.access", "slack_sdk",
          "slack_bolt", "websockets", "asyncio")

# Start-up warnings nobody can act on:
# - bolt: we hand AsyncApp a ready client, and bolt also reads SLACK_BOT_TOKEN from the environment by itself,
#   then warns that this token "will be unused" — which is exactly what we want.
# - discord.py: voice needs PyNaCl/davey; teambridge never joins a voice channel.
QUIET = {
    "slack_bolt.AsyncApp": ("`token` will be unused",),
    "discord.client": ("voice will NOT be supported",),
}


class LogSettingError(ValueError):
    pass


def setup_logging(env: Mapping[str, str], *, default_level: str = "INFO", stream: TextIO | None = None) -> None:
    """Configure the root logger once per process. Raises LogSettingError for a bad level or format."""
    level = (env.get("TEAMBRIDGE_LOG_LEVEL") or default_level).strip().upper()
    if level not in LEVELS:
        raise LogSettingError(f"TEAMBRIDGE_LOG_LEVEL={level!r}: use one of {', '.join(LEVELS)}")
    fmt = (env.get("TEAMBRIDGE_LOG_FORMAT") or "text").strip().lower()
    if fmt not in FORMATS:
        raise LogSettingError(f"TEAMBRIDGE_LOG_FORMAT={fmt!r}: use text or json")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in CHATTY:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    for name, fragments in QUIET.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Drop) for f in logger.filters):
            logger.addFilter(_Drop(fragments))


class _Drop(logging.Filter):
    def __init__(self, fragments: tuple[str, ...]) -> None:
        super().__init__()
        self._fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(f in message for f in self._fragments)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the answer's fields as keys of their own."""

    def format(self, record: logging.LogRecord) -> str:
        data = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                        + f".{int(record.msecs):03d}Z",
                "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        turn = getattr(record, "turn", None)
        if isinstance(turn, dict):
            data.update(turn)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)
