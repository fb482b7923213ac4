"""Schema migrations with Alembic, driven from code (no alembic.ini needed at run time).

``upgrade(url)`` brings any database to the newest revision; the backend calls it at start.
New revisions go in ``migrations/versions/`` (``alembic -c <ini> revision`` with
``script_location = backend/db/migrations``, or by hand following ``0001_initial.py``), and
``HEAD_REVISION`` names the newest (a test holds it to Alembic's head).

A database already at ``HEAD_REVISION`` is left alone without Alembic: importing it and reading
the migration scripts cost the backend's start about 0.3 s of CPU, while it lists the cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from backend.db.engine import create_db_engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
HEAD_REVISION = "0007"


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # Percent signs in URLs (encoded passwords) must be escaped for ConfigParser.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply every migration up to ``revision`` (idempotent)."""
    engine = create_db_engine(url)
    try:
        if revision == "head" and _revision(engine) == HEAD_REVISION:
            return
        from alembic import command

        with engine.begin() as connection:
            cfg = alembic_config(url)
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)
    finally:
        engine.dispose()


def _revision(engine: sa.Engine) -> str | None:
    """The one revision in Alembic's version table; None without the table, or with several
    (branches are Alembic's to sort out)."""
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table("alembic_version"):
            return None
        rows = connection.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    return rows[0][0] if len(rows) == 1 else None


def current_revision(url: str) -> str | None:
    """The revision the database is at (None before the first upgrade)."""
    from alembic.runtime.migration import MigrationContext

    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str | None:
    """The newest revision of the migration scripts, as Alembic reads them."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
