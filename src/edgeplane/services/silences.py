"""Silences: no notification for the alerts they match while they last.

A silence matches an alert when each of its matchers it has holds: the rule (its id), the
object (exact, or a pattern with ``*``) and the severity. Silenced alerts still fire and
resolve and are listed (``silenced: true``); their notifications are recorded as ``silenced``
rather than sent. A silence ends at ``ends_at`` or when deleted (expiring it at once).
"""

from __future__ import annotations

import fnmatch
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from edgeplane.errors import Conflict, InvalidInput, NotFound
from edgeplane.model.alerting import Silence, SilenceCreate
from edgeplane.model.enums import Role
from edgeplane.services.common import validate
from edgeplane.store.db import Tx
from edgeplane.store.monitoring_tables import SilenceRow
from edgeplane.store.tables import utcnow


def to_model(row: SilenceRow, now: datetime | None = None) -> Silence:
    now = now or utcnow()
    return Silence(
        id=row.id,
        project=row.project_id,
        rule=row.rule_id,
        object=row.object,
        severity=row.severity,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        comment=row.comment,
        created_by=row.created_by,
        created_at=row.created_at,
        active=row.starts_at <= now < row.ends_at,
    )


def matches(row: SilenceRow, rule_id: str | None, obj: str, severity: str, now: datetime) -> bool:
    if not row.starts_at <= now < row.ends_at:
        return False
    if row.rule_id is not None and row.rule_id != rule_id:
        return False
    if row.severity is not None and row.severity != severity:
        return False
    return row.object is None or fnmatch.fnmatchcase(obj, row.object)


def silenced(
    tx: Tx, project: str, rule_id: str | None, obj: str, severity: str, now: datetime
) -> bool:
    rows = tx.session.scalars(
        select(SilenceRow).where(SilenceRow.project_id == project, SilenceRow.ends_at > now)
    )
    return any(matches(r, rule_id, obj, severity, now) for r in rows)


def create(tx: Tx, data: SilenceCreate | dict[str, Any]) -> Silence:
    tx.actor.require(tx.project, Role.EDITOR)
    spec = validate(SilenceCreate, data) if isinstance(data, dict) else data
    now = utcnow()
    starts = spec.starts_at or now
    if spec.ends_at is not None and spec.duration_s is not None:
        raise InvalidInput.at("duration_s", "give ends_at or duration_s, not both")
    if spec.ends_at is None and spec.duration_s is None:
        raise InvalidInput.at("ends_at", "give ends_at or duration_s")
    ends = spec.ends_at or starts + timedelta(seconds=spec.duration_s or 0)
    if ends <= starts:
        raise InvalidInput.at("ends_at", "must be after starts_at")
    if ends <= now:
        raise InvalidInput.at("ends_at", "is in the past: the silence would never hold")
    silence_id = spec.id or f"silence-{secrets.token_hex(4)}"
    if tx.session.get(SilenceRow, (tx.project, silence_id)) is not None:
        raise Conflict(f"silence {silence_id!r} exists")
    row = SilenceRow(
        project_id=tx.project,
        id=silence_id,
        rule_id=spec.rule,
        object=spec.object,
        severity=spec.severity,
        starts_at=starts,
        ends_at=ends,
        comment=spec.comment,
        created_by=tx.actor.name,
        created_at=now,
    )
    tx.session.add(row)
    tx.session.flush()
    view = to_model(row, now)
    tx.record("create", "silence", row.id, None, view.model_dump(mode="json"))
    return view


def list_silences(tx: Tx, *, active_only: bool = False) -> list[Silence]:
    tx.actor.require(tx.project, Role.VIEWER)
    now = utcnow()
    q = select(SilenceRow).where(SilenceRow.project_id == tx.project)
    if active_only:
        q = q.where(SilenceRow.ends_at > now, SilenceRow.starts_at <= now)
    return [to_model(r, now) for r in tx.session.scalars(q.order_by(SilenceRow.starts_at.desc()))]


def expire(tx: Tx, silence_id: str) -> Silence:
    """End a silence now (kept in the history)."""
    tx.actor.require(tx.project, Role.EDITOR)
    row = tx.session.get(SilenceRow, (tx.project, silence_id))
    if row is None:
        raise NotFound(f"silence {silence_id!r} not found")
    now = utcnow()
    before = to_model(row, now)
    if row.ends_at > now:
        row.ends_at = max(now, row.starts_at)
    tx.session.flush()
    view = to_model(row, now)
    tx.record("expire", "silence", row.id, before.model_dump(mode="json"),
              view.model_dump(mode="json"))  # fmt: skip
    return view
