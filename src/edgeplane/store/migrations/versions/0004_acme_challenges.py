"""acme challenges: HTTP-01 and DNS-01 answers published by the edge while orders run

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 08:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "acme_challenges",
        sa.Column("id", sa.String(length=63), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["domain"],
            ["domains.name"],
            name=op.f("fk_acme_challenges_domain_domains"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_acme_challenges")),
    )
    with op.batch_alter_table("acme_challenges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_acme_challenges_domain"), ["domain"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("acme_challenges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_acme_challenges_domain"))
    op.drop_table("acme_challenges")
