"""The training-job record: ``TrainingJobRepository``, all of its SQL.

The operation rules live in ``airegistry.training.service``. Every method opens its own transaction; conditional updates
(``update(..., only_if=...)``) are how concurrent writers (the training process, a
reader that finds it dead, ``StopTrainingJob``) agree on one outcome without locks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from airegistry.storage.metadata.database import Database
from airegistry.storage.metadata.tables import training_jobs

_SORT_COLUMNS = {
    "Name": training_jobs.c.name,
    "CreationTime": training_jobs.c.created_at,
    "Status": training_jobs.c.status,
}


class DuplicateJobError(Exception):
    """A job of that name exists already."""


class TrainingJobRepository:
    """Rows of ``training_jobs``; values are plain Python (JSON columns are strings)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def insert(self, values: Mapping[str, Any]) -> None:
        try:
            with self.db.write() as conn:
                conn.execute(insert(training_jobs).values(**values))
        except IntegrityError:
            raise DuplicateJobError(values["name"]) from None

    def get(self, name: str) -> Row | None:
        with self.db.read() as conn:
            return conn.execute(
                select(training_jobs).where(training_jobs.c.name == name)
            ).first()

    def update(
        self, name: str, values: Mapping[str, Any], *, only_if: Iterable[str] | None = None
    ) -> bool:
        """Apply ``values``; with ``only_if``, only while the status is one of those."""
        condition = training_jobs.c.name == name
        if only_if is not None:
            condition = and_(condition, training_jobs.c.status.in_(list(only_if)))
        with self.db.write() as conn:
            result = conn.execute(update(training_jobs).where(condition).values(**values))
        return result.rowcount > 0

    def stale(self, active: Iterable[str], heartbeat_before: float) -> list[Row]:
        """Active jobs whose last report is older than ``heartbeat_before``."""
        with self.db.read() as conn:
            return list(
                conn.execute(
                    select(training_jobs).where(
                        training_jobs.c.status.in_(list(active)),
                        training_jobs.c.heartbeat_at < heartbeat_before,
                    )
                ).fetchall()
            )

    def page(
        self,
        *,
        filters: Mapping[str, Any],
        sort_by: str,
        descending: bool,
        after: list[Any] | None,
        limit: int,
    ) -> list[Row]:
        """One page in (sort column, name) order, starting after the key ``after``."""
        sort_column = _SORT_COLUMNS[sort_by]
        query = select(training_jobs)
        if filters.get("name_contains"):
            query = query.where(
                training_jobs.c.name.contains(filters["name_contains"], autoescape=True)
            )
        if filters.get("status"):
            query = query.where(training_jobs.c.status == filters["status"])
        for key, column, op in (
            ("created_after", training_jobs.c.created_at, ">"),
            ("created_before", training_jobs.c.created_at, "<"),
            ("modified_after", training_jobs.c.modified_at, ">"),
            ("modified_before", training_jobs.c.modified_at, "<"),
        ):
            bound = filters.get(key)
            if bound is not None:
                query = query.where(column > bound if op == ">" else column < bound)
        name = training_jobs.c.name
        if after is not None:
            value, last_name = after
            if sort_column is name:
                query = query.where(name < last_name if descending else name > last_name)
            elif descending:
                query = query.where(
                    or_(sort_column < value, and_(sort_column == value, name < last_name))
                )
            else:
                query = query.where(
                    or_(sort_column > value, and_(sort_column == value, name > last_name))
                )
        order = [sort_column.desc(), name.desc()] if descending else [sort_column, name]
        if sort_column is name:
            order = order[:1]
        with self.db.read() as conn:
            return list(conn.execute(query.order_by(*order).limit(limit)).fetchall())

    @staticmethod
    def sort_key(row: Row, sort_by: str) -> list[Any]:
        return [getattr(row, _SORT_COLUMNS[sort_by].name), row.name]
