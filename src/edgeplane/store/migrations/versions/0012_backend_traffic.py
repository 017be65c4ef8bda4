"""traffic per load balancer backend

``edge_analytics.backends`` and ``edge_analytics_hourly.backends``: the requests each backend of
the site's pool answered in the minute (the hour), ``{backend key: n}``; ``{}`` for the rows of
before.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 00:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TABLES = ("edge_analytics", "edge_analytics_hourly")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("backends", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
            )


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("backends")
