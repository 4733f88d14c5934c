"""`teambridge run`: start every platform that is enabled and has credentials; shut down cleanly on a signal."""
from __future__ import annotations

import asyncio
import gc
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import Mapping

from bots.console.chat import login_name
from core.config.schema import Config

log = logging.getLogger("teambridge")
GC_YOUNG = 50_000   # allocations between young collections (Python's default: 700); see run_platforms
QUIET_YOUNG = GC_YOUNG // 10   # young objects worth collecting at a quiet moment (see collect_when_quiet)
QUIET_EVERY = 0.25             # seconds between looks for a quiet moment


def _platforms(config: Config) -> list[tuple[str, type, bool]]:
    """(name, adapter class, enabled) for each platform; imported lazily so one platform's import problem can't stop
    another."""
    from bots.discord.client import DiscordAdapter
    from bots.slack.app import SlackAdapter
    return [("slack", SlackAdapter, config.slack.enabled), ("discord", DiscordAdapter, config.discord.enabled)]


def plan_platforms(config: Config, env: Mapping[str, str]) -> tuple[list[tuple[str, type]], list[str]]:
    """Which platforms can start, and one line per enabled platform that can't, naming what is missing."""
    ready, problems = [], []
    for name, cls, enabled in _platforms(config):
        if not enabled:
            continue
        missing = cls.missing_credentials(config, env)
        if missing:
            problems.append(f"{name}: not started — set {' and '.join(missing)} (in the environment or .env)")
        else:
            ready.append((name, cls))
    return ready, problems


async def run_platforms(config: Config, config_path: Path, env: Mapping[str, str]) -> int:
    from bots.runtime import (lease_seconds, open_runtime, orphan_sweep_seconds, sweep_orphaned_replies,
                              sweep_retention, sync_knowledge)

    lease = lease_seconds(env)   # a bad TEAMBRIDGE_LEASE_SECONDS stops the start before anything else
    ready, problems = plan_platforms(config, env)
    for line in problems:
        print(f"teambridge: {line}", file=sys.stderr)
    if not ready:
        print("teambridge: no platform credentials found — starting the console instead "
              "(type a message, Ctrl-D to quit).", file=sys.stderr)
        runtime = await open_runtime(config, env)
        try:
            await console_session(runtime, config_path, user=login_name(), assistant=config.console.assistant)
        finally:
            await runtime.aclose()
        return 0

    runtime = await open_runtime(config, env)
    runtime.prepare()   # spare conversations made while the platforms connect, not in the first answers' way
    readiness, monitor = _readiness(config, runtime, ready), None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    reloader = _make_reloader(config_path, runtime)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if reloader is not None:
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(reloader.reload_now()))
    adapters = []
    sweeper: asyncio.Task | None = None
    code = 0
    retention: asyncio.Task | None = None
    collector: asyncio.Task | None = None
    try:
        if config.monitoring is not None:  # up before the platforms: /healthz answers, /readyz says 503 until then
            from bots.monitoring import MonitoringServer
            monitor = MonitoringServer(readiness, runtime.metrics, host=config.monitoring.host,
                                       port=config.monitoring.port)
            await monitor.start()
        await sync_knowledge(runtime)
        for name, cls in ready:
            adapter = cls.from_env(runtime.service, env)
            try:
                await adapter.start()
            except Exception as err:  # startup errors carry a message for the admin (bad token, missing intent)
                log.debug("%s failed to start", name, exc_info=True)
                print(f"teambridge: {name} could not start: {err}", file=sys.stderr)
                return 2
            adapters.append(adapter)
            readiness.running(name, lambda adapter=adapter: adapter.connected)
            recovered = await runtime.service.recover_interrupted(adapter)
            if recovered:
                log.info("%s: marked %d interrupted replies from the last run", name, recovered)
        sweeper = asyncio.create_task(sweep_orphaned_replies(runtime.service, adapters,
                                                             every=orphan_sweep_seconds(lease)))
        retention = asyncio.create_task(sweep_retention(runtime))
        collector = asyncio.create_task(collect_when_quiet(runtime.service))
        if reloader is not None:
            await reloader.start()
        # What start-up built lives as long as the process: frozen, the collections a burst of answers triggers
        # don't walk it again and again (a full one took ~0.1 s of a burst's CPU in the bench's profile).
        gc.freeze()
        # A burst of answers keeps tens of thousands of young objects alive at once (its turns, requests and
        # streams), and every young collection walks all of them: at Python's default (a collection per 700
        # allocations) a burst of 200 mentions spent 40–90 ms in ~70 collections before its requests left
        # (python -m bench.hotpath). Collected every 50,000 instead, it meets one or none; reference counting
        # frees everything that is not a cycle at once, so only cyclic garbage waits longer.
        gc.set_threshold(GC_YOUNG, 20, 20)
        log.info("teambridge is running (%s). Ctrl-C to stop.", ", ".join(a.name for a in adapters))
        code = await _until_stopped(stop, adapters)
    finally:
        if sweeper is not None:
            sweeper.cancel()
        if retention is not None:
            retention.cancel()
        if collector is not None:
            collector.cancel()
        if reloader is not None:
            await reloader.stop()
        await _shut_down(runtime, adapters)
        await runtime.aclose()
        if monitor is not None:
            await monitor.stop()
    return code


