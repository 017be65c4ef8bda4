"""dns: domain verification, lock, DNSSEC and zone serial; DNS records; edge heartbeats and
liveness

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 08:15:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("domains", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("verification", sa.JSON(), nullable=False, server_default="{}")
        )
        batch_op.add_column(
            sa.Column("locked", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("dnssec", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("dnssec_key_encrypted", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("zone_revision", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("checks", sa.JSON(), nullable=False, server_default="{}"))

    op.create_table(
        "dns_records",
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("type", sa.String(length=8), nullable=False),
        sa.Column("ttl", sa.Integer(), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("proxied", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["domain"],
            ["domains.name"],
            name=op.f("fk_dns_records_domain_domains"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("domain", "name", "type", name=op.f("pk_dns_records")),
    )
    op.create_table(
        "edge_liveness",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("live", sa.JSON(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_edge_liveness")),
    )
    with op.batch_alter_table("edge_nodes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("healthy", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch_op.add_column(sa.Column("dns", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("edge_nodes", schema=None) as batch_op:
        batch_op.drop_column("dns")
        batch_op.drop_column("healthy")
        batch_op.drop_column("heartbeat_at")
    op.drop_table("edge_liveness")
    op.drop_table("dns_records")
    with op.batch_alter_table("domains", schema=None) as batch_op:
        batch_op.drop_column("checks")
        batch_op.drop_column("zone_revision")
        batch_op.drop_column("dnssec_key_encrypted")
        batch_op.drop_column("dnssec")
        batch_op.drop_column("locked")
        batch_op.drop_column("verification")
