"""processing: jobs, derived outputs, datastore tables, validation reports

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import dphub.metastore.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UTC_DATETIME = dphub.metastore.models.UTCDateTime(timezone=True)


def _document() -> sa.JSON:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("revisions") as batch:
        batch.add_column(sa.Column("report", _document(), nullable=True))
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("revision_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=True),
        sa.Column("heartbeat_at", UTC_DATETIME, nullable=True),
        sa.Column("finished_at", UTC_DATETIME, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["revision_id"],
            ["revisions.id"],
            name=op.f("fk_jobs_revision_id_revisions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("revision_id", name=op.f("uq_jobs_revision_id")),
    )
    op.create_index("ix_jobs_state_id", "jobs", ["state", "id"], unique=False)
    op.create_table(
        "revision_outputs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("revision_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("resource_index", sa.Integer(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("media_type", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["revision_id"],
            ["revisions.id"],
            name=op.f("fk_revision_outputs_revision_id_revisions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_revision_outputs")),
        sa.UniqueConstraint("revision_id", "name", name="uq_revision_outputs_revision_name"),
    )
    op.create_index("ix_revision_outputs_sha256", "revision_outputs", ["sha256"], unique=False)
    op.create_table(
        "datastore_tables",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("revision_id", sa.Integer(), nullable=False),
        sa.Column("resource_index", sa.Integer(), nullable=False),
        sa.Column("resource_name", sa.String(length=255), nullable=False),
        sa.Column("table_name", sa.String(length=100), nullable=False),
        sa.Column("columns", _document(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["revision_id"],
            ["revisions.id"],
            name=op.f("fk_datastore_tables_revision_id_revisions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datastore_tables")),
        sa.UniqueConstraint(
            "revision_id", "resource_index", name="uq_datastore_tables_revision_resource"
        ),
        sa.UniqueConstraint("table_name", name=op.f("uq_datastore_tables_table_name")),
    )


def downgrade() -> None:
    op.drop_table("datastore_tables")
    op.drop_index("ix_revision_outputs_sha256", table_name="revision_outputs")
    op.drop_table("revision_outputs")
    op.drop_index("ix_jobs_state_id", table_name="jobs")
    op.drop_table("jobs")
    with op.batch_alter_table("revisions") as batch:
        batch.drop_column("report")