async def collect_when_quiet(service, *, every: float = QUIET_EVERY, young: int = QUIET_YOUNG) -> None:
    """A young collection whenever nothing is being answered and enough young objects are pending.

    Between bursts the young generation keeps what the last answers left behind (their cycles, the platform
    SDK's caches), and the next burst then reaches GC_YOUNG sooner: a collection in the middle of a burst walks
    every live object of every answer on its way to the model (15–50 ms for a burst of 200 in bench.hotpath,
    in front of their requests). Collected while quiet, it walks only what survived the answers, and a burst
    starts with the young generation empty."""
    while True:
        await asyncio.sleep(every)
        if service.turns_in_flight == 0 and gc.get_count()[0] >= young:
            gc.collect(0)


async def _until_stopped(stop: asyncio.Event, adapters: list) -> int:
    """0 once a signal asks to stop; 1 when a platform's connection gave up for good (a process that answers
    nothing must not look alive: exiting lets a supervisor restart it)."""
    stopped = asyncio.ensure_future(stop.wait())
    watchers = {asyncio.ensure_future(a.wait_dead()): a for a in adapters}
    try:
        done, _ = await asyncio.wait({stopped, *watchers}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in (stopped, *watchers):
            future.cancel()
    for watcher, adapter in watchers.items():
        if watcher in done and not watcher.cancelled():
            print(f"teambridge: {adapter.name} stopped working ({watcher.result()}); exiting so that a "
                  "supervisor restarts teambridge", file=sys.stderr)
            return 1
    return 0


async def _shut_down(runtime, adapters: list) -> None:
    """Stop taking new messages -> let the answers in flight finish within the grace period -> mark the rest
    as cut off -> only then close the platforms (their HTTP sessions carry those last edits)."""
    service = runtime.service
    in_flight = service.turns_in_flight
    grace = runtime.config.shutdown_grace_seconds
    log.info("shutting down: no new messages; letting %d answer(s) in flight finish (up to %g s)", in_flight, grace)
    service.stop_accepting()
    for adapter in adapters:
        try:
            await adapter.stop_receiving()
        except Exception:
            log.exception("error while stopping %s from receiving", adapter.name)
    interrupted = await service.shutdown()
    marked, unmarked = service.cut_off["marked"], service.cut_off["unmarked"]
    if in_flight or interrupted:
        log.info("%d answer(s) finished within the grace period", max(in_flight - interrupted, 0))
    if interrupted:
        log.warning("%d answer(s) did not finish within the grace period: %d marked as cut off%s", interrupted,
                    marked, f", {unmarked} could not be marked (the next start marks them)" if unmarked else "")
    for adapter in adapters:
        try:
            await adapter.stop()
        except Exception:
            log.exception("error while stopping %s", adapter.name)


def _readiness(config: Config, runtime, ready: list[tuple[str, type]]):
    """What /readyz waits for: every enabled platform connected (one without credentials never is) and the
    database answering."""
    from bots.monitoring import Readiness

    readiness = Readiness(lambda: runtime.store.get_preference("teambridge:health"))
    started = {name for name, _ in ready}
    for name, _, enabled in _platforms(config):
        if enabled:
            readiness.expect(name, "starting" if name in started else "not started: credentials missing")
    return readiness


def _make_reloader(config_path: Path, runtime):
    from core.admin.reload import ConfigReloader

    async def applied(config: Config) -> None:
        await runtime.apply_config(config)   # rebuilds tools/backends, syncs new knowledge files, then swaps

    def rejected(errors: list[str]) -> None:
        pass  # the reloader logged them, once

    reloader = ConfigReloader(config_path, applied, on_error=rejected, current=runtime.config)

    async def reload_command(msg, rest: str) -> str:
        errors = await reloader.reload_now()
        return "Config reloaded." if not errors else "Config not reloaded:\n" + "\n".join(errors)

    runtime.service.add_command("reload", reload_command)
    return reloader


@contextlib.asynccontextmanager
async def reloading(config_path: Path, runtime):
    """Hot reload for the console paths (`teambridge chat`, `run` without platforms): poll config.yaml, reload on
    SIGHUP, and the admin `reload` command."""
    reloader = _make_reloader(config_path, runtime)
    await reloader.start()
    reloader.install_sighup()
    try:
        yield reloader
    finally:
        await reloader.stop()


async def console_session(runtime, config_path: Path, *, user: str, assistant: str | None) -> None:
    """The console platform on this terminal until end of input (`teambridge chat`, and `run` without platforms)."""
    from bots.console.chat import ConsoleChat, stdin_lines
    from bots.console.terminal import terminal_console
    from bots.runtime import sync_knowledge

    await sync_knowledge(runtime)
    chat = ConsoleChat(runtime.service, user=user, assistant=assistant, out=sys.stdout,
                       files_dir=Path.cwd() / "teambridge-files", terminal=terminal_console())
    async with reloading(config_path, runtime):   # config.yaml edits apply to the next message
        await chat.run(stdin_lines())
