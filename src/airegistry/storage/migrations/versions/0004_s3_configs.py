"""S3 configuration documents: bucket sub-resources (policy, tagging, CORS...) and object tags.

One row per (bucket, key, sub-resource); a bucket's own configurations use the empty
key. The document is kept exactly as the client sent it (validated XML, or the policy's
JSON), because the matching Get answers it back. ``stamp`` ties an object's tags to
the object version they were set on (its ETag and modification time), so tags of an
object that was overwritten or deleted behind the table's back are never served.

Revision ID: 0004_s3_configs
Revises: 0003_training_jobs
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_s3_configs"
down_revision = "0003_training_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "s3_configs",
        sa.Column("bucket", sa.String(63), primary_key=True),
        sa.Column("object_key", sa.String(1024), primary_key=True),
        sa.Column("subresource", sa.String(512), primary_key=True),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("stamp", sa.String(128), nullable=False),
        sa.Column("modified_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("s3_configs")
