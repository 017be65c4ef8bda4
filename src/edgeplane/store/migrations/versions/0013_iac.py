"""infrastructure as code: every apply, the per-project apply lock, the newest drift check

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 02:07:48.622945
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "iac_applies",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("environment", sa.String(length=63), nullable=True),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("source", sa.JSON(), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_iac_applies_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_iac_applies")),
    )
    with op.batch_alter_table("iac_applies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_iac_applies_project_id"), ["project_id"], unique=False)

    op.create_table(
        "iac_drift",
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("apply_id", sa.Integer(), nullable=False),
        sa.Column("objects", sa.Integer(), nullable=False),
        sa.Column("drifted", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_iac_drift_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_iac_drift")),
    )
    op.create_table(
        "iac_locks",
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_iac_locks_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_iac_locks")),
    )


def downgrade() -> None:

    op.drop_table("iac_locks")
    op.drop_table("iac_drift")
    with op.batch_alter_table("iac_applies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_iac_applies_project_id"))

    op.drop_table("iac_applies")
