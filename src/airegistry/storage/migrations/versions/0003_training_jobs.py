"""Training-job records: what CreateTrainingJob stores and the training process reports.

One row per job, keyed by its name (unique per account and region, as on AWS). The
request is kept whole as JSON because DescribeTrainingJob echoes it; the columns that
change while the job runs (status, progress, heartbeat, artifacts) are columns so that
ListTrainingJobs can filter and the staleness check can find dead jobs by index.

Revision ID: 0003_training_jobs
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_training_jobs"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "training_jobs",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("secondary_status", sa.String(32), nullable=False),
        sa.Column("failure_reason", sa.Text),
        sa.Column("request", sa.Text, nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("transitions", sa.Text, nullable=False),
        sa.Column("progress", sa.Text),
        sa.Column("final_metrics", sa.Text),
        sa.Column("model_artifacts", sa.String(1024)),
        sa.Column("output_model_arn", sa.String(2048)),
        sa.Column("process", sa.Text),
        sa.Column("mlflow_details", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("ended_at", sa.Float),
        sa.Column("modified_at", sa.Float, nullable=False),
        sa.Column("heartbeat_at", sa.Float),
    )
    op.create_index("ix_training_jobs_created", "training_jobs", ["created_at", "name"])
    op.create_index("ix_training_jobs_status", "training_jobs", ["status", "heartbeat_at"])


def downgrade() -> None:
    op.drop_index("ix_training_jobs_status", "training_jobs")
    op.drop_index("ix_training_jobs_created", "training_jobs")
    op.drop_table("training_jobs")
