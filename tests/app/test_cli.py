"""The command line as a new user meets it: --version, help, clear one-line errors with a non-zero exit, init."""
from __future__ import annotations

import argparse
import re

import pytest

from bots.app import main
from tests.console_harness import REPO, openai_env, teambridge
from bots.standins.openai_server import FakeOpenAI

CONFIG = str(REPO / "config.yaml")


@pytest.fixture
async def fake():
    async with FakeOpenAI() as fake:
        yield fake


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's --help, --version and errors
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys):
    code, out, _ = run_main(capsys, "--version")
    assert code == 0 and re.fullmatch(r"teambridge \d+\.\d+\.\d+\n", out), out


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, path + (name,))


def test_every_command_and_option_has_a_description_and_help():
    from bots.app import parser
    missing = []
    for path, parser in _walk(parser()):
        if path and not parser.description:
            missing.append(" ".join(path) + ": no description")
        for action in parser._actions:
            if not action.help and not isinstance(action, argparse._SubParsersAction):
                missing.append(f"{' '.join(path) or 'teambridge'} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, missing


@pytest.mark.parametrize("argv, says", [
    (("usage", "--period", "2weeks"), "2weeks"),
    (("usage", "--by", "colour"), "colour"),
    (("frobnicate",), "frobnicate"),
    (("files", "delete"), "file ids"),
    (("chat", "--assistant", "nobody"), "nobody"),
])
def test_a_bad_argument_exits_non_zero_with_one_clear_line(capsys, monkeypatch, tmp_path, argv, says):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("TEAMBRIDGE_DB", str(tmp_path / "tb.db"))
    code, out, err = run_main(capsys, *argv, *(("--config", CONFIG) if argv[0] != "frobnicate" else ()))
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and lines[0].startswith("teambridge"), err
    assert "Traceback" not in err


def test_check_without_a_config_says_how_to_point_at_one(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TEAMBRIDGE_CONFIG", raising=False)
    code, _, err = run_main(capsys, "check")
    assert code == 2
    assert "config.yaml" in err and "--config" in err and "TEAMBRIDGE_CONFIG" in err and "teambridge init" in err


async def test_run_without_an_openai_key_says_so_before_anything_else(tmp_path):
    run = await teambridge("run", "--config", CONFIG, cwd=tmp_path, env={"TEAMBRIDGE_DB": str(tmp_path / "tb.db")})
    assert run.code == 2
    assert run.err.strip().splitlines()[0].startswith("teambridge: OPENAI_API_KEY is not set"), run.err
    assert "starting the console" not in run.err


async def test_a_bad_lease_setting_is_one_line_and_nothing_starts(fake, tmp_path):
    env = {**openai_env(fake, tmp_path), "TEAMBRIDGE_LEASE_SECONDS": "soon"}
    run = await teambridge("run", "--config", CONFIG, cwd=tmp_path, env=env)
    assert run.code == 2 and "Traceback" not in run.err
    assert run.err.strip().splitlines() == [
        "teambridge: TEAMBRIDGE_LEASE_SECONDS='soon': use a number of seconds from 1 to 3600"], run.err


async def test_chat_with_a_rejected_key_prints_one_line(fake, tmp_path):
    env = {**openai_env(fake, tmp_path), "OPENAI_API_KEY": "not-a-key"}
    run = await teambridge("chat", "--config", CONFIG, "--assistant", "food", cwd=tmp_path, stdin="hello\n", env=env)
    assert "Traceback" not in run.err + run.out
    assert run.out == "⚠️ OpenAI rejected the API key (401)\n"   # the person at the console reads one line


async def test_init_writes_a_config_that_checks(tmp_path):
    run = await teambridge("init", cwd=tmp_path)
    assert run.code == 0, run.err
    assert (tmp_path / "config.yaml").read_text() == (REPO / "config.yaml").read_text()
    assert (tmp_path / ".env.example").read_text() == (REPO / ".env.example").read_text()
    handbook = "knowledge/teambridge-handbook.md"  # the docs assistant searches it
    assert (tmp_path / handbook).read_text() == (REPO / handbook).read_text()
    checked = await teambridge("check", cwd=tmp_path)
    assert checked.code == 0, checked.err
    again = await teambridge("init", cwd=tmp_path)  # never overwrites what is there
    assert again.code == 0 and "exists" in again.out


async def test_knowledge_sync_shows_progress_at_a_terminal_and_only_the_result_in_a_pipe(fake, tmp_path):
    import asyncio
    import os
    import sys

    import pexpect

    (tmp_path / "config.yaml").write_text("default_assistant: docs\nassistants:\n  docs:\n    model: gpt-4.1-mini\n"
                                          "    tools: [{type: file_search, files: ['*.md']}]\n")
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.md").write_text(f"# {name}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "TEAMBRIDGE_"))}
    env.update(PYTHONPATH=str(REPO), **openai_env(fake, tmp_path))
    child = pexpect.spawn(sys.executable, ["-m", "bots.app", "knowledge", "sync"], cwd=str(tmp_path), env=env,
                          encoding="utf-8", timeout=30)
    try:
        await asyncio.to_thread(child.expect, pexpect.EOF)
    finally:
        child.close(force=True)
    assert "[3/3] docs: c.md" in child.before and "3 added" in child.before

    piped = await teambridge("knowledge", "sync", cwd=tmp_path, env=openai_env(fake, tmp_path))
    assert piped.code == 0 and "[1/3]" not in piped.out + piped.err and "3 unchanged" in piped.out
