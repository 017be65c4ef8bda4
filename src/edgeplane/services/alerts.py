"""Alerts: the incidents of alert rules, and events raised once per (kind, object, key).

An incident (kind ``rule``) is opened by the rule engine (``edgeplane.services.alert_engine``)
when a rule has held for its ``for_s`` on an object, and resolved when it no longer holds; an
event is raised once by the code that sees it (``certificate_renewal_failed``, a ``budget``
threshold crossed, ``certificate_expiry``). Both reach the project's notification channels
(``edgeplane.services.notifications``) and, as before, the platform's webhook
(``alert_webhook``). Anyone with a role may list them; an editor acknowledges one.
"""

from __future__ import annotations

import logging
import secrets as pysecrets
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import select

from edgeplane.errors import InvalidInput, NotFound
from edgeplane.model.common import Output
from edgeplane.model.enums import Role
from edgeplane.services import notifications, silences
from edgeplane.settings import Settings
from edgeplane.store.db import Database, Tx
from edgeplane.store.tables import AlertRow, utcnow

log = logging.getLogger("edgeplane.alerts")


class Alert(Output):
    id: str
    project: str
    kind: str
    object_id: str
    key: str
    severity: str
    message: str
    details: dict[str, Any]
    created_at: datetime
    delivered_at: datetime | None = None
    delivery_error: str | None = None
    rule: str | None = None
    state: str = "firing"
    value: float | None = None
    threshold: float | None = None
    started_at: datetime | None = None
    resolved_at: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    silenced: bool = False


def to_model(row: AlertRow, silenced: bool = False) -> Alert:
    return Alert(
        id=row.id,
        project=row.project_id,
        kind=row.kind,
        object_id=row.object_id,
        key=row.key,
        severity=row.severity,
        message=row.message,
        details=dict(row.details or {}),
        created_at=row.created_at,
        delivered_at=row.delivered_at,
        delivery_error=row.delivery_error,
        rule=row.rule_id,
        state=row.state,
        value=row.value,
        threshold=row.threshold,
        started_at=row.started_at,
        resolved_at=row.resolved_at,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
        silenced=silenced,
    )


def raise_once(
    tx: Tx,
    project: str,
    kind: str,
    object_id: str,
    key: str,
    severity: str,
    message: str,
    details: dict[str, Any] | None = None,
) -> str | None:
    """Record the alert unless the same (kind, object, key) exists; its id when new."""
    existing = tx.session.scalar(
        select(AlertRow.id).where(
            AlertRow.kind == kind, AlertRow.object_id == object_id, AlertRow.key == key
        )
    )
    if existing is not None:
        return None
    now = utcnow()
    row = AlertRow(
        id=new_id(),
        project_id=project,
        kind=kind,
        object_id=object_id,
        key=key,
        severity=severity,
        message=message,
        details=details or {},
        created_at=now,
        started_at=now,
    )
    tx.session.add(row)
    tx.session.flush()
    log.warning("alert %s (%s): %s", kind, severity, message)
    notifications.enqueue(tx, row, "firing", rule_name=kind, now=now)
    return row.id


def new_id() -> str:
    return f"alert-{pysecrets.token_hex(6)}"


def list_alerts(
    tx: Tx,
    *,
    kind: str | None = None,
    state: str | None = None,
    rule: str | None = None,
    limit: int = 100,
) -> list[Alert]:
    """Newest first."""
    tx.actor.require(tx.project, Role.VIEWER)
    q = select(AlertRow).where(AlertRow.project_id == tx.project)
    if kind:
        q = q.where(AlertRow.kind == kind)
    if state:
        if state not in ("firing", "resolved"):
            raise InvalidInput.at("state", "must be firing or resolved")
        q = q.where(AlertRow.state == state)
    if rule:
        q = q.where(AlertRow.rule_id == rule)
    q = q.order_by(AlertRow.created_at.desc(), AlertRow.id).limit(limit)
    now = utcnow()
    return [_view(tx, r, now) for r in tx.session.scalars(q)]


def _view(tx: Tx, row: AlertRow, now: datetime) -> Alert:
    quiet = row.state == "firing" and silences.silenced(
        tx, row.project_id, row.rule_id, row.object_id, row.severity, now
    )
    return to_model(row, quiet)


def _row(tx: Tx, alert_id: str) -> AlertRow:
    row = tx.session.get(AlertRow, alert_id)
    if row is None or row.project_id != tx.project:
        raise NotFound(f"alert {alert_id!r} not found")
    return row


def get(tx: Tx, alert_id: str) -> Alert:
    tx.actor.require(tx.project, Role.VIEWER)
    return _view(tx, _row(tx, alert_id), utcnow())


def acknowledge(tx: Tx, alert_id: str) -> Alert:
    """Someone is on it: recorded (once) with who and when."""
    tx.actor.require(tx.project, Role.EDITOR)
    row = _row(tx, alert_id)
    if row.acknowledged_at is None:
        row.acknowledged_at = utcnow()
        row.acknowledged_by = tx.actor.name
        tx.session.flush()
    return _view(tx, row, utcnow())


def deliver_pending(db: Database, settings: Settings, actor: Any, project: str) -> int:
    """POST undelivered alerts to the webhook (outside any transaction); the number sent."""
    if not settings.alert_webhook:
        return 0
    with db.read(actor, project) as tx:
        pending = [
            to_model(r)
            for r in tx.session.scalars(
                select(AlertRow).where(AlertRow.delivered_at.is_(None)).order_by(AlertRow.id)
            )
        ]
    sent = 0
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        for alert in pending:
            error: str | None = None
            try:
                r = client.post(settings.alert_webhook, json=alert.model_dump(mode="json"))
                if r.status_code >= 300:
                    error = f"the webhook answered {r.status_code}"
            except httpx.HTTPError as exc:
                error = f"the webhook is unreachable: {type(exc).__name__}"
            with db.transaction(actor, project) as tx:
                row = tx.session.get(AlertRow, alert.id)
                if row is not None:
                    if error is None:
                        row.delivered_at = utcnow()
                        row.delivery_error = None
                        sent += 1
                    else:
                        row.delivery_error = error
    return sent
