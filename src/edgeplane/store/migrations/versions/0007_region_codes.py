"""regions, one model: every location gets its region code (spec 001) beside its region type

Each location (a row of ``regions``) already had its region type (``area``: americas, europe,
asia_pacific, middle_east_africa). It now also has its region code (na, sa, eu, apac, mea):
the one its region type has, and for americas na or sa by its coordinates (sa-east is sa).

Stored objects follow their location: a data center's ``region`` (a region code) becomes its
location's where they differ (before, only the region type was checked, so a data center in
us-east could say sa), and a server's ``region`` (a region type) its location's (a location's
type could be changed after servers were placed there).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# The rules as they are at this revision (edgeplane.model.regions may change later).
_CODE_OF_TYPE = {"europe": "eu", "asia_pacific": "apac", "middle_east_africa": "mea"}


def _region_code(area: str, latitude: float, longitude: float) -> str:
    if area in _CODE_OF_TYPE:
        return _CODE_OF_TYPE[area]
    south = latitude < 7.5 or (latitude < 13.0 and longitude > -77.2)
    return "sa" if south else "na"


def upgrade() -> None:
    # NOT NULL from the start: SQLite cannot add the constraint later without rebuilding the
    # table, which data centers and servers reference. The placeholder is never kept.
    op.add_column(
        "regions",
        sa.Column("region_code", sa.String(length=8), nullable=False, server_default=""),
    )
    conn = op.get_bind()
    regions = sa.table(
        "regions",
        sa.column("code", sa.String),
        sa.column("latitude", sa.Float),
        sa.column("longitude", sa.Float),
        sa.column("area", sa.String),
        sa.column("region_code", sa.String),
    )
    rows = conn.execute(
        sa.select(regions.c.code, regions.c.area, regions.c.latitude, regions.c.longitude)
    ).all()
    for code, area, latitude, longitude in rows:
        conn.execute(
            regions.update()
            .where(regions.c.code == code)
            .values(region_code=_region_code(area, latitude, longitude))
        )
    if conn.dialect.name == "postgresql":
        op.alter_column("regions", "region_code", server_default=None)

    data_centers = sa.table(
        "data_centers", sa.column("location", sa.String), sa.column("region", sa.String)
    )
    code_of_location = (
        sa.select(regions.c.region_code)
        .where(regions.c.code == data_centers.c.location)
        .scalar_subquery()
    )
    conn.execute(
        data_centers.update()
        .where(data_centers.c.region != code_of_location)
        .values(region=code_of_location)
    )
    servers = sa.table("servers", sa.column("location", sa.String), sa.column("region", sa.String))
    type_of_location = (
        sa.select(regions.c.area).where(regions.c.code == servers.c.location).scalar_subquery()
    )
    conn.execute(
        servers.update().where(servers.c.region != type_of_location).values(region=type_of_location)
    )


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35+): no rebuild of a table others reference.
    op.drop_column("regions", "region_code")
