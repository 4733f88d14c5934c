"""A real, throwaway PostgreSQL server for the tests and the bench (tests/support/postgres.py, bench/fleet.py).

Uses the server binaries on this machine (Debian's `postgresql` package: /usr/lib/postgresql/<v>/bin; `.ci/run`
installs it): initdb into a temporary directory, then `postgres` on 127.0.0.1 on a free port, fsync off (a test
database needs no durability across power loss). PostgreSQL refuses to run as root, so as root the server runs
as the `postgres` user that the package creates. `ExternalServer` uses a server someone else runs instead.
"""
from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

START_TIMEOUT = 60.0
PASSWORD = "teambridge-test"   # of the throwaway test server's superuser


def bin_dir() -> Path | None:
    """The directory with initdb, postgres and pg_isready (Debian keeps them out of PATH)."""
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                      key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if versions:
        return Path(versions[-1]).parent
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One server for the whole test session; each test gets a database of its own (`new_database`)."""

    def __init__(self, bin_dir: Path) -> None:
        self._bin = bin_dir
        self._dir = Path(tempfile.mkdtemp(prefix="tb-pg-"))
        self._proc: subprocess.Popen | None = None
        self._as_user: list[str] = []
        self.url = ""
        self._counter = itertools.count(1)

    def _run_as(self) -> list[str]:
        if os.geteuid() != 0:
            return []
        # postgres refuses root; the Debian package made this user. It must be able to write the data directory.
        shutil.chown(self._dir, "postgres", "postgres")
        return ["runuser", "-u", "postgres", "--"]

    def start(self) -> None:
        self._as_user = self._run_as()
        data = self._dir / "data"
        pwfile = self._dir / "pw"
        pwfile.write_text(PASSWORD)
        if self._as_user:
            shutil.chown(pwfile, "postgres", "postgres")
        # TCP needs the password (as a deployment would); the socket in our temp dir is trusted.
        subprocess.run([*self._as_user, str(self._bin / "initdb"), "-D", str(data), "-U", "postgres",
                        "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}",
                        "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
                       check=True, capture_output=True)
        for attempt in range(5):  # the free port may be taken by someone else between the probe and the bind
            port = _free_port()
            self._proc = subprocess.Popen(
                [*self._as_user, str(self._bin / "postgres"), "-D", str(data), "-p", str(port),
                 "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self._dir}",
                 "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                 "-c", "max_connections=300", "-c", "shared_buffers=32MB"],
                stdout=subprocess.DEVNULL, stderr=open(self._dir / "server.log", "ab"))
            try:
                if self._wait_ready(port):
                    self.url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/postgres"
                    return
            except BaseException:
                self._stop_process()
                raise
            self._stop_process()
        raise RuntimeError(f"PostgreSQL did not start; see {self._dir / 'server.log'}")

    def _wait_ready(self, port: int) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            ready = subprocess.run([str(self._bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-q"],
                                   capture_output=True)
            if ready.returncode == 0:
                return True
            time.sleep(0.1)
        return False

    def _stop_process(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        # a "fast" shutdown: clients are disconnected at once (SIGTERM's "smart" one waits for every pool to close,
        # ~40 s at the end of a test session, and a kill after that left the server itself running)
        stopped = subprocess.run([*self._as_user, str(self._bin / "pg_ctl"), "stop", "-D", str(self._dir / "data"),
                                  "-m", "fast", "-w", "-t", "20"], capture_output=True)
        if stopped.returncode != 0:
            proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        self._stop_process()
        shutil.rmtree(self._dir, ignore_errors=True)

    def new_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        name = f"tb_{os.getpid()}_{next(self._counter)}_{uuid.uuid4().hex[:6]}"
        _create_database(self.url, name)
        return _with_database(self.url, name)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def _create_database(url: str, name: str) -> None:
    import asyncio

    import asyncpg

    async def create() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')  # our own generated name
        finally:
            await conn.close()

    asyncio.run(create()) if not _loop_running() else _run_in_thread(create)


def _loop_running() -> bool:
    import asyncio
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _run_in_thread(factory) -> None:
    import asyncio
    import threading

    error: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(factory())
        except BaseException as exc:  # re-raised in the caller
            error.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if error:
        raise error[0]


class ExternalServer:
    """A server someone else runs (TEAMBRIDGE_TEST_POSTGRES)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._counter = itertools.count(1)

    def stop(self) -> None:
        pass

    def new_database(self) -> str:
        name = f"tb_{os.getpid()}_{next(self._counter)}_{uuid.uuid4().hex[:6]}"
        _create_database(self.url, name)
        return _with_database(self.url, name)
