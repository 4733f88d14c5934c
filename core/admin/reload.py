"""Hot reload of config.yaml: poll the file, validate, hand a valid new Config over; keep the running one otherwise.

The reloader only swaps: the service snapshots the config at the start of each turn, so a turn in flight finishes
on the config it started with and the next turn sees the new one.

Polling (no file-watching dependency): each poll stats the file; when mtime or size moved, the content is hashed,
and an unchanged hash (a `touch`, a save without edits) does nothing. Editors often write a file in several steps
(truncate, then write; or write a temp file and rename), so a change is loaded only once the file's stat has been
the same on two polls in a row — otherwise a half-written file would be reported as broken. reload_now()
(SIGHUP, the admin `reload` command) loads immediately.
"""
from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import os
import signal
from pathlib import Path
from typing import Any, Awaitable, Callable

from core.config.load import load_config
from core.config.schema import Config
from core.errors import ConfigError

log = logging.getLogger(__name__)

OnChange = Callable[[Config], "Awaitable[None] | None"]
OnError = Callable[[list[str]], "Awaitable[None] | None"]
Loader = Callable[[Path], "Config | Awaitable[Config]"]


def _default_loader(path: Path) -> Config:
    return load_config(path)


_MISSING = (-1, -1)


class ConfigReloader:
    def __init__(self, path: str | Path, on_change: OnChange, *, on_error: OnError,
                 poll_interval: float = 1.0, loader: Loader | None = None,
                 current: Config | None = None) -> None:
        """`current`: the config the app is running (loaded at start-up); a reload yielding an equal config is
        not reported as a change. The file as it is at construction counts as already loaded."""
        self.path = Path(path)
        self._on_change = on_change
        self._on_error = on_error
        self.poll_interval = poll_interval
        self._loader: Loader = loader or _default_loader
        self.current = current
        self.last_errors: list[str] = []
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._signal_tasks: set[asyncio.Task[Any]] = set()
        self._sighup_loop: asyncio.AbstractEventLoop | None = None
        self._stat = self._read_stat()              # stat of the content last loaded (or rejected)
        self._digest = self._hash() if self._stat else None
        self._pending: tuple[int, int] | None = None  # a changed stat waiting to be seen twice

    # ---- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._poll_loop(), name=f"config-reload:{self.path}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        if self._sighup_loop is not None:
            self._sighup_loop.remove_signal_handler(signal.SIGHUP)
            self._sighup_loop = None
        for pending in list(self._signal_tasks):
            await asyncio.gather(pending, return_exceptions=True)

    def install_sighup(self) -> bool:
        """Reload on SIGHUP (POSIX). Returns False where the loop has no signal support (Windows)."""
        sighup = getattr(signal, "SIGHUP", None)
        if sighup is None:
            return False
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(sighup, self._on_sighup)
        except (NotImplementedError, RuntimeError):
            return False
        self._sighup_loop = loop
        return True

    def _on_sighup(self) -> None:
        log.info("SIGHUP: reloading %s", self.path)
        task = asyncio.get_running_loop().create_task(self.reload_now())
        self._signal_tasks.add(task)
        task.add_done_callback(self._signal_tasks.discard)

    # ---- reloading --------------------------------------------------------------------------------------

    async def reload_now(self) -> list[str]:
        """Load the file now. Returns [] when it is valid (applied if it changed), else the errors with their
        line numbers (also passed to on_error); the running config stays."""
        async with self._lock:
            self._pending = None
            self._stat = self._read_stat()
            self._digest = self._hash() if self._stat else None
            return await self._load_and_apply()

    async def poll_once(self) -> None:
        """One polling step (the loop calls this every poll_interval)."""
        async with self._lock:
            stat = self._read_stat()
            if stat is None:
                if self._stat is None:          # already reported (or never there)
                    return
                if self._pending != _MISSING:   # a save by rename leaves a moment without the file
                    self._pending = _MISSING
                    return
                self._stat, self._digest, self._pending = None, None, None
                await self._report([f"{self.path}: file not found; still running the previous config"])
                return
            if stat == self._stat:
                self._pending = None
                return
            if self._pending != stat:
                self._pending = stat      # changed: load once it holds still for one more poll
                return
            self._pending = None
            self._stat = stat
            digest = self._hash()
            if digest == self._digest:
                return
            self._digest = digest
            await self._load_and_apply()

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep watching: one failed poll must not end hot reload
                log.exception("config reload: polling %s failed", self.path)

    async def _load_and_apply(self) -> list[str]:
        try:
            config = self._loader(self.path)
            if inspect.isawaitable(config):
                config = await config
        except ConfigError as exc:  # `PATH:LINE: key.path: message` lines
            await self._report(list(exc.errors) or [f"{self.path}: {exc}"])
            return self.last_errors
        except Exception as exc:
            log.exception("config reload: loading %s failed", self.path)
            await self._report([f"{self.path}: {type(exc).__name__}: {exc}"])
            return self.last_errors
        self.last_errors = []
        if config == self.current:
            return []
        try:
            result = self._on_change(config)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            log.exception("config reload: applying the new config from %s failed", self.path)
            await self._report([f"{self.path}: the new config was valid but applying it failed: "
                                f"{type(exc).__name__}: {exc}"])
            return self.last_errors
        self.current = config
        log.info("config reloaded from %s", self.path)
        return []

    async def _report(self, errors: list[str]) -> None:
        self.last_errors = errors
        log.error("config not reloaded, the running config stays:\n%s", "\n".join(errors))
        try:
            result = self._on_error(errors)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("config reload: on_error callback failed")

    # ---- file fingerprint --------------------------------------------------------------------------------

    def _read_stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size

    def _hash(self) -> str | None:
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except FileNotFoundError:
            return None
