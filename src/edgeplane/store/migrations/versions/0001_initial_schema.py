"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 02:49:02.427313
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

# The well-known locations every installation starts with (code, name, latitude, longitude,
# area); operators add their own with `edgeplane region create`.
CATALOG = [
    ("us-east", "US East (Virginia)", 39.0438, -77.4874, "americas"),
    ("us-central", "US Central (Iowa)", 41.2619, -95.8608, "americas"),
    ("us-west", "US West (California)", 37.3541, -121.9552, "americas"),
    ("ca-central", "Canada (Montreal)", 45.5017, -73.5673, "americas"),
    ("sa-east", "South America (Sao Paulo)", -23.5505, -46.6333, "americas"),
    ("eu-west", "Europe West (Ireland)", 53.3498, -6.2603, "europe"),
    ("uk-south", "UK South (London)", 51.5072, -0.1276, "europe"),
    ("eu-central", "Europe Central (Frankfurt)", 50.1109, 8.6821, "europe"),
    ("eu-north", "Europe North (Stockholm)", 59.3293, 18.0686, "europe"),
    ("me-central", "Middle East (Dubai)", 25.2048, 55.2708, "middle_east_africa"),
    ("af-south", "Africa South (Johannesburg)", -26.2041, 28.0473, "middle_east_africa"),
    ("ap-south", "Asia Pacific South (Mumbai)", 19.0760, 72.8777, "asia_pacific"),
    ("ap-southeast", "Asia Pacific Southeast (Singapore)", 1.3521, 103.8198, "asia_pacific"),
    ("ap-east", "Asia Pacific East (Hong Kong)", 22.3193, 114.1694, "asia_pacific"),
    ("ap-northeast", "Asia Pacific Northeast (Tokyo)", 35.6762, 139.6503, "asia_pacific"),
    ("au-southeast", "Australia (Sydney)", -33.8688, 151.2093, "asia_pacific"),
]


revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_api_tokens_secret_hash")),
    )
    op.create_table(
        "audit_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("project_id", sa.String(length=63), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("object_id", sa.String(length=200), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index("ix_audit_events_object", ["kind", "object_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_audit_events_project_id"), ["project_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_audit_events_revision"), ["revision"], unique=False)

    op.create_table(
        "projects",
        sa.Column("id", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
    )
    op.create_table(
        "regions",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.Column("area", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_regions")),
    )
    op.create_table(
        "revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_revision")),
    )
    op.create_table(
        "api_token_roles",
        sa.Column("token_id", sa.String(length=63), nullable=False),
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_api_token_roles_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["token_id"],
            ["api_tokens.id"],
            name=op.f("fk_api_token_roles_token_id_api_tokens"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_id", "project_id", name=op.f("pk_api_token_roles")),
    )
    op.create_table(
        "data_centers",
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("id", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("location", sa.String(length=32), nullable=False),
        sa.Column("tier", sa.Integer(), nullable=False),
        sa.Column("environment", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cpu", sa.Float(), nullable=False),
        sa.Column("memory", sa.Float(), nullable=False),
        sa.Column("storage", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["location"], ["regions.code"], name=op.f("fk_data_centers_location_regions")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_data_centers_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "id", name=op.f("pk_data_centers")),
    )
    with op.batch_alter_table("data_centers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_data_centers_location"), ["location"], unique=False)

    op.create_table(
        "load_balancers",
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("id", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("algorithm", sa.String(length=16), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=True),
        sa.Column("endpoints", sa.JSON(), nullable=False),
        sa.Column("health_check", sa.JSON(), nullable=False),
        sa.Column("environment", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_load_balancers_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "id", name=op.f("pk_load_balancers")),
    )
    op.create_table(
        "dr_configs",
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("id", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("primary_dc", sa.String(length=63), nullable=False),
        sa.Column("backup_dc", sa.String(length=63), nullable=False),
        sa.Column("rpo", sa.Integer(), nullable=False),
        sa.Column("rto", sa.Integer(), nullable=False),
        sa.Column("environment", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id", "backup_dc"],
            ["data_centers.project_id", "data_centers.id"],
            name="fk_dr_configs_backup_dc",
        ),
        sa.ForeignKeyConstraint(
            ["project_id", "primary_dc"],
            ["data_centers.project_id", "data_centers.id"],
            name="fk_dr_configs_primary_dc",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_dr_configs_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "id", name=op.f("pk_dr_configs")),
    )
    op.create_table(
        "servers",
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("id", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("location", sa.String(length=32), nullable=False),
        sa.Column("profile", sa.String(length=63), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("data_center_id", sa.String(length=63), nullable=True),
        sa.Column("address", sa.String(length=255), nullable=True),
        sa.Column("environment", sa.String(length=16), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("metrics_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cpu_percent", sa.Float(), nullable=True),
        sa.Column("memory_percent", sa.Float(), nullable=True),
        sa.Column("storage_percent", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cpu", sa.Float(), nullable=False),
        sa.Column("memory", sa.Float(), nullable=False),
        sa.Column("storage", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["location"], ["regions.code"], name=op.f("fk_servers_location_regions")
        ),
        sa.ForeignKeyConstraint(
            ["project_id", "data_center_id"],
            ["data_centers.project_id", "data_centers.id"],
            name="fk_servers_data_center",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_servers_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "id", name=op.f("pk_servers")),
    )
    with op.batch_alter_table("servers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_servers_data_center", ["project_id", "data_center_id"], unique=False
        )
        batch_op.create_index(
            "ix_servers_location", ["project_id", "location", "status"], unique=False
        )

    op.create_table(
        "server_metrics",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("server_id", sa.String(length=63), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id", "server_id"],
            ["servers.project_id", "servers.id"],
            name="fk_server_metrics_server",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_server_metrics")),
    )
    with op.batch_alter_table("server_metrics", schema=None) as batch_op:
        batch_op.create_index(
            "ix_server_metrics_server_at", ["project_id", "server_id", "at"], unique=False
        )

    op.create_table(
        "services",
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("id", sa.String(length=63), nullable=False),
        sa.Column("server_id", sa.String(length=63), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cpu", sa.Float(), nullable=False),
        sa.Column("memory", sa.Float(), nullable=False),
        sa.Column("storage", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id", "server_id"],
            ["servers.project_id", "servers.id"],
            name="fk_services_server",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_services_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "id", name=op.f("pk_services")),
    )
    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.create_index(
            "ix_services_server", ["project_id", "server_id", "type", "status"], unique=False
        )
        batch_op.create_index("ix_services_type", ["project_id", "type", "status"], unique=False)

    now = datetime.now(UTC)
    op.bulk_insert(
        sa.table("revision", sa.column("id", sa.Integer), sa.column("value", sa.BigInteger)),
        [{"id": 1, "value": 0}],
    )
    op.bulk_insert(
        sa.table(
            "projects",
            sa.column("id", sa.String),
            sa.column("name", sa.String),
            sa.column("created_at", sa.DateTime(timezone=True)),
        ),
        [{"id": "default", "name": "Default project", "created_at": now}],
    )
    regions = sa.table(
        "regions",
        sa.column("code", sa.String),
        sa.column("name", sa.String),
        sa.column("latitude", sa.Float),
        sa.column("longitude", sa.Float),
        sa.column("area", sa.String),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    op.bulk_insert(
        regions,
        [
            {
                "code": code,
                "name": name,
                "latitude": lat,
                "longitude": lon,
                "area": area,
                "created_at": now,
                "updated_at": now,
            }
            for code, name, lat, lon, area in CATALOG
        ],
    )


def downgrade() -> None:
    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.drop_index("ix_services_type")
        batch_op.drop_index("ix_services_server")

    op.drop_table("services")
    with op.batch_alter_table("server_metrics", schema=None) as batch_op:
        batch_op.drop_index("ix_server_metrics_server_at")

    op.drop_table("server_metrics")
    with op.batch_alter_table("servers", schema=None) as batch_op:
        batch_op.drop_index("ix_servers_location")
        batch_op.drop_index("ix_servers_data_center")

    op.drop_table("servers")
    op.drop_table("dr_configs")
    op.drop_table("load_balancers")
    with op.batch_alter_table("data_centers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_data_centers_location"))

    op.drop_table("data_centers")
    op.drop_table("api_token_roles")
    op.drop_table("revision")
    op.drop_table("regions")
    op.drop_table("projects")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_revision"))
        batch_op.drop_index(batch_op.f("ix_audit_events_project_id"))
        batch_op.drop_index("ix_audit_events_object")

    op.drop_table("audit_events")
    op.drop_table("api_tokens")
