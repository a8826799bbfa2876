"""Metadata store: the registry's tables and a small transaction helper around SQLAlchemy.

Core tables instead of ORM classes: every query the services run is a handful of
explicit statements, and Core keeps them visible and cheap. The schema itself is
owned by the Alembic migrations in ``migrations/``; the ``Table`` objects here only
describe it to SQLAlchemy and must stay in step with the newest migration (a test
compares them).

SQLite is the default and needs two things to be safe for several threads and
processes sharing one file: WAL mode with a busy timeout, and write transactions that
take the write lock up front (``BEGIN IMMEDIATE``). A deferred transaction that reads
and then writes can fail with "database is locked" without ever waiting on the busy
handler; taking the lock at ``BEGIN`` makes concurrent writers queue instead.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Connection, Engine

metadata = MetaData()

settings = Table(
    "settings",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("value", Text, nullable=False),
)

hubs = Table(
    "hubs",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("display_name", String(255)),
    Column("description", String(1023)),
    Column("search_keywords", Text, nullable=False, default="[]"),
    Column("tags", Text, nullable=False, default="[]"),
    Column("s3_output_path", String(1024)),
    Column("status", String(32), nullable=False),
    Column("failure_reason", Text),
    Column("created_at", Float, nullable=False),
    Column("modified_at", Float, nullable=False),
)

hub_contents = Table(
    "hub_contents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("hub_name", String(63), ForeignKey("hubs.name"), nullable=False),
    Column("content_type", String(32), nullable=False),
    Column("name", String(63), nullable=False),
    Column("v_major", Integer, nullable=False),
    Column("v_minor", Integer, nullable=False),
    Column("v_patch", Integer, nullable=False),
    Column("document_schema_version", String(14), nullable=False),
    Column("display_name", String(255)),
    Column("description", String(1023)),
    Column("markdown", Text),
    Column("document", Text, nullable=False),
    Column("search_keywords", Text, nullable=False, default="[]"),
    Column("tags", Text, nullable=False, default="[]"),
    Column("support_status", String(32)),
    Column("status", String(32), nullable=False),
    Column("failure_reason", Text),
    Column("stats", Text),
    Column("owned_bucket", String(63)),
    Column("owned_key", String(1024)),
    Column("created_at", Float, nullable=False),
    Column("modified_at", Float, nullable=False),
    UniqueConstraint(
        "hub_name", "content_type", "name", "v_major", "v_minor", "v_patch",
        name="uq_hub_content_version",
    ),
    Index("ix_hub_contents_listing", "hub_name", "content_type", "name"),
    Index("ix_hub_contents_by_created", "hub_name", "content_type", "created_at", "name", "id"),
    Index(
        "ix_hub_contents_by_version",
        "hub_name", "content_type", "name", "v_major", "v_minor", "v_patch",
    ),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("hub_name", String(63), nullable=False),
    Column(
        "content_id", Integer, ForeignKey("hub_contents.id", ondelete="CASCADE"), nullable=False
    ),
    Column("kind", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("owner", String(255)),
    Column("heartbeat_at", Float),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Index("ix_jobs_state", "state", "hub_name"),
)

functions = Table(
    "functions",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("runtime", String(32), nullable=False),
    Column("handler", String(128), nullable=False),
    Column("role", String(2048)),
    Column("description", String(256)),
    Column("timeout", Integer, nullable=False),
    Column("memory_size", Integer, nullable=False),
    Column("environment", Text, nullable=False, default="{}"),
    Column("code_bucket", String(63), nullable=False),
    Column("code_key", String(1024), nullable=False),
    Column("code_sha256", String(64), nullable=False),
    Column("code_size", Integer, nullable=False),
    Column("revision_id", String(64), nullable=False),
    Column("tags", Text, nullable=False, default="{}"),
    Column("created_at", Float, nullable=False),
    Column("modified_at", Float, nullable=False),
)


# Training-job records (SageMaker CreateTrainingJob & co.); owned by airegistry.training.
training_jobs = Table(
    "training_jobs",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("secondary_status", String(32), nullable=False),
    Column("failure_reason", Text),
    Column("request", Text, nullable=False),
    Column("tags", Text, nullable=False, default="[]"),
    Column("transitions", Text, nullable=False, default="[]"),
    Column("progress", Text),
    Column("final_metrics", Text),
    Column("model_artifacts", String(1024)),
    Column("output_model_arn", String(2048)),
    Column("process", Text),
    Column("mlflow_details", Text),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("ended_at", Float),
    Column("modified_at", Float, nullable=False),
    Column("heartbeat_at", Float),
    Index("ix_training_jobs_created", "created_at", "name"),
    Index("ix_training_jobs_status", "status", "heartbeat_at"),
)


def now() -> float:
    """Timestamps are stored as epoch seconds: sortable, exact, and free of SQLite's naive datetimes."""
    return time.time()


class Database:
    """An engine plus the two kinds of transaction the services need."""

    def __init__(self, url: str, *, busy_timeout_ms: int = 30_000) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"future": True}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": busy_timeout_ms / 1000, "check_same_thread": False}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            self._configure_sqlite(busy_timeout_ms)

    def _configure_sqlite(self, busy_timeout_ms: int) -> None:
        @event.listens_for(self.engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Driver-level autocommit: SQLAlchemy's "begin" hook below issues BEGIN itself.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(self.engine, "begin")
        def _on_begin(conn: Connection) -> None:
            mode = "IMMEDIATE" if conn.get_execution_options().get("airegistry_write") else "DEFERRED"
            conn.exec_driver_sql(f"BEGIN {mode}")

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        with self.engine.connect() as raw:
            conn = raw.execution_options(airegistry_write=True)
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        self.engine.dispose()
