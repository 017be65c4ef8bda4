"""monitoring: alert rules, their states and incidents, silences, notification channels and
deliveries, uptime checks, hourly traffic, access log samples, budgets and the cost model

``alerts`` become incidents of rules (a state, the value and threshold, when the breach began,
when it was resolved or acknowledged); the certificate events already there stay ``firing``.
``edge_analytics`` counts the bytes of the responses served from a static bundle
(``static_bytes``: edge deployment traffic, priced apart from the CDN's).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 14:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("node_id", sa.String(length=63), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("bytes_sent", sa.BigInteger(), nullable=False),
        sa.Column("cache", sa.String(length=16), nullable=True),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("request_ms", sa.Float(), nullable=True),
        sa.Column("upstream_ms", sa.Float(), nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_log")),
    )
    with op.batch_alter_table("access_log", schema=None) as batch_op:
        batch_op.create_index("ix_access_log_at", ["at"], unique=False)
        batch_op.create_index("ix_access_log_domain", ["project_id", "domain", "id"], unique=False)

    op.create_table(
        "alert_states",
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("rule_id", sa.String(length=63), nullable=False),
        sa.Column("object", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("alert_id", sa.String(length=63), nullable=True),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "rule_id", "object", name=op.f("pk_alert_states")),
    )
    op.create_table(
        "cost_model",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cost_model")),
    )
    op.create_table(
        "edge_analytics_hourly",
        sa.Column("node_id", sa.String(length=63), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("hits", sa.BigInteger(), nullable=False),
        sa.Column("misses", sa.BigInteger(), nullable=False),
        sa.Column("bytes_out", sa.BigInteger(), nullable=False),
        sa.Column("statuses", sa.JSON(), nullable=False),
        sa.Column("cache", sa.JSON(), nullable=False),
        sa.Column("upstream_ms", sa.JSON(), nullable=False),
        sa.Column("request_ms", sa.JSON(), nullable=False),
        sa.Column("static", sa.BigInteger(), nullable=False),
        sa.Column("countries", sa.JSON(), nullable=False),
        sa.Column("static_bytes", sa.BigInteger(), nullable=False),
        sa.Column("blocked", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("node_id", "domain", "hour", name=op.f("pk_edge_analytics_hourly")),
    )
    with op.batch_alter_table("edge_analytics_hourly", schema=None) as batch_op:
        batch_op.create_index(
            "ix_edge_analytics_hourly_project_hour", ["project_id", "hour"], unique=False
        )

    op.create_table(
        "notifications",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("alert_id", sa.String(length=63), nullable=False),
        sa.Column("channel_id", sa.String(length=63), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("log", sa.JSON(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("alert_id", "channel_id", "event", name="uq_notifications_once"),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_notifications_project_id"), ["project_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_notifications_status"), ["status"], unique=False)

    op.create_table(
        "uptime_hourly",
        sa.Column("node_id", sa.String(length=63), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=300), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("checks", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("latency_ms_sum", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("node_id", "kind", "target", "hour", name=op.f("pk_uptime_hourly")),
    )
    with op.batch_alter_table("uptime_hourly", schema=None) as batch_op:
        batch_op.create_index("ix_uptime_hourly_project_hour", ["project_id", "hour"], unique=False)

    op.create_table(
        "alert_rules",
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("id", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("series", sa.String(length=63), nullable=False),
        sa.Column("selector", sa.JSON(), nullable=False),
        sa.Column("comparison", sa.String(length=2), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("window_s", sa.Integer(), nullable=False),
        sa.Column("for_s", sa.Integer(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("builtin", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_alert_rules_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "id", name=op.f("pk_alert_rules")),
    )
    op.create_table(
        "budgets",
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("id", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("thresholds", sa.JSON(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=True),
        sa.Column("alerted", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_budgets_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "id", name=op.f("pk_budgets")),
    )
    op.create_table(
        "notification_channels",
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("id", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("secrets_encrypted", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_notification_channels_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "id", name=op.f("pk_notification_channels")),
    )
    op.create_table(
        "silences",
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("id", sa.String(length=63), nullable=False),
        sa.Column("rule_id", sa.String(length=63), nullable=True),
        sa.Column("object", sa.String(length=255), nullable=True),
        sa.Column("severity", sa.String(length=16), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_silences_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "id", name=op.f("pk_silences")),
    )
    op.create_table(
        "uptime_state",
        sa.Column("node_id", sa.String(length=63), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=300), nullable=False),
        sa.Column("project_id", sa.String(length=63), nullable=False),
        sa.Column("up", sa.Boolean(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["edge_nodes.id"],
            name=op.f("fk_uptime_state_node_id_edge_nodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("node_id", "kind", "target", name=op.f("pk_uptime_state")),
    )
    with op.batch_alter_table("uptime_state", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_uptime_state_project_id"), ["project_id"], unique=False
        )

    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rule_id", sa.String(length=63), nullable=True))
        batch_op.add_column(
            sa.Column("state", sa.String(length=16), nullable=False, server_default="firing")
        )
        batch_op.add_column(sa.Column("value", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("threshold", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("started_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("acknowledged_by", sa.String(length=200), nullable=True))

    with op.batch_alter_table("edge_analytics", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("static_bytes", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("blocked", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("edge_analytics", schema=None) as batch_op:
        batch_op.drop_column("blocked")
        batch_op.drop_column("static_bytes")

    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_column("acknowledged_by")
        batch_op.drop_column("acknowledged_at")
        batch_op.drop_column("resolved_at")
        batch_op.drop_column("started_at")
        batch_op.drop_column("threshold")
        batch_op.drop_column("value")
        batch_op.drop_column("state")
        batch_op.drop_column("rule_id")

    with op.batch_alter_table("uptime_state", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_uptime_state_project_id"))

    op.drop_table("uptime_state")
    op.drop_table("silences")
    op.drop_table("notification_channels")
    op.drop_table("budgets")
    op.drop_table("alert_rules")
    with op.batch_alter_table("uptime_hourly", schema=None) as batch_op:
        batch_op.drop_index("ix_uptime_hourly_project_hour")

    op.drop_table("uptime_hourly")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notifications_status"))
        batch_op.drop_index(batch_op.f("ix_notifications_project_id"))

    op.drop_table("notifications")
    with op.batch_alter_table("edge_analytics_hourly", schema=None) as batch_op:
        batch_op.drop_index("ix_edge_analytics_hourly_project_hour")

    op.drop_table("edge_analytics_hourly")
    op.drop_table("cost_model")
    op.drop_table("alert_states")
    with op.batch_alter_table("access_log", schema=None) as batch_op:
        batch_op.drop_index("ix_access_log_domain")
        batch_op.drop_index("ix_access_log_at")

    op.drop_table("access_log")
