"""What every command handler receives, and the exit codes the CLI promises."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable, Mapping

from core.config.schema import Config

EXIT_OK = 0
EXIT_FAILED = 1   # the command ran and something it did failed (e.g. a knowledge file did not sync)
EXIT_CONFIG = 2   # bad config or usage: nothing was done


@dataclass(frozen=True, slots=True)
class Invocation:
    """One run of a command: the parsed arguments, the environment, and the config (loaded before the handler
    runs unless the command registered `needs_config=False`, in which case `config` is None)."""
    args: argparse.Namespace
    env: Mapping[str, str]
    config_path: Path
    config: Config | None

    @property
    def cfg(self) -> Config:
        """The config, for the commands that need one (all but a few)."""
        if self.config is None:
            raise RuntimeError(f"{self.args.command}: registered with needs_config=False but reads the config")
        return self.config


Handler = Callable[[Invocation], Awaitable[int]]


def period(text: str) -> str:
    """A `--period` argument, checked while the arguments are parsed: a bad period is a usage error (exit 2),
    not an empty report."""
    from core.admin.usage import parse_period
    try:
        parse_period(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text
