"""Notifications: the outbox of alert messages and its delivery, with retries and a log.

When an alert fires (or resolves, or an event is raised) a row per (alert, channel, event) is
queued for each enabled channel of its project (the rule's channels when it names some): at
most one ``firing`` and one ``resolved`` message per incident and channel, whatever the number
of evaluations. An alert a silence matches is queued as ``silenced``: logged, never sent.

``deliver_due`` sends what is due, outside any transaction, and records each attempt in the
row's log; a failed attempt is retried with backoff (``edgeplane.notify.retry``: 5 s, 15 s,
45 s, 135 s, 405 s), then marked ``failed``. Errors never hold a secret (the senders say what
failed, not with what). ``send_test`` sends a test message through one channel at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from threading import Event
from typing import Any

from sqlalchemy import select

from edgeplane.errors import NotFound
from edgeplane.model.alerting import ChannelTest, DeliveryAttempt, NotificationView
from edgeplane.model.enums import Role
from edgeplane.notify.message import Notification
from edgeplane.notify.retry import retry_delay
from edgeplane.notify.send import Delivery, send
from edgeplane.services import channels, silences
from edgeplane.store.actor import LOCAL, PLATFORM_PROJECT, Actor
from edgeplane.store.db import Database, Tx
from edgeplane.store.monitoring_tables import ChannelRow, NotificationRow
from edgeplane.store.tables import AlertRow, utcnow

log = logging.getLogger("edgeplane.notifications")

BATCH = 50  # deliveries per pass


def payload(alert: AlertRow, rule_name: str, event: str) -> dict[str, Any]:
    """The message's fields (``Notification``), as JSON, fixed when queued."""
    return {
        "event": event,
        "alert_id": alert.id,
        "project": alert.project_id,
        "rule": rule_name,
        "severity": alert.severity,
        "object_id": alert.object_id,
        "summary": alert.message,
        "started_at": (alert.started_at or alert.created_at).isoformat(),
        "value": alert.value,
        "threshold": alert.threshold,
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        "details": dict(alert.details or {}),
    }


def _notification(data: dict[str, Any]) -> Notification:
    return Notification(
        event=data["event"],
        alert_id=data["alert_id"],
        project=data["project"],
        rule=data["rule"],
        severity=data["severity"],
        object_id=data["object_id"],
        summary=data["summary"],
        started_at=datetime.fromisoformat(data["started_at"]),
        value=data.get("value"),
        threshold=data.get("threshold"),
        resolved_at=datetime.fromisoformat(data["resolved_at"])
        if data.get("resolved_at")
        else None,
        details=dict(data.get("details") or {}),
    )


def enqueue(
    tx: Tx,
    alert: AlertRow,
    event: str,
    *,
    rule_name: str,
    channel_ids: Iterable[str] = (),
    now: datetime | None = None,
) -> int:
    """Queue ``event`` of ``alert`` for its project's channels (only ``channel_ids`` when
    given); the number queued. Silenced alerts are queued as ``silenced``."""
    now = now or utcnow()
    wanted = set(channel_ids)
    rows = tx.session.scalars(
        select(ChannelRow).where(ChannelRow.project_id == alert.project_id, ChannelRow.enabled)
    )
    targets = [r.id for r in rows if not wanted or r.id in wanted]
    if not targets:
        return 0
    quiet = silences.silenced(
        tx, alert.project_id, alert.rule_id, alert.object_id, alert.severity, now
    )
    body = payload(alert, rule_name, event)
    queued = 0
    for channel_id in targets:
        exists = tx.session.scalar(
            select(NotificationRow.id).where(
                NotificationRow.alert_id == alert.id,
                NotificationRow.channel_id == channel_id,
                NotificationRow.event == event,
            )
        )
        if exists is not None:
            continue
        tx.session.add(
            NotificationRow(
                project_id=alert.project_id,
                alert_id=alert.id,
                channel_id=channel_id,
                event=event,
                status="silenced" if quiet else "pending",
                next_attempt_at=None if quiet else now,
                payload=body,
                created_at=now,
            )
        )
        queued += 1
    tx.session.flush()
    return queued


