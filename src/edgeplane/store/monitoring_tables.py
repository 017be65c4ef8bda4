"""The tables of monitoring: alert rules and their evaluation, silences, notification channels
and deliveries, uptime checks, hourly traffic rollups, access log samples, costs and budgets.

Rules, silences, channels, budgets and the cost model are settings, not the edge's desired
state: changing them bumps no revision (no edge node needs them). The rest are observations.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from edgeplane.store.tables import Base, Timestamps, TrafficColumns, utcnow


class AlertRuleRow(Timestamps, Base):
    """A condition on a series (``edgeplane.services.series``) for the objects a selector
    picks: ``series comparison threshold`` over ``window_s``, held for ``for_s``."""

    __tablename__ = "alert_rules"
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    series: Mapped[str] = mapped_column(String(63))
    selector: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"domain": "x", ...}
    comparison: Mapped[str] = mapped_column(String(2))  # > >= < <= == !=
    threshold: Mapped[float] = mapped_column(Float)
    window_s: Mapped[int] = mapped_column(Integer)
    for_s: Mapped[int] = mapped_column(Integer)
    severity: Mapped[str] = mapped_column(String(16))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    channels: Mapped[list[str]] = mapped_column(default=list)  # []: every channel
    description: Mapped[str] = mapped_column(Text, default="")
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)  # a shipped default


class AlertStateRow(Base):
    """Where the evaluation of one rule stands for one object: ``pending`` (breached since
    ``since``, not yet for ``for_s``) or ``firing`` (its open alert is ``alert_id``). No row:
    the condition does not hold."""

    __tablename__ = "alert_states"
    project_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    object: Mapped[str] = mapped_column(String(255), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    since: Mapped[datetime] = mapped_column()
    value: Mapped[float | None] = mapped_column(Float, default=None)
    alert_id: Mapped[str | None] = mapped_column(String(63), default=None)
    evaluated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SilenceRow(Base):
    """No notification for the alerts it matches between ``starts_at`` and ``ends_at`` (they
    still fire and show, marked silenced)."""

    __tablename__ = "silences"
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    rule_id: Mapped[str | None] = mapped_column(String(63), default=None)  # None: any rule
    object: Mapped[str | None] = mapped_column(String(255), default=None)  # None: any
    severity: Mapped[str | None] = mapped_column(String(16), default=None)
    starts_at: Mapped[datetime] = mapped_column()
    ends_at: Mapped[datetime] = mapped_column()
    comment: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChannelRow(Timestamps, Base):
    """Where a project's alerts go: ``config`` without its secrets, which are encrypted."""

    __tablename__ = "notification_channels"
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # webhook / email / slack
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    secrets_encrypted: Mapped[str | None] = mapped_column(Text, default=None)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class NotificationRow(Base):
    """One message of one alert to one channel (``firing``, ``resolved`` or ``test``), with
    its delivery attempts: the outbox and the delivery log. Unique per (alert, channel,
    event): an incident sends one firing and one resolved message per channel."""

    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    project_id: Mapped[str] = mapped_column(String(63), index=True)
    alert_id: Mapped[str] = mapped_column(String(63))
    channel_id: Mapped[str] = mapped_column(String(63))
    event: Mapped[str] = mapped_column(String(16))
    # pending (to send, at next_attempt_at) / delivered / failed (gave up) / silenced
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    log: Mapped[list[Any]] = mapped_column(default=list)  # [{at, ok, error, ms, status}]
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the message's fields
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("alert_id", "channel_id", "event", name="uq_notifications_once"),
    )


class EdgeAnalyticsHourRow(TrafficColumns, Base):
    """One node's traffic for one domain in one hour: the minutes rolled up, kept longer."""

    __tablename__ = "edge_analytics_hourly"
    node_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    domain: Mapped[str] = mapped_column(String(253), primary_key=True)
    hour: Mapped[datetime] = mapped_column(primary_key=True)

    __table_args__ = (Index("ix_edge_analytics_hourly_project_hour", "project_id", "hour"),)


class UptimeStateRow(Base):
    """What one node's latest uptime check of one target saw (written on a change)."""

    __tablename__ = "uptime_state"
    node_id: Mapped[str] = mapped_column(
        ForeignKey("edge_nodes.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # http/https/dns/origin
    target: Mapped[str] = mapped_column(String(300), primary_key=True)  # domain or origin
    project_id: Mapped[str] = mapped_column(String(63), index=True)
    up: Mapped[bool] = mapped_column(Boolean)
    since: Mapped[datetime] = mapped_column()
    checked_at: Mapped[datetime] = mapped_column()
    error: Mapped[str | None] = mapped_column(Text, default=None)
    latency_ms: Mapped[float | None] = mapped_column(Float, default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)  # TLS: the leaf's


class UptimeHourRow(Base):
    """One node's checks of one target in one hour (replaced as the hour fills)."""

    __tablename__ = "uptime_hourly"
    node_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    target: Mapped[str] = mapped_column(String(300), primary_key=True)
    hour: Mapped[datetime] = mapped_column(primary_key=True)
    project_id: Mapped[str] = mapped_column(String(63))
    checks: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms_sum: Mapped[float] = mapped_column(Float, default=0.0)

    __table_args__ = (Index("ix_uptime_hourly_project_hour", "project_id", "hour"),)


class AccessLogRow(Base):
    """A request an edge node served, as its access log said (the latest kept per domain)."""

    __tablename__ = "access_log"
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    project_id: Mapped[str] = mapped_column(String(63))
    domain: Mapped[str] = mapped_column(String(253))
    node_id: Mapped[str] = mapped_column(String(63))
    at: Mapped[datetime] = mapped_column()
    method: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(Text)
    status: Mapped[int] = mapped_column(Integer)
    bytes_sent: Mapped[int] = mapped_column(BigInteger, default=0)
    cache: Mapped[str | None] = mapped_column(String(16), default=None)
    client: Mapped[str] = mapped_column(String(64), default="")
    request_ms: Mapped[float | None] = mapped_column(Float, default=None)
    upstream_ms: Mapped[float | None] = mapped_column(Float, default=None)
    user_agent: Mapped[str | None] = mapped_column(Text, default=None)

    __table_args__ = (
        Index("ix_access_log_domain", "project_id", "domain", "id"),
        Index("ix_access_log_at", "at"),
    )


class BudgetRow(Timestamps, Base):
    """A monthly budget of a project, alerted at its thresholds (percent)."""

    __tablename__ = "budgets"
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    amount: Mapped[float] = mapped_column(Float)
    thresholds: Mapped[list[Any]] = mapped_column(default=list)  # [50, 80, 100]
    period: Mapped[str | None] = mapped_column(String(7), default=None)  # "2026-12" alerted
    alerted: Mapped[list[Any]] = mapped_column(default=list)  # thresholds alerted in period


class CostModelRow(Base):
    """The platform's prices (``edgeplane.costs.model.CostModel``); one row, id 1."""

    __tablename__ = "cost_model"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(200), default="")
