"""the zone serials an edge node serves, a row per zone

They were a JSON document on the node's row (``edge_nodes.dns["serials"]``): at 10,000 zones
every heartbeat, liveness check and snapshot read it whole, and a heartbeat with one changed
serial wrote it whole again. ``edge_zone_serials`` holds them a row per (node, zone);
``edge_nodes.dns`` keeps the DNS engine's error and reason.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 23:10:00.000000
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_nodes = sa.table("edge_nodes", sa.column("id", sa.String), sa.column("dns", sa.JSON))
_serials = sa.table(
    "edge_zone_serials",
    sa.column("node_id", sa.String),
    sa.column("zone", sa.String),
    sa.column("serial", sa.BigInteger),
)


def _doc(value: Any) -> dict[str, Any]:
    if isinstance(value, str):  # a driver that hands JSON over as text
        value = json.loads(value)
    return value if isinstance(value, dict) else {}


def upgrade() -> None:
    op.create_table(
        "edge_zone_serials",
        sa.Column("node_id", sa.String(length=63), nullable=False),
        sa.Column("zone", sa.String(length=255), nullable=False),
        sa.Column("serial", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["edge_nodes.id"],
            name=op.f("fk_edge_zone_serials_node_id_edge_nodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("node_id", "zone", name=op.f("pk_edge_zone_serials")),
    )
    with op.batch_alter_table("edge_zone_serials", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_edge_zone_serials_zone"), ["zone"], unique=False)
    conn = op.get_bind()
    for node_id, dns in conn.execute(sa.select(_nodes.c.id, _nodes.c.dns)).all():
        doc = _doc(dns)
        serials = doc.pop("serials", None) or {}
        rows = [
            {"node_id": node_id, "zone": zone, "serial": int(serial)}
            for zone, serial in serials.items()
            if serial
        ]
        if rows:
            conn.execute(_serials.insert(), rows)
        conn.execute(_nodes.update().where(_nodes.c.id == node_id).values(dns=doc))


def downgrade() -> None:
    conn = op.get_bind()
    served: dict[str, dict[str, int]] = {}
    for node_id, zone, serial in conn.execute(
        sa.select(_serials.c.node_id, _serials.c.zone, _serials.c.serial)
    ).all():
        served.setdefault(node_id, {})[zone] = int(serial)
    for node_id, dns in conn.execute(sa.select(_nodes.c.id, _nodes.c.dns)).all():
        doc = {**_doc(dns), "serials": served.get(node_id, {})}
        conn.execute(_nodes.update().where(_nodes.c.id == node_id).values(dns=doc))
    with op.batch_alter_table("edge_zone_serials", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_edge_zone_serials_zone"))
    op.drop_table("edge_zone_serials")
