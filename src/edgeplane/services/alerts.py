"""Alerts: raised once per (kind, object, key), kept, and sent to the configured webhook.

Certificates raise ``certificate_expiry`` alerts 30, 7 and 1 days before the certificate the
edge serves expires, and ``certificate_renewal_failed`` when a renewal attempt fails. The
monitoring work will add kinds; the record and the delivery stay the same.
"""

from __future__ import annotations

import logging
import secrets as pysecrets
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import select

from edgeplane.model.common import Output
from edgeplane.model.enums import Role
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


def to_model(row: AlertRow) -> Alert:
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
    row = AlertRow(
        id=f"alert-{pysecrets.token_hex(6)}",
        project_id=project,
        kind=kind,
        object_id=object_id,
        key=key,
        severity=severity,
        message=message,
        details=details or {},
        created_at=utcnow(),
    )
    tx.session.add(row)
    tx.session.flush()
    log.warning("alert %s (%s): %s", kind, severity, message)
    return row.id


def list_alerts(tx: Tx, *, kind: str | None = None, limit: int = 100) -> list[Alert]:
    tx.actor.require(tx.project, Role.VIEWER)
    q = select(AlertRow).where(AlertRow.project_id == tx.project)
    if kind:
        q = q.where(AlertRow.kind == kind)
    q = q.order_by(AlertRow.created_at.desc(), AlertRow.id).limit(limit)
    return [to_model(r) for r in tx.session.scalars(q)]


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
