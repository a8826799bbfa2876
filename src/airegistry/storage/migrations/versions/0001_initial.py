"""Initial schema: settings, hubs, hub contents, import jobs, functions.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "settings",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "hubs",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("display_name", sa.String(255)),
        sa.Column("description", sa.String(1023)),
        sa.Column("search_keywords", sa.Text, nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("s3_output_path", sa.String(1024)),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("failure_reason", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("modified_at", sa.Float, nullable=False),
    )
    op.create_table(
        "hub_contents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("hub_name", sa.String(63), sa.ForeignKey("hubs.name"), nullable=False),
        sa.Column("content_type", sa.String(32), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("v_major", sa.Integer, nullable=False),
        sa.Column("v_minor", sa.Integer, nullable=False),
        sa.Column("v_patch", sa.Integer, nullable=False),
        sa.Column("document_schema_version", sa.String(14), nullable=False),
        sa.Column("display_name", sa.String(255)),
        sa.Column("description", sa.String(1023)),
        sa.Column("markdown", sa.Text),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("search_keywords", sa.Text, nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("support_status", sa.String(32)),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("failure_reason", sa.Text),
        sa.Column("stats", sa.Text),
        sa.Column("owned_bucket", sa.String(63)),
        sa.Column("owned_key", sa.String(1024)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("modified_at", sa.Float, nullable=False),
        sa.UniqueConstraint(
            "hub_name", "content_type", "name", "v_major", "v_minor", "v_patch",
            name="uq_hub_content_version",
        ),
    )
    op.create_index("ix_hub_contents_listing", "hub_contents", ["hub_name", "content_type", "name"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("hub_name", sa.String(63), nullable=False),
        sa.Column(
            "content_id", sa.Integer,
            sa.ForeignKey("hub_contents.id", ondelete="CASCADE"), nullable=False,
        ),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(255)),
        sa.Column("heartbeat_at", sa.Float),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_jobs_state", "jobs", ["state", "hub_name"])
    op.create_table(
        "functions",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("runtime", sa.String(32), nullable=False),
        sa.Column("handler", sa.String(128), nullable=False),
        sa.Column("role", sa.String(2048)),
        sa.Column("description", sa.String(256)),
        sa.Column("timeout", sa.Integer, nullable=False),
        sa.Column("memory_size", sa.Integer, nullable=False),
        sa.Column("environment", sa.Text, nullable=False),
        sa.Column("code_bucket", sa.String(63), nullable=False),
        sa.Column("code_key", sa.String(1024), nullable=False),
        sa.Column("code_sha256", sa.String(64), nullable=False),
        sa.Column("code_size", sa.Integer, nullable=False),
        sa.Column("revision_id", sa.String(64), nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("modified_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("functions")
    op.drop_index("ix_jobs_state", "jobs")
    op.drop_table("jobs")
    op.drop_index("ix_hub_contents_listing", "hub_contents")
    op.drop_table("hub_contents")
    op.drop_table("hubs")
    op.drop_table("settings")
