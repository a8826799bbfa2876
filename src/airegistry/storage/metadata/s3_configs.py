"""S3 configuration documents: one row per bucket (or object) and sub-resource.

The S3 handler validates a document before it reaches here; this repository only keeps
it. A write is one upsert on the primary key (``INSERT ... ON CONFLICT DO UPDATE``, which
SQLite and PostgreSQL both have), so concurrent writers of one document never fail and
a reader sees the old document or the new one, never a mix: last writer wins, as on S3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select

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
        if self.db.is_postgresql:
            from sqlalchemy.dialects.postgresql import insert as upsert
        else:
            from sqlalchemy.dialects.sqlite import insert as upsert
        values = {"document": document, "stamp": stamp, "modified_at": now()}
        statement = upsert(s3_configs).values(
            bucket=bucket, object_key=key, subresource=subresource, **values)
        statement = statement.on_conflict_do_update(
            index_elements=["bucket", "object_key", "subresource"], set_=values)
        with self.db.write() as conn:
            conn.execute(statement)

    def delete(self, bucket: str, subresource: str, key: str = BUCKET_ITSELF) -> bool:
        """Remove one document; whether there was one."""
        with self.db.write() as conn:
            result = conn.execute(delete(s3_configs).where(self._where(bucket, key, subresource)))
        return bool(result.rowcount)

    def delete_objects(self, bucket: str, keys: list[str]) -> None:
        """Forget every document of these objects (they were deleted). Most objects have
        none, so this reads first and takes the write lock only when there is one."""
        c = s3_configs.c
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            where = (c.bucket == bucket) & c.object_key.in_(chunk)
            with self.db.read() as conn:
                if conn.execute(select(c.object_key).where(where).limit(1)).first() is None:
                    continue
            with self.db.write() as conn:
                conn.execute(delete(s3_configs).where(where))

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
