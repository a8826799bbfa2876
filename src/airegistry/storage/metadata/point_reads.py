"""Point reads on a local SQLite file without SQLAlchemy's per-statement machinery.

DescribeHubContent and DescribeHub are one indexed SELECT each. Through SQLAlchemy Core a
read costs a pooled-connection checkout, a ``BEGIN`` (our deferred-transaction hook), the
statement, a ``COMMIT``, the result-proxy set-up and the return to the pool: about half
of the server's time for a describe (``benchmarks/profile_describe.py``). Here the same
compiled statement runs on a pooled ``sqlite3`` connection in autocommit mode: a
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
    """Autocommit connections to one SQLite file, reused by whichever thread reads next.

    Connections are not per thread: anyio's worker threads come and go (an idle one exits
    after a while), and a connection per thread would leak one descriptor per thread ever
    seen. Here a read takes an idle connection (or opens one), and gives it back; at most
    ``max_idle`` are kept, the rest closed, so the count is bounded by the reads in flight.
    """

    def __init__(self, path: str, engine: Engine, busy_timeout_ms: int,
                 unavailable: Callable[[BaseException], Exception], *,
                 max_idle: int = 8) -> None:
        self._path = path
        self._engine = engine
        self._timeout = busy_timeout_ms / 1000
        self._unavailable = unavailable
        self._max_idle = max_idle
        self._compiled: dict[int, tuple[Select[Any], _Compiled]] = {}
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    def _take(self) -> sqlite3.Connection:
        with self._lock:
            if self._closed:
                raise self._unavailable(RuntimeError("the database was closed"))
            if self._idle:
                return self._idle.pop()
        try:
            return sqlite3.connect(self._path, timeout=self._timeout, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from None

    def _give_back(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self._max_idle:
                self._idle.append(conn)
                return
        conn.close()

    def _compile(self, statement: Select[Any]) -> _Compiled:
        entry = self._compiled.get(id(statement))
        if entry is None or entry[0] is not statement:
            entry = (statement, _Compiled(statement, self._engine))
            self._compiled[id(statement)] = entry  # module-level statements: a few entries
        return entry[1]

    def first(self, statement: Select[Any], args: Mapping[str, Any]) -> Any | None:
        """The first row of ``statement`` (which selects at most a handful), or None."""
        compiled = self._compile(statement)
        conn = self._take()
        try:
            # fetchall ends the statement, and with it the implicit read transaction
            rows = conn.execute(compiled.sql, compiled.params(args)).fetchall()
        except (sqlite3.OperationalError, sqlite3.ProgrammingError) as exc:
            conn.close()
            raise self._unavailable(exc) from None
        except BaseException:
            conn.close()
            raise
        self._give_back(conn)
        return compiled.row._make(rows[0]) if rows else None

    @property
    def idle_connections(self) -> int:
        return len(self._idle)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


__all__ = ["SqlitePointReads"]
