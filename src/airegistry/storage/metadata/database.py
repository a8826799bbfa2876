"""The metadata database: an engine, two kinds of transaction, and clear failures.

SQLite (the default, a file in the home) needs two things to be safe for several
threads and processes sharing one file: WAL mode with a busy timeout, and write
transactions that take the write lock up front (``BEGIN IMMEDIATE``). A deferred
transaction that reads and then writes can fail with "database is locked" without ever
waiting on the busy handler; taking the lock at ``BEGIN`` makes concurrent writers queue.

PostgreSQL (``postgresql+psycopg://user:password@host:port/database``) runs at its
default READ COMMITTED isolation; the repositories are written for it (compare-and-set
updates, the unique constraint deciding races), not for SQLite's serial writers.

A database that cannot be reached is ``DatabaseUnavailable`` — at start, naming host and
database (never the password), and mid-request, when the transaction is rolled back so
nothing half-written remains; the wire layers answer it with 503 ServiceUnavailable.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.sql import Select

from airegistry.storage.metadata.point_reads import SqlitePointReads

DATABASE_URL_ENV = "AIREGISTRY_DATABASE_URL"


class DatabaseUnavailable(Exception):
    """The metadata database cannot be reached (down, network, too many connections)."""

    code = "ServiceUnavailable"
    status = 503


class Database:
    """An engine plus the two kinds of transaction the repositories need."""

    def __init__(self, url: str, *, busy_timeout_ms: int = 30_000, pool_size: int = 10) -> None:
        self.url = url
        parsed = make_url(url)
        self._password = parsed.password
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self.is_postgresql = parsed.get_backend_name() == "postgresql"
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": busy_timeout_ms / 1000, "check_same_thread": False}
        else:
            kwargs.update(pool_pre_ping=True, pool_size=pool_size, max_overflow=2 * pool_size)
            if self.is_postgresql:
                kwargs["connect_args"] = {"connect_timeout": 10}
        self.engine: Engine = create_engine(url, **kwargs)
        self._point_reads: SqlitePointReads | None = None
        if self.is_sqlite:
            self._configure_sqlite(busy_timeout_ms)
            path = parsed.database
            if path and path != ":memory:" and not parsed.query:
                self._point_reads = SqlitePointReads(path, self.engine, busy_timeout_ms,
                                                     self.unavailable)

    @property
    def is_local(self) -> bool:
        """A local SQLite file: point reads are cheaper than a hop to a worker thread."""
        return self.is_sqlite

    def describe(self) -> str:
        """Where the database is, for messages: never the password."""
        parsed = make_url(self.url)
        if self.is_sqlite:
            return f"SQLite database {parsed.database}"
        host = parsed.host or "localhost"
        port = f":{parsed.port}" if parsed.port else ""
        kind = "PostgreSQL" if self.is_postgresql else parsed.get_backend_name()
        return f"{kind} database {parsed.database!r} on {host}{port} (user {parsed.username!r})"

    def _scrub(self, text_: str) -> str:
        if self._password:
            text_ = text_.replace(self._password, "***")
        return text_

    def unavailable(self, exc: BaseException) -> DatabaseUnavailable:
        reason = getattr(exc, "orig", None) or exc
        first = self._scrub(str(reason).strip().splitlines()[0] if str(reason).strip() else "")
        return DatabaseUnavailable(f"cannot use the {self.describe()}: {first}")

    def check(self) -> None:
        """Connect once: ``DatabaseUnavailable`` naming host and database if it fails."""
        with self.read() as conn:
            conn.execute(text("SELECT 1"))

    def _configure_sqlite(self, busy_timeout_ms: int) -> None:
        @event.listens_for(self.engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Driver-level autocommit: SQLAlchemy's "begin" hook below issues BEGIN itself.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            _enter_wal(cursor, busy_timeout_ms)
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(self.engine, "begin")
        def _on_begin(conn: Connection) -> None:
            mode = "IMMEDIATE" if conn.get_execution_options().get("airegistry_write") else "DEFERRED"
            conn.exec_driver_sql(f"BEGIN {mode}")

    @contextlib.contextmanager
    def _transaction(self, write: bool) -> Iterator[Connection]:
        try:
            with self.engine.connect() as raw:
                conn = raw.execution_options(airegistry_write=True) if write else raw
                with conn.begin():
                    yield conn
        except DBAPIError as exc:
            if exc.connection_invalidated or isinstance(exc, (OperationalError, InterfaceError)):
                raise self.unavailable(exc) from None
            raise

    def read(self) -> contextlib.AbstractContextManager[Connection]:
        return self._transaction(write=False)

    def write(self) -> contextlib.AbstractContextManager[Connection]:
        return self._transaction(write=True)

    def first(self, statement: Select[Any], args: dict[str, Any]) -> Any | None:
        """The first row of a point read (a SELECT of plain columns by an index), or None.

        On a local SQLite file this skips SQLAlchemy's connection and transaction
        handling (``point_reads``); rows have the same attribute names either way.
        """
        if self._point_reads is not None:
            return self._point_reads.first(statement, args)
        with self.read() as conn:
            return conn.execute(statement, args).first()

    def serialize(self, conn: Connection, key: int | str) -> None:
        """Make concurrent write transactions naming ``key`` take turns (PostgreSQL).

        SQLite's ``BEGIN IMMEDIATE`` already serialises writers. On PostgreSQL a
        transaction-scoped advisory lock does, so a count read after it (running imports
        per hub, versions still using an object) cannot be raced past by another
        transaction doing the same: under READ COMMITTED each statement sees what the
        lock's previous holder committed. A text key is hashed by the server.
        """
        if not self.is_postgresql:
            return
        if isinstance(key, str):
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": key})
        else:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})

    def dispose(self) -> None:
        if self._point_reads is not None:
            self._point_reads.close()
        self.engine.dispose()


def _enter_wal(cursor: Any, busy_timeout_ms: int) -> None:
    """Switch a SQLite file to WAL, waiting for other openers of a new file.

    Switching the journal mode can answer "database is locked" at once, without the busy
    handler, while another connection is switching it or migrating: retry until the busy
    timeout has passed.
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


__all__ = ["DATABASE_URL_ENV", "Database", "DatabaseUnavailable"]
