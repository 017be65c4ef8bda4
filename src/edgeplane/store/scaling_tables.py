"""Scaling groups, their instances and their actions (``edgeplane.scaling``).

``scaling_groups`` holds what the user asked (the spec, as the model's JSON) and what the
controller keeps between its passes: ``desired`` (the size it works towards), ``status``,
``failures`` (failed launches in a row) and ``memory`` (its recent recommendations and metric
samples, for the stabilisation windows and rates). ``scaling_instances`` is every instance it
made, with the times of its steps; ``scaling_actions`` each scale-out, scale-in and replacement
with its steps and outcome.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from edgeplane.store.tables import Base, Timestamps, utcnow


class ScalingGroupRow(Timestamps, Base):
    __tablename__ = "scaling_groups"
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    load_balancer_id: Mapped[str] = mapped_column(String(63))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # ScalingGroupCreate, id and name set
    desired: Mapped[int] = mapped_column(Integer)
    # steady / scaling_out / scaling_in / stopped / deleting
    status: Mapped[str] = mapped_column(String(16), default="steady")
    status_detail: Mapped[str] = mapped_column(Text, default="")
    failures: Mapped[int] = mapped_column(Integer, default=0)
    memory: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    last_action_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (Index("ix_scaling_groups_lb", "project_id", "load_balancer_id"),)


def _group_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["project_id", "group_id"],
        ["scaling_groups.project_id", "scaling_groups.id"],
        ondelete="CASCADE",
    )


class ScalingInstanceRow(Base):
    __tablename__ = "scaling_instances"
    project_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    id: Mapped[str] = mapped_column(String(63), primary_key=True)  # also the server's id
    group_id: Mapped[str] = mapped_column(String(63))
    action_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    # provisioning / starting / registered / serving / draining / deleting / deleted / failed
    state: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")
    driver_ref: Mapped[str] = mapped_column(String(255), default="")
    host: Mapped[str | None] = mapped_column(String(255), default=None)
    port: Mapped[int | None] = mapped_column(Integer, default=None)
    cpu_percent: Mapped[float | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    state_at: Mapped[datetime] = mapped_column(default=utcnow)  # when it entered its state
    registered_revision: Mapped[int | None] = mapped_column(BigInteger, default=None)
    serving_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (_group_fk(), Index("ix_scaling_instances_group", "project_id", "group_id"))


class ScalingActionRow(Base):
    __tablename__ = "scaling_actions"
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    project_id: Mapped[str] = mapped_column(String(63))
    group_id: Mapped[str] = mapped_column(String(63))
    kind: Mapped[str] = mapped_column(String(16))  # scale_out / scale_in / replace
    trigger: Mapped[str] = mapped_column(Text)
    metric: Mapped[str | None] = mapped_column(String(32), default=None)
    value: Mapped[float | None] = mapped_column(default=None)
    from_size: Mapped[int] = mapped_column(Integer)
    to_size: Mapped[int] = mapped_column(Integer)
    instances: Mapped[list[str]] = mapped_column(JSON, default=list)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="running")
    detail: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (
        _group_fk(),
        Index("ix_scaling_actions_group", "project_id", "group_id", "id"),
    )
