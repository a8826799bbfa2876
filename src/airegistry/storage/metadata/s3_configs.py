"""S3 configuration documents: one row per bucket (or object) and sub-resource.

The S3 handler validates a document before it reaches here; this repository only keeps
it. A write replaces the previous document in one transaction (delete then insert under
the write lock on SQLite; on PostgreSQL the primary key decides a race between two
first writers, and the loser retries as a replace), so a reader sees the old document
or the new one, never a mix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from airegistry.storage.metadata.database import Database
from airegistry.storage.metadata.tables import now, s3_configs

BUCKET_ITSELF = ""
"""The ``key`` of a bucket's own configurations (object keys are never empty)."""


@dataclass(frozen=True)
class StoredConfig:
    document: str
    stamp: str
    modified_at: float


class S3ConfigRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def _where(bucket: str, key: str, subresource: str) -> Any:
        c = s3_configs.c
        return (c.bucket == bucket) & (c.object_key == key) & (c.subresource == subresource)

    def get(self, bucket: str, subresource: str, key: str = BUCKET_ITSELF) -> StoredConfig | None:
        with self.db.read() as conn:
            row = conn.execute(select(s3_configs.c.document, s3_configs.c.stamp,
                                      s3_configs.c.modified_at)
                               .where(self._where(bucket, key, subresource))).first()
        return None if row is None else StoredConfig(row.document, row.stamp, row.modified_at)

    def put(self, bucket: str, subresource: str, document: str, *, key: str = BUCKET_ITSELF,
            stamp: str = "") -> None:
        """Store ``document``, replacing any previous one of the same sub-resource."""
        for _ in range(3):
            try:
                with self.db.write() as conn:
                    conn.execute(delete(s3_configs).where(self._where(bucket, key, subresource)))
                    conn.execute(insert(s3_configs).values(
                        bucket=bucket, object_key=key, subresource=subresource,
                        document=document, stamp=stamp, modified_at=now()))
                return
            except IntegrityError:
                continue  # a concurrent first write won the insert: replace it
        raise RuntimeError(f"could not store {subresource} of {bucket!r}: writers kept racing")

    def delete(self, bucket: str, subresource: str, key: str = BUCKET_ITSELF) -> bool:
        """Remove one document; whether there was one."""
        with self.db.write() as conn:
            result = conn.execute(delete(s3_configs).where(self._where(bucket, key, subresource)))
        return bool(result.rowcount)

    def delete_object(self, bucket: str, key: str) -> None:
        """Forget every document of an object (it was deleted)."""
        c = s3_configs.c
        with self.db.write() as conn:
            conn.execute(delete(s3_configs).where((c.bucket == bucket) & (c.object_key == key)))

    def delete_bucket(self, bucket: str) -> None:
        """Forget every document of a bucket and of its objects (it was deleted)."""
        with self.db.write() as conn:
            conn.execute(delete(s3_configs).where(s3_configs.c.bucket == bucket))

    def subresources(self, bucket: str, prefix: str) -> dict[str, str]:
        """The bucket's documents whose sub-resource name starts with ``prefix``, by name
        (the id-keyed families: ``inventory:<id>``, ``metrics:<id>``...)."""
        c = s3_configs.c
        with self.db.read() as conn:
            rows = conn.execute(select(c.subresource, c.document).where(
                (c.bucket == bucket) & (c.object_key == BUCKET_ITSELF)
                & c.subresource.startswith(prefix, autoescape=True))
                .order_by(c.subresource)).all()
        return {r.subresource: r.document for r in rows}


__all__ = ["BUCKET_ITSELF", "S3ConfigRepository", "StoredConfig"]