def _attempt(delivery: Delivery, now: datetime) -> dict[str, Any]:
    return {
        "at": now.isoformat(),
        "ok": delivery.ok,
        "error": delivery.error,
        "status": delivery.status,
        "ms": round(delivery.ms, 1),
    }


def deliver_due(db: Database, stopping: Event | None = None, now: datetime | None = None) -> int:
    """Send the queued messages that are due; the number delivered."""
    now = now or utcnow()
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        due = [
            (r.id, r.project_id, r.channel_id, dict(r.payload))
            for r in tx.session.scalars(
                select(NotificationRow)
                .where(NotificationRow.status == "pending", NotificationRow.next_attempt_at <= now)
                .order_by(NotificationRow.next_attempt_at, NotificationRow.id)
                .limit(BATCH)
            )
        ]
        configs = {}
        for _id, project, channel_id, _body in due:
            channel = tx.session.get(ChannelRow, (project, channel_id))
            if channel is not None and (project, channel_id) not in configs:
                configs[(project, channel_id)] = channels.config_of(tx, channel)
    delivered = 0
    for note_id, project, channel_id, body in due:
        if stopping is not None and stopping.is_set():
            break
        config = configs.get((project, channel_id))
        if config is None:
            result = Delivery(ok=False, error="the channel was deleted", status=None, ms=0.0)
        else:
            result = send(config, _notification(body))
        at = utcnow()
        with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
            row = tx.session.get(NotificationRow, note_id)
            if row is None:
                continue
            row.attempts += 1
            row.log = [*(row.log or []), _attempt(result, at)]
            if result.ok:
                row.status, row.delivered_at, row.next_attempt_at = "delivered", at, None
                row.last_error = result.error  # e.g. some recipients refused
                delivered += 1
                continue
            row.last_error = result.error
            delay = None if config is None else retry_delay(row.attempts)
            if delay is None:
                row.status, row.next_attempt_at = "failed", None
                log.warning("notification %d to %s gave up: %s", note_id, channel_id, result.error)
            else:
                row.next_attempt_at = at + timedelta(seconds=delay)
    return delivered


def to_view(row: NotificationRow) -> NotificationView:
    return NotificationView(
        id=row.id,
        alert_id=row.alert_id,
        channel=row.channel_id,
        event=row.event,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        delivered_at=row.delivered_at,
        last_error=row.last_error,
        log=[DeliveryAttempt.model_validate(a) for a in row.log or []],
        created_at=row.created_at,
    )


def of_alert(tx: Tx, alert_id: str) -> list[NotificationView]:
    tx.actor.require(tx.project, Role.VIEWER)
    alert = tx.session.get(AlertRow, alert_id)
    if alert is None or alert.project_id != tx.project:
        raise NotFound(f"alert {alert_id!r} not found")
    rows = tx.session.scalars(
        select(NotificationRow)
        .where(NotificationRow.alert_id == alert_id)
        .order_by(NotificationRow.id)
    )
    return [to_view(r) for r in rows]


def send_test(db: Database, actor: Actor, project: str, channel_id: str) -> ChannelTest:
    """Send a test message through a channel now (outside the transaction that read it)."""
    with db.read(actor, project) as tx:
        tx.actor.require(project, Role.EDITOR)
        row = tx.session.get(ChannelRow, (project, channel_id))
        if row is None:
            raise NotFound(f"notification channel {channel_id!r} not found")
        config = channels.config_of(tx, row)
    now = utcnow()
    result = send(
        config,
        Notification(
            event="test",
            alert_id=f"test-{channel_id}-{int(now.timestamp())}",
            project=project,
            rule="test",
            severity="info",
            object_id=channel_id,
            summary=f"A test of the notification channel {channel_id}",
            started_at=now,
        ),
    )
    return ChannelTest(
        ok=result.ok, error=result.error, status=result.status, ms=round(result.ms, 1)
    )
