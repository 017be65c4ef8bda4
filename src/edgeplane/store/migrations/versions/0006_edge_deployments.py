"""edge deployments: bundles, their chunks, deployments; node bundle reports; richer analytics

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 10:05:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("edge_nodes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bundles", sa.JSON(), nullable=False, server_default="{}"))
    with op.batch_alter_table("edge_analytics", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_ms", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(
            sa.Column("static", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("countries", sa.JSON(), nullable=False, server_default="{}"))
    op.create_table(
        "bundles",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("source_bytes", sa.BigInteger(), nullable=False),
        sa.Column("files", sa.Integer(), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_bundles_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", "project_id", name=op.f("pk_bundles")),
    )
    op.create_table(
        "bundle_chunks",
        sa.Column("bundle_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("bundle_id", "seq", name=op.f("pk_bundle_chunks")),
    )
    op.create_table(
        "edge_deployments",
        sa.Column("id", sa.String(length=63), nullable=False),
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("bundle_id", sa.String(length=64), nullable=False),
        sa.Column("strategy", sa.String(length=16), nullable=False),
        sa.Column("regions", sa.JSON(), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("placement", sa.JSON(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("canary_node", sa.String(length=63), nullable=True),
        sa.Column("phase_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("reactivates", sa.String(length=63), nullable=True),
        sa.Column("changed_revision", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_edge_deployments_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_edge_deployments")),
        sa.UniqueConstraint("project_id", "version", name="uq_edge_deployments_project_version"),
    )
    with op.batch_alter_table("edge_deployments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_edge_deployments_project_id"), ["project_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_edge_deployments_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("edge_deployments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_edge_deployments_status"))
        batch_op.drop_index(batch_op.f("ix_edge_deployments_project_id"))
    op.drop_table("edge_deployments")
    op.drop_table("bundle_chunks")
    op.drop_table("bundles")
    with op.batch_alter_table("edge_analytics", schema=None) as batch_op:
        batch_op.drop_column("countries")
        batch_op.drop_column("static")
        batch_op.drop_column("request_ms")
    with op.batch_alter_table("edge_nodes", schema=None) as batch_op:
        batch_op.drop_column("bundles")
