"""The metadata store: migrations are the schema's owner and stay in step with the tables."""

from __future__ import annotations

import threading
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from airegistry.storage.metadata import Database
from airegistry.storage.metadata.migrate import (
    HEAD_REVISION,
    alembic_config,
    current_revision,
    migrate,
)
from airegistry.storage.metadata.tables import metadata, settings


def test_head_revision_constant_matches_alembic(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'r.db'}")
    script = ScriptDirectory.from_config(alembic_config(db))
    assert script.get_current_head() == HEAD_REVISION


def test_migrated_schema_matches_table_definitions(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'r.db'}")
    migrate(db)
    assert current_revision(db) == HEAD_REVISION
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_concurrent_openers_migrate_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            migrate(Database(url), lock_path=tmp_path / ".lock")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert current_revision(Database(url)) == HEAD_REVISION


def test_sqlite_runs_in_wal_mode_and_writes_are_serialised(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'r.db'}")
    migrate(db)
    with db.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"

    def writer(i: int) -> None:
        for j in range(20):
            with db.write() as conn:
                count = conn.execute(settings.select()).fetchall()
                conn.execute(settings.insert().values(key=f"k{i}-{j}-{len(count)}", value="v"))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with db.read() as conn:
        assert len(conn.execute(settings.select()).fetchall()) == 80
