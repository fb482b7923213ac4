"""The database layer: migrations on SQLite (the default) and on a real PostgreSQL server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from backend.db.engine import Database, create_db_engine, redact
from backend.db.migrate import HEAD_REVISION, current_revision, head_revision, upgrade
from backend.settings import Settings, default_database_url
from tests.pg_fixture import pg_server, postgres_url  # noqa: F401


def _schema_info(url: str) -> dict[str, str]:
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            return dict(conn.execute(sa.text("SELECT key, value FROM schema_info")).all())
    finally:
        engine.dispose()


def test_default_url_is_a_sqlite_file_in_the_xdg_data_dir(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("OPSCONSOLE_DATABASE_URL", raising=False)
    url = default_database_url()
    assert url == f"sqlite:///{tmp_path / 'xdg' / 'opsconsole' / 'opsconsole.db'}"
    assert Settings().database_url == url


def test_sqlite_upgrade_creates_the_file_and_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'not' / 'yet' / 'there.db'}"
    assert current_revision(url) is None
    upgrade(url)
    upgrade(url)
    assert (tmp_path / "not" / "yet" / "there.db").is_file()
    assert current_revision(url) == head_revision() == HEAD_REVISION
    assert _schema_info(url) == {"created_by": "opsconsole"}


def test_a_database_behind_the_head_is_upgraded_and_one_at_it_is_left_alone(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url, "0005")
    assert current_revision(url) == "0005"
    upgrade(url)
    assert current_revision(url) == HEAD_REVISION
    # At the head, a fresh process upgrades without loading Alembic (the backend's start).
    check = f"from backend.db.migrate import upgrade; upgrade({url!r}); import sys; "
    check += "print('alembic' in sys.modules)"
    ran = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert ran.stdout.strip() == "False", ran.stderr


def test_postgres_upgrade(postgres_url: str) -> None:  # noqa: F811
    assert current_revision(postgres_url) is None
    upgrade(postgres_url)
    upgrade(postgres_url)
    assert current_revision(postgres_url) == head_revision()
    assert _schema_info(postgres_url) == {"created_by": "opsconsole"}


async def test_database_run_commits_in_a_thread(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    db = Database(url)
    try:
        await db.run(
            lambda s: s.execute(sa.text("INSERT INTO schema_info (key, value) VALUES ('k', 'v')"))
        )
        rows = await db.run(lambda s: s.execute(sa.text("SELECT value FROM schema_info")).all())
    finally:
        db.dispose()
    assert ("v",) in rows


def test_redact_hides_the_password() -> None:
    assert "secret" not in redact("postgresql+psycopg://u:secret@db:5432/x")
