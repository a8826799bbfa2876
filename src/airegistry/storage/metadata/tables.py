"""The registry's tables, described to SQLAlchemy Core.

Core tables instead of ORM classes: every query the repositories run is a handful of
explicit statements, and Core keeps them visible and cheap. The schema itself is owned
by the Alembic migrations in ``storage/migrations/``; these ``Table`` objects only
describe it and must stay in step with the newest migration (a test compares them).
Only the repositories of this package use them: SQL lives here and nowhere else.
"""

from __future__ import annotations

import time

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
)

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


# S3 configuration documents (PutBucketPolicy, PutBucketTagging, PutObjectTagging, ...);
# owned by the server's S3 configuration handler. ``object_key`` is "" for a bucket's own.
s3_configs = Table(
    "s3_configs",
    metadata,
    Column("bucket", String(63), primary_key=True),
    Column("object_key", String(1024), primary_key=True),
    Column("subresource", String(512), primary_key=True),
    Column("document", Text, nullable=False),
    Column("stamp", String(128), nullable=False),
    Column("modified_at", Float, nullable=False),
)


def now() -> float:
    """Timestamps are stored as epoch seconds: sortable, exact, and free of SQLite's naive datetimes."""
    return time.time()
