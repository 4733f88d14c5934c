"""Hot reload: an admin edits config.yaml while the bot runs -> the new config is applied, or the broken edit is
reported with its line and the running config stays."""
from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from core.config.schema import Config
from core.config.load import load_config
from core.admin.reload import ConfigReloader

GOOD = """\
default_assistant: food
assistants:
  food:
    model: gpt-4.1-mini
    instructions: You are a food expert.
"""

EDITED = GOOD.replace("You are a food expert.", "You are a very terse food expert.")

# line 5 has an unknown key
BROKEN = """\
default_assistant: food
assistants:
  food:
    model: gpt-4.1-mini
    instructionz: You are a food expert.
"""


def write(path: Path, text: str) -> None:
    """Write and move mtime on, so two quick saves never share a timestamp."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text, encoding="utf-8")
    after = max(path.stat().st_mtime_ns, before + 1_000_000)
    os.utime(path, ns=(after, after))


class Admin:
    """What the app does with the reloader's callbacks: swap the config, tell the admin about errors."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.applied: list[Config] = []
        self.errors: list[list[str]] = []
        self.changed = asyncio.Event()

    async def on_change(self, config: Config) -> None:
        self.config = config
        self.applied.append(config)
        self.changed.set()

    def on_error(self, errors: list[str]) -> None:
        self.errors.append(errors)


@pytest.fixture
def setup(tmp_path):
    path = tmp_path / "config.yaml"
    write(path, GOOD)
    admin = Admin(load_config(path))
    reloader = ConfigReloader(path, admin.on_change, on_error=admin.on_error, poll_interval=0.01,
                              current=admin.config)
    return path, admin, reloader


async def settle(reloader: ConfigReloader, polls: int = 2) -> None:
    for _ in range(polls):
        await reloader.poll_once()


async def test_valid_edit_is_applied(setup):
    path, admin, reloader = setup
    await settle(reloader)
    assert admin.applied == []                    # nothing changed yet
    write(path, EDITED)
    await settle(reloader)
    assert admin.config.assistants["food"].instructions == "You are a very terse food expert."
    assert len(admin.applied) == 1 and reloader.current is admin.config
    assert admin.errors == []


async def test_broken_edit_is_rejected_with_its_line_and_the_old_config_stays(setup):
    path, admin, reloader = setup
    old = admin.config
    write(path, BROKEN)
    await settle(reloader)
    assert admin.config is old and admin.applied == []
    assert len(admin.errors) == 1
    assert any(e.startswith(f"{path}:5:") and "instructionz" in e for e in admin.errors[0]), admin.errors
    assert reloader.last_errors == admin.errors[0]
    # the broken file is reported once, not on every poll
    await settle(reloader, 3)
    assert len(admin.errors) == 1
    # fixing it applies the fix
    write(path, EDITED)
    await settle(reloader)
    assert admin.config.assistants["food"].instructions == "You are a very terse food expert."
    assert reloader.last_errors == []


async def test_yaml_syntax_error_reports_its_line(setup):
    path, admin, reloader = setup
    write(path, GOOD + "  oops: [unclosed\nother: 1\n")
    await settle(reloader)
    assert admin.applied == []
    [errors] = admin.errors
    assert errors[0].startswith(f"{path}:")
    line = int(errors[0][len(str(path)) + 1:].split(":")[0])
    assert line >= 6      # the error is at or after the added line, not at the top of the file


async def test_reload_now_applies_or_returns_the_errors(setup):
    path, admin, reloader = setup
    write(path, EDITED)
    assert await reloader.reload_now() == []
    assert admin.config.assistants["food"].instructions == "You are a very terse food expert."
    write(path, BROKEN)
    errors = await reloader.reload_now()
    assert errors and errors[0].startswith(f"{path}:5:")
    assert admin.errors == [errors]
    assert admin.config.assistants["food"].instructions == "You are a very terse food expert."
    # polling afterwards does not load the same content again
    await settle(reloader, 3)
    assert len(admin.applied) == 1 and len(admin.errors) == 1


async def test_half_written_file_is_not_reported(setup):
    path, admin, reloader = setup
    write(path, EDITED[:30])          # an editor's first write...
    await reloader.poll_once()
    write(path, EDITED)               # ...and the rest before the next poll
    await settle(reloader, 3)
    assert admin.errors == []
    assert len(admin.applied) == 1


async def test_touch_or_same_content_is_not_a_change(setup):
    path, admin, reloader = setup
    write(path, GOOD)
    await settle(reloader, 3)
    assert admin.applied == [] and admin.errors == []
    # formatting-only edit: valid, equal config -> nothing to apply
    write(path, GOOD + "\n# a comment\n")
    await settle(reloader, 3)
    assert admin.applied == [] and admin.errors == []


async def test_deleted_file_is_reported_and_the_config_stays(setup):
    path, admin, reloader = setup
    old = admin.config
    path.unlink()
    await reloader.poll_once()
    assert admin.errors == []        # could be a save by rename: give it one more poll
    await reloader.poll_once()
    assert admin.errors == [[f"{path}: file not found; still running the previous config"]]
    assert admin.config is old
    write(path, EDITED)
    await settle(reloader)
    assert admin.config.assistants["food"].instructions == "You are a very terse food expert."


async def test_failing_on_change_is_reported_and_keeps_the_current_config(setup):
    path, admin, _ = setup

    def broken_swap(config: Config) -> None:
        raise RuntimeError("backend for the new config could not start")

    reloader = ConfigReloader(path, broken_swap, on_error=admin.on_error, current=admin.config)
    write(path, EDITED)
    errors = await reloader.reload_now()
    assert errors == [f"{path}: the new config was valid but applying it failed: "
                      "RuntimeError: backend for the new config could not start"]
    assert reloader.current is admin.config


async def test_polling_task_picks_up_an_edit(setup):
    path, admin, reloader = setup
    await reloader.start()
    try:
        write(path, EDITED)
        await asyncio.wait_for(admin.changed.wait(), timeout=5)
    finally:
        await reloader.stop()
    assert admin.config.assistants["food"].instructions == "You are a very terse food expert."


async def test_sighup_reloads(setup):
    path, admin, reloader = setup
    if not hasattr(signal, "SIGHUP") or not reloader.install_sighup():
        pytest.skip("no SIGHUP on this platform")
    try:
        write(path, EDITED)
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.wait_for(admin.changed.wait(), timeout=5)
    finally:
        await reloader.stop()
    assert admin.config.assistants["food"].instructions == "You are a very terse food expert."


async def test_turn_in_flight_keeps_the_config_it_started_with(setup):
    path, admin, reloader = setup
    started_with = admin.config                  # the service's snapshot at the start of a turn
    write(path, EDITED)
    await reloader.reload_now()
    assert started_with.assistants["food"].instructions == "You are a food expert."   # frozen, untouched
    assert admin.config.assistants["food"].instructions == "You are a very terse food expert."
