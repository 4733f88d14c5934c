"""The error types every layer shares. Imports nothing from core, so anyone may raise or catch these."""
from __future__ import annotations


class ConfigError(Exception):
    """A config that cannot be used. `errors` holds one `PATH:LINE: key.path: message` line per problem
    (or, from the tool registry, one readable line per tool that cannot be used)."""

    def __init__(self, errors: list[str] | str) -> None:
        self.errors: list[str] = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("\n".join(self.errors))


class BackendError(Exception):
    """A failure the user should read about: the message is one readable line, no secrets."""

    def __init__(self, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.message = message
        self.retryable = retryable


class UserFacingError(Exception):
    """Bad input from a user (unsupported file, unknown assistant, ...): reply with the message, no traceback."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ReplyStopped(Exception):
    """A reader stopped the reply (Slack's stop button on a streaming message): stop generating, say nothing more."""
