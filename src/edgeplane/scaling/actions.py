"""Scaling actions: each scale-out, scale-in and replacement, with its steps as they happen
(spec 002's flow: triggered -> provisioned -> registered -> healthy -> done; for a scale-in
triggered -> drained -> deregistered -> deleted -> done), its timings and its outcome."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from edgeplane.model.scaling import ActionStep, ScalingAction
from edgeplane.store.db import Tx
from edgeplane.store.scaling_tables import ScalingActionRow
from edgeplane.store.tables import utcnow


def start(
    tx: Tx,
    group: str,
    kind: str,
    trigger: str,
    from_size: int,
    to_size: int,
    *,
    metric: str | None = None,
    value: float | None = None,
    now: datetime | None = None,
) -> ScalingActionRow:
    now = now or utcnow()
    row = ScalingActionRow(
        project_id=tx.project,
        group_id=group,
        kind=kind,
        trigger=trigger[:2000],
        metric=metric,
        value=None if value is None else round(value, 4),
        from_size=from_size,
        to_size=to_size,
        instances=[],
        steps=[{"name": "triggered", "at": now.isoformat(), "detail": trigger[:500]}],
        status="running",
        started_at=now,
    )
    tx.session.add(row)
    tx.session.flush()
    return row


def step(row: ScalingActionRow, name: str, detail: str = "", now: datetime | None = None) -> None:
    """Record a step once (a step already recorded keeps its first time)."""
    if any(s["name"] == name for s in row.steps):
        return
    at = (now or utcnow()).isoformat()
    row.steps = [*row.steps, {"name": name, "at": at, "detail": detail[:500]}]


def add_instance(row: ScalingActionRow, instance: str) -> None:
    if instance not in row.instances:
        row.instances = [*row.instances, instance]


def finish(
    row: ScalingActionRow, status: str, detail: str = "", now: datetime | None = None
) -> None:
    if row.status != "running":
        return
    now = now or utcnow()
    step(row, "done" if status == "succeeded" else "failed", detail, now)
    row.status, row.detail, row.finished_at = status, detail[:2000], now


def running(tx: Tx, group: str) -> list[ScalingActionRow]:
    return list(
        tx.session.scalars(
            select(ScalingActionRow)
            .where(
                ScalingActionRow.project_id == tx.project,
                ScalingActionRow.group_id == group,
                ScalingActionRow.status == "running",
            )
            .order_by(ScalingActionRow.id)
        )
    )


def last(tx: Tx, group: str) -> ScalingActionRow | None:
    return tx.session.scalar(
        select(ScalingActionRow)
        .where(ScalingActionRow.project_id == tx.project, ScalingActionRow.group_id == group)
        .order_by(ScalingActionRow.id.desc())
        .limit(1)
    )


def to_model(row: ScalingActionRow) -> ScalingAction:
    steps: list[dict[str, Any]] = list(row.steps or [])
    end = row.finished_at
    return ScalingAction(
        id=row.id,
        group=row.group_id,
        kind=row.kind,
        trigger=row.trigger,
        metric=row.metric,
        value=row.value,
        from_size=row.from_size,
        to_size=row.to_size,
        instances=list(row.instances or []),
        steps=[ActionStep.model_validate(s) for s in steps],
        status=row.status,
        detail=row.detail,
        started_at=row.started_at,
        finished_at=end,
        duration_s=None if end is None else round((end - row.started_at).total_seconds(), 3),
    )
