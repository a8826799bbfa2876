"""Functions (Lambda-shaped evaluator code): one row per function, code by sha256 in blobs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from airegistry.storage.metadata.database import Database
from airegistry.storage.metadata.tables import functions, now


class FunctionExists(Exception):
    """A function of that name already exists."""


class FunctionRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, name: str) -> Row | None:
        with self.db.read() as conn:
            return conn.execute(select(functions).where(functions.c.name == name)).first()

    def exists(self, name: str) -> bool:
        with self.db.read() as conn:
            return conn.execute(
                select(functions.c.name).where(functions.c.name == name)).first() is not None

    def insert(self, **values: Any) -> None:
        """A new function; ``FunctionExists`` when the name is taken (the database decides)."""
        ts = now()
        try:
            with self.db.write() as conn:
                conn.execute(insert(functions).values(**values, created_at=ts, modified_at=ts))
        except IntegrityError:
            raise FunctionExists(values.get("name")) from None

    def update(self, name: str, **values: Any) -> None:
        with self.db.write() as conn:
            conn.execute(update(functions).where(functions.c.name == name)
                         .values(**values, modified_at=now()))

    def delete(self, name: str) -> None:
        with self.db.write() as conn:
            conn.execute(delete(functions).where(functions.c.name == name))

    def page(self, after: str | None, limit: int) -> list[Row]:
        """Up to ``limit + 1`` functions by name after ``after`` (the extra one says "more")."""
        query = select(functions).order_by(functions.c.name).limit(limit + 1)
        if after:
            query = query.where(functions.c.name > after)
        with self.db.read() as conn:
            return list(conn.execute(query).all())
