"""The database engine: SQLite by default (a file under the XDG data directory), any SQLAlchemy
URL otherwise (``postgresql+psycopg://...`` for PostgreSQL).

One synchronous SQLAlchemy engine serves both; async callers run their work in a thread with
``Database.run`` (the async SQLite driver is not a dependency, and one code path for both
databases is easier to keep correct). SQLite gets WAL mode and a busy timeout so that the
backend's threads and an operator's ``sqlite3`` shell can share the file.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlmodel import Session

T = TypeVar("T")


def ensure_sqlite_dir(url: str) -> None:
    """Create the directory of a SQLite file URL (the data directory may not exist yet)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_db_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get their directory and pragmas."""
    ensure_sqlite_dir(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def redact(url: str) -> str:
    """The URL with its password hidden, for logs and /api/v1/info."""
    return make_url(url).render_as_string(hide_password=True)


class Database:
    """The engine plus a way for async code to use it without blocking the event loop."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_db_engine(url)

    async def run(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn(session)`` in a worker thread; commit if it returns, roll back if it raises."""
        return await asyncio.to_thread(self._run_sync, fn)

    def _run_sync(self, fn: Callable[[Session], T]) -> T:
        with Session(self.engine) as session, session.begin():
            return fn(session)

    def dispose(self) -> None:
        self.engine.dispose()
