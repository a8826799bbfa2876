"""Applying the Alembic migrations when a home is opened.

Opening a home is on the path of every SDK call in a fresh process, so the common case
(schema already current) must cost one indexed query, not an Alembic script scan:
``HEAD_REVISION`` names the newest migration (a test checks it against Alembic's view),
and Alembic itself runs only when the stored revision differs. Several processes may
open a new home at the same moment; a lock (a file lock next to a SQLite database, an
advisory lock on PostgreSQL) lets exactly one of them migrate.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import inspect, text

from airegistry.storage.metadata.database import Database

HEAD_REVISION = "0004_s3_configs"
MIGRATIONS_DIR = Path(__file__).parent.parent / "migrations"
_PG_LOCK_ID = 0x41495245  # "AIRE"


def current_revision(db: Database) -> str | None:
    with db.read() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def alembic_config(db: Database):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    return cfg


@contextlib.contextmanager
def _migration_lock(db: Database, lock_path: Path | None) -> Iterator[None]:
    if db.is_sqlite:
        if lock_path is None:
            yield
            return
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
    else:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_ID})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_ID})


def migrate(db: Database, *, lock_path: Path | None = None) -> None:
    """Bring the schema to ``HEAD_REVISION``; cheap when it already is."""
    if current_revision(db) == HEAD_REVISION:
        return
    with _migration_lock(db, lock_path):
        if current_revision(db) == HEAD_REVISION:
            return
        from alembic import command

        cfg = alembic_config(db)
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
