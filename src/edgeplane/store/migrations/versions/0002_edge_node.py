"""edge node: domains, certificates, CDN configs, edge nodes, health, purges, analytics

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 04:40:22.312083
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "edge_analytics",
        sa.Column("node_id", sa.String(length=63), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("hits", sa.BigInteger(), nullable=False),
        sa.Column("misses", sa.BigInteger(), nullable=False),
        sa.Column("bytes_out", sa.BigInteger(), nullable=False),
        sa.Column("statuses", sa.JSON(), nullable=False),
        sa.Column("cache", sa.JSON(), nullable=False),
        sa.Column("upstream_ms", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("node_id", "domain", "minute", name=op.f("pk_edge_analytics")),
    )
    with op.batch_alter_table("edge_analytics", schema=None) as batch_op:
        batch_op.create_index(
            "ix_edge_analytics_project_minute", ["project_id", "minute"], unique=False
        )

    op.create_table(
        "edge_nodes",
        sa.Column("id", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("address", sa.String(length=255), nullable=True),
        sa.Column("http_port", sa.Integer(), nullable=True),
        sa.Column("https_port", sa.Integer(), nullable=True),
        sa.Column("token_id", sa.String(length=63), nullable=True),
        sa.Column("version", sa.String(length=32), nullable=True),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("applied_revision", sa.BigInteger(), nullable=True),
        sa.Column("applied_hash", sa.String(length=64), nullable=True),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("apply_ms", sa.Float(), nullable=True),
        sa.Column("propagation_ms", sa.Float(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("failed_revision", sa.BigInteger(), nullable=True),
        sa.Column("stats", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_edge_nodes")),
        sa.UniqueConstraint("name", name=op.f("uq_edge_nodes_name")),
    )
    op.create_table(
        "secrets",
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("value_encrypted", sa.Text(), nullable=False),
        sa.Column("public", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_secrets")),
    )
    op.create_table(
        "backend_health",
        sa.Column("node_id", sa.String(length=63), nullable=False),
        sa.Column("pool", sa.String(length=200), nullable=False),
        sa.Column("backend", sa.String(length=300), nullable=False),
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["edge_nodes.id"],
            name=op.f("fk_backend_health_node_id_edge_nodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("node_id", "pool", "backend", name=op.f("pk_backend_health")),
    )
    with op.batch_alter_table("backend_health", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_backend_health_project_id"), ["project_id"], unique=False
        )

    op.create_table(
        "cdn_configs",
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("origins", sa.JSON(), nullable=False),
        sa.Column("cache_rules", sa.JSON(), nullable=False),
        sa.Column("security", sa.JSON(), nullable=False),
        sa.Column("environment", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_cdn_configs_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_cdn_configs")),
    )
    op.create_table(
        "certificates",
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("id", sa.String(length=63), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("issuer", sa.String(length=32), nullable=False),
        sa.Column("names", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("cert_pem", sa.Text(), nullable=False),
        sa.Column("key_encrypted", sa.Text(), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("auto_renew", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_certificates_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "id", name=op.f("pk_certificates")),
    )
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_certificates_domain"), ["domain"], unique=False)

    op.create_table(
        "domains",
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("environment", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_domains_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_domains")),
    )
    with op.batch_alter_table("domains", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_domains_project_id"), ["project_id"], unique=False)

    op.create_table(
        "purges",
        sa.Column("id", sa.String(length=63), nullable=False),
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("paths", sa.JSON(), nullable=False),
        sa.Column("purge_all", sa.Boolean(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_purges_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purges")),
    )
    with op.batch_alter_table("purges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_purges_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_purges_project_id"), ["project_id"], unique=False)

    op.create_table(
        "purge_acks",
        sa.Column("purge_id", sa.String(length=63), nullable=False),
        sa.Column("node_id", sa.String(length=63), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("purged_count", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["edge_nodes.id"],
            name=op.f("fk_purge_acks_node_id_edge_nodes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["purge_id"],
            ["purges.id"],
            name=op.f("fk_purge_acks_purge_id_purges"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("purge_id", "node_id", name=op.f("pk_purge_acks")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("scope", sa.String(length=16), nullable=False, server_default="api")
        )

    with op.batch_alter_table("load_balancers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("backends", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("options", sa.JSON(), nullable=False, server_default="{}"))

    # Every endpoint of an existing load balancer becomes an active backend of weight 100.
    lbs = sa.table(
        "load_balancers",
        sa.column("project_id", sa.String),
        sa.column("id", sa.String),
        sa.column("endpoints", sa.JSON),
        sa.column("backends", sa.JSON),
    )
    conn = op.get_bind()
    for project_id, lb_id, endpoints in conn.execute(
        sa.select(lbs.c.project_id, lbs.c.id, lbs.c.endpoints)
    ):
        backends = [
            {"address": e, "port": None, "weight": 100, "backup": False, "state": "active"}
            for e in endpoints or []
        ]
        conn.execute(
            lbs.update()
            .where(lbs.c.project_id == project_id, lbs.c.id == lb_id)
            .values(backends=backends)
        )


def downgrade() -> None:
    with op.batch_alter_table("load_balancers", schema=None) as batch_op:
        batch_op.drop_column("options")
        batch_op.drop_column("backends")

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("scope")

    op.drop_table("purge_acks")
    with op.batch_alter_table("purges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_purges_project_id"))
        batch_op.drop_index(batch_op.f("ix_purges_created_at"))

    op.drop_table("purges")
    with op.batch_alter_table("domains", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_domains_project_id"))

    op.drop_table("domains")
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_certificates_domain"))

    op.drop_table("certificates")
    op.drop_table("cdn_configs")
    with op.batch_alter_table("backend_health", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backend_health_project_id"))

    op.drop_table("backend_health")
    op.drop_table("secrets")
    op.drop_table("edge_nodes")
    with op.batch_alter_table("edge_analytics", schema=None) as batch_op:
        batch_op.drop_index("ix_edge_analytics_project_minute")

    op.drop_table("edge_analytics")
