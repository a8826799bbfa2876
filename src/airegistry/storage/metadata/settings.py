"""Settings: small named values every process of a registry must agree on.

The account id, the secret that signs list tokens and (for replicas) the access keys
the server accepts live here, so every replica over one database shares them.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from airegistry.storage.metadata.database import Database
from airegistry.storage.metadata.tables import settings


class SettingsRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, key: str) -> str | None:
        with self.db.read() as conn:
            return conn.execute(select(settings.c.value).where(settings.c.key == key)).scalar()

    def get_or_create(self, key: str, make: Callable[[], str]) -> str:
        """The stored value, or ``make()`` stored first; racing processes agree on one."""
        value = self.get(key)
        if value is not None:
            return value
        try:
            with self.db.write() as conn:
                conn.execute(insert(settings).values(key=key, value=make()))
        except IntegrityError:
            pass  # another process created it first; use theirs
        value = self.get(key)
        assert value is not None
        return value

    def put_new(self, key: str, value: str) -> bool:
        """Store a value under a new key; False if the key exists (nothing changes)."""
        try:
            with self.db.write() as conn:
                conn.execute(insert(settings).values(key=key, value=value))
        except IntegrityError:
            return False
        return True

    def claim_interval(self, key: str, interval_s: float, now: float) -> bool:
        """Whether this caller runs the periodic task ``key`` now (at most once per interval).

        The setting holds when the task last ran (epoch seconds); claiming it is a
        compare-and-set, so of every process and replica sharing the store exactly one
        wins each interval, under SQLite and PostgreSQL's READ COMMITTED alike.
        """
        current = self.get(key)
        if current is None:
            return self.put_new(key, repr(now))
        try:
            last = float(current)
        except ValueError:
            last = 0.0
        if now - last < interval_s:
            return False
        with self.db.write() as conn:
            claimed = conn.execute(update(settings).where(
                settings.c.key == key, settings.c.value == current).values(value=repr(now)))
        return claimed.rowcount == 1

    def with_prefix(self, prefix: str) -> dict[str, str]:
        """Every setting whose key starts with ``prefix``, keyed without it."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(settings.c.key, settings.c.value).where(
                    settings.c.key.startswith(prefix, autoescape=True))
            ).all()
        return {k[len(prefix):]: v for k, v in rows}

    def delete(self, key: str) -> None:
        with self.db.write() as conn:
            conn.execute(delete(settings).where(settings.c.key == key))
