"""Point reads on a local SQLite file without SQLAlchemy's per-statement machinery.

DescribeHubContent and DescribeHub are one indexed SELECT each. Through SQLAlchemy Core a
read costs a pooled-connection checkout, a ``BEGIN`` (our deferred-transaction hook), the
statement, a ``COMMIT``, the result-proxy set-up and the return to the pool: about half
of the server's time for a describe (``benchmarks/profile_describe.py``). Here the same
compiled statement runs on a per-thread ``sqlite3`` connection in autocommit mode: a
single SELECT is its own read transaction (a consistent WAL snapshot), so nothing else is
needed, and the rows come back as named tuples (``row.name``, like SQLAlchemy's rows).

Only plain column types (INTEGER, FLOAT, TEXT) may be read this way: SQLAlchemy's result
processors do not run. Anything that is not a local SQLite file (PostgreSQL, an in-memory
database) goes through SQLAlchemy unchanged.
"""

from __future__ import annotations

import collections
import sqlite3
import threading
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.sql import Select


class _Compiled:
    """A statement compiled once for SQLite: SQL text, parameter order, row class."""

    def __init__(self, statement: Select[Any], engine: Engine) -> None:
        compiled = statement.compile(dialect=engine.dialect)
        self.sql = str(compiled)
        self.order = list(compiled.positiontup or [])
        self.defaults = dict(compiled.params)
        self.row = collections.namedtuple(  # type: ignore[misc]
            "PointRow", list(statement.selected_columns.keys()), rename=True)

    def params(self, args: Mapping[str, Any]) -> list[Any]:
        return [args[name] if name in args else self.defaults[name] for name in self.order]


class SqlitePointReads:
    """Per-thread autocommit connections to one SQLite file, closed by :meth:`close`."""

    def __init__(self, path: str, engine: Engine, busy_timeout_ms: int,
                 unavailable: Callable[[BaseException], Exception]) -> None:
        self._path = path
        self._engine = engine
        self._timeout = busy_timeout_ms / 1000
        self._unavailable = unavailable
        self._local = threading.local()
        self._compiled: dict[int, tuple[Select[Any], _Compiled]] = {}
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, timeout=self._timeout, isolation_level=None,
                                   check_same_thread=False)
            with self._lock:
                if self._closed:
                    conn.close()
                    raise self._unavailable(RuntimeError("the database was closed"))
                self._connections.append(conn)
            self._local.conn = conn
        return conn

    def _compile(self, statement: Select[Any]) -> _Compiled:
        entry = self._compiled.get(id(statement))
        if entry is None or entry[0] is not statement:
            entry = (statement, _Compiled(statement, self._engine))
            self._compiled[id(statement)] = entry  # module-level statements: a few entries
        return entry[1]

    def first(self, statement: Select[Any], args: Mapping[str, Any]) -> Any | None:
        """The first row of ``statement`` (which selects at most a handful), or None."""
        compiled = self._compile(statement)
        try:
            # fetchall ends the statement, and with it the implicit read transaction
            rows = self._connection().execute(compiled.sql, compiled.params(args)).fetchall()
        except (sqlite3.OperationalError, sqlite3.ProgrammingError) as exc:
            raise self._unavailable(exc) from None
        return compiled.row._make(rows[0]) if rows else None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()


__all__ = ["SqlitePointReads"]
