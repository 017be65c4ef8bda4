"""bot verdicts in the traffic rows

``edge_analytics.bots`` and ``edge_analytics_hourly.bots``: the requests of bots in the minute
(the hour) by the edge's verdict, ``{"<class>:<action>": n}`` (``node/agent/bots.py``); ``{}``
for the rows of before.

Revision ID: 0019
Revises: 0015
Create Date: 2026-12-05 00:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

TABLES = ("edge_analytics", "edge_analytics_hourly")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("bots", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
            )


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("bots")
