"""A throwaway PostgreSQL server for tests: initdb into a temp dir, 127.0.0.1, a free port.

Use it by importing the fixtures into a test module:
``from tests.pg_fixture import pg_server, postgres_url  # noqa: F401``.

The binaries are searched in PATH, /usr/local/bin and /usr/lib/postgresql/<version>/bin (Debian).
initdb refuses to run as root, so as root the server runs as the ``postgres`` OS user. Without the
binaries the tests are skipped with the reason, unless ``CI`` is set: CI must run them.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SEARCH_DIRS = ("/usr/local/bin",)
DEBIAN_ROOT = Path("/usr/lib/postgresql")


def find_pg_bin() -> Path | None:
    """The directory holding both ``initdb`` and ``pg_ctl``, or None."""
    dirs: list[Path] = []
    on_path = shutil.which("pg_ctl")
    if on_path:
        dirs.append(Path(on_path).parent)
    dirs += [Path(d) for d in SEARCH_DIRS]
    if DEBIAN_ROOT.is_dir():
        versions = sorted(DEBIAN_ROOT.iterdir(), key=lambda p: _version_key(p.name), reverse=True)
        dirs += [v / "bin" for v in versions]
    for d in dirs:
        if (d / "initdb").exists() and (d / "pg_ctl").exists():
            return d
    return None


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres_user(cmd: list[str]) -> list[str]:
    """initdb/postgres refuse root: run them as the ``postgres`` user when we are root."""
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", "postgres", "--", *cmd]
    return ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(cmd)]


@dataclass
class PgServer:
    """A PostgreSQL server in a temp dir on 127.0.0.1; tests may stop and start it again."""

    bin_dir: Path
    root: Path
    fsync: bool = False  # tests need no durability; benchmarks of durable writes do
    port: int = 0

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its SQLAlchemy URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self.port = _free_port()
        initdb = [str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", "postgres"]
        _run(_as_postgres_user([*initdb, "-A", "trust", "-E", "UTF8", "--no-sync"]), "initdb")

    def start(self) -> None:
        options = f"-p {self.port} -h 127.0.0.1 -k {self.root}" + ("" if self.fsync else " -F")
        pg_ctl = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir)]
        command = [*pg_ctl, "-l", str(self.root / "log"), "-o", options, "-w", "-t", "30", "start"]
        _run(_as_postgres_user(command), "pg_ctl start")

    def stop(self) -> None:
        """Stop at once, as a crashed or killed server would."""
        command = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate"]
        subprocess.run(_as_postgres_user([*command, "-w", "stop"]), capture_output=True, timeout=60)


def _run(cmd: list[str], what: str) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({result.returncode}): {result.stderr or result.stdout}")


@contextlib.contextmanager
def running_server(fsync: bool = False) -> Iterator[PgServer]:
    """A new server for as long as the block runs (``fsync``: durable, for benchmarks)."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise RuntimeError(
            "PostgreSQL binaries (initdb, pg_ctl) not found in PATH, /usr/local/bin or "
            + str(DEBIAN_ROOT)
        )
    server = PgServer(bin_dir, Path(tempfile.mkdtemp(prefix="opsconsole-pg-")), fsync=fsync)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


def _new_server() -> Iterator[PgServer]:
    if find_pg_bin() is None:
        message = "PostgreSQL binaries (initdb, pg_ctl) not found"
        if os.environ.get("CI"):
            pytest.fail(message + " — CI must install postgresql")
        pytest.skip(message)
    with running_server() as server:
        yield server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One server for the session; tests get their own database on it."""
    yield from _new_server()


@pytest.fixture
def private_pg() -> Iterator[PgServer]:
    """A server of the test's own, which it may stop and start."""
    yield from _new_server()


@pytest.fixture
def postgres_url(pg_server: PgServer) -> str:
    """A fresh, empty database on the session's server."""
    return pg_server.create_database()
