"""Schema migrations with Alembic, driven from code (no alembic.ini needed at run time).

``upgrade(url)`` brings any database to the newest revision; the backend calls it at start.
New revisions go in ``migrations/versions/`` (``alembic -c <ini> revision`` with
``script_location = backend/db/migrations``, or by hand following ``0001_initial.py``).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from backend.db.engine import create_db_engine

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # Percent signs in URLs (encoded passwords) must be escaped for ConfigParser.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply every migration up to ``revision`` (idempotent)."""
    engine = create_db_engine(url)
    try:
        with engine.begin() as connection:
            cfg = alembic_config(url)
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    """The revision the database is at (None before the first upgrade)."""
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
