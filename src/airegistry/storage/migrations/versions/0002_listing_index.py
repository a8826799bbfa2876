"""Index that serves ListHubContents in its default order.

Without it SQLite read every row of a hub and content type, ran the "latest version"
check for each and sorted them all on every page, so paging through N items cost
O(N^2 log N). With it a page walks the index in order and stops after MaxResults.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_hub_contents_by_created",
        "hub_contents",
        ["hub_name", "content_type", "created_at", "name", "id"],
    )
    op.create_index(
        "ix_hub_contents_by_version",
        "hub_contents",
        ["hub_name", "content_type", "name", "v_major", "v_minor", "v_patch"],
    )


def downgrade() -> None:
    op.drop_index("ix_hub_contents_by_version", "hub_contents")
    op.drop_index("ix_hub_contents_by_created", "hub_contents")
