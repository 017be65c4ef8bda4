"""OCSP: the staples the edge serves, and the serials the internal CA issued

``ocsp_staples`` holds, per certificate version, the verified OCSP response the edge staples
and when to fetch the next one; ``internal_ca_serials`` every leaf the internal CA issues from
now on, for its OCSP responder (a deleted certificate's serial answers revoked). Certificates
issued before carry no OCSP URL: nothing to backfill.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 06:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ocsp_staples",
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("certificate_id", sa.String(length=63), nullable=False),
        sa.Column("ocsp_url", sa.Text(), nullable=False),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("cert_status", sa.String(length=16), nullable=True),
        sa.Column("this_update", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_update", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_fetch_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id", "certificate_id"],
            ["certificates.project_id", "certificates.id"],
            name=op.f("fk_ocsp_staples_project_id_certificates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "certificate_id", name=op.f("pk_ocsp_staples")),
    )
    with op.batch_alter_table("ocsp_staples", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ocsp_staples_next_fetch_at"), ["next_fetch_at"], unique=False
        )
    op.create_table(
        "internal_ca_serials",
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("certificate_id", sa.String(length=63), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revocation_reason", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("serial", name=op.f("pk_internal_ca_serials")),
    )


def downgrade() -> None:
    op.drop_table("internal_ca_serials")
    with op.batch_alter_table("ocsp_staples", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ocsp_staples_next_fetch_at"))
    op.drop_table("ocsp_staples")
