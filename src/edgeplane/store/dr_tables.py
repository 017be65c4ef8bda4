"""The live side of disaster recovery: each DR config's state (which data center serves),
the audited timeline of its failovers and failbacks, and the drills with their reports.

``dr_states`` holds one row per DR config once the monitor has seen it: ``active`` is the data
center whose servers take the traffic (``primary`` or ``backup``), ``status`` where the config
is in its cycle. ``dr_events`` is the timeline (one ``episode`` per failover and its failback),
``dr_drills`` every drill with its steps, measured RTO / RPO and outcome.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKeyConstraint, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from edgeplane.store.tables import Base, utcnow


def _config_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["project_id", "dr_id"], ["dr_configs.project_id", "dr_configs.id"], ondelete="CASCADE"
    )


class DRStateRow(Base):
    __tablename__ = "dr_states"
    project_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    dr_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    active: Mapped[str] = mapped_column(String(16), default="primary")  # primary / backup
    # normal / failover_pending / failed_over / failback_pending / drill
    status: Mapped[str] = mapped_column(String(24), default="normal")
    since: Mapped[datetime] = mapped_column(default=utcnow)
    # the primary's health as the monitor last saw it, and since when
    primary_health: Mapped[str] = mapped_column(String(16), default="unknown")  # up/down/unknown
    health_since: Mapped[datetime | None] = mapped_column(default=None)
    health_detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    episode: Mapped[str | None] = mapped_column(String(80), default=None)  # the open failover
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (_config_fk(),)


class DREventRow(Base):
    __tablename__ = "dr_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(String(63), index=True)
    dr_id: Mapped[str] = mapped_column(String(63), index=True)
    episode: Mapped[str | None] = mapped_column(String(80), default=None, index=True)
    # detected / pending / confirmed / switched / served / recovered / failback ... / drill
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200), default="edgeplane")
    message: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (_config_fk(),)


class DRDrillRow(Base):
    __tablename__ = "dr_drills"
    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(63), index=True)
    dr_id: Mapped[str] = mapped_column(String(63), index=True)
    trigger: Mapped[str] = mapped_column(String(16), default="manual")  # manual / schedule
    actor: Mapped[str] = mapped_column(String(200), default="edgeplane")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    # running / passed / failed (missed a target) / error (could not complete)
    status: Mapped[str] = mapped_column(String(16), default="running")
    # [{"step": "alert_assessment", "started_at": iso, "ended_at": iso, "ok": bool,
    #   "detail": {...}}, ...]
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    rto_target_s: Mapped[float] = mapped_column(Float)
    rpo_target_s: Mapped[float] = mapped_column(Float)
    rto_s: Mapped[float | None] = mapped_column(Float, default=None)
    rpo_s: Mapped[float | None] = mapped_column(Float, default=None)
    message: Mapped[str] = mapped_column(Text, default="")
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (_config_fk(),)
