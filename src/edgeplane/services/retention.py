"""Rollups and retention of what is measured: minute traffic becomes hourly, old rows go.

- **Hourly rollups**: once an hour is final (``FINAL_AFTER`` past its end: an agent resends a
  minute for up to 15 minutes), its minute rows are summed per (node, domain) into
  ``edge_analytics_hourly``; ``rolled_until`` is the end of the newest hour rolled up (hours
  without traffic after it are looked at again at each pass: a cheap empty range). Queries
  read hours before it from the rollups and the rest from the minutes.
- The edge functions' invocations (``function_minutes``) are rolled up the same way into
  ``function_hours`` (``services.function_obs``), with their own ``rolled_until``, and kept as
  long as the traffic.
- **Retention** (``Settings``): minute traffic ``metrics_minute_retention_s`` (7 days; only
  what was rolled up), hourly traffic and uptime ``metrics_hour_retention_s`` (90 days),
  server metrics ``server_metrics_retention_s`` (30 days), the audit trail
  ``audit_retention_s`` (a year), WAF matches ``waf_match_retention_s`` (30 days),
  resolved alerts and their notifications
  ``alert_retention_s`` (a year). Deletes run in batches of ``BATCH`` rows, so a first pass on
  a large backlog never holds the database for long.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from threading import Event
from typing import Any

from sqlalchemy import delete, func, select, tuple_

from edgeplane.settings import Settings
from edgeplane.store.actor import LOCAL, PLATFORM_PROJECT
from edgeplane.store.db import Database, Tx
from edgeplane.store.function_obs_tables import FunctionHourRow, FunctionMinuteRow
from edgeplane.store.monitoring_tables import (
    EdgeAnalyticsHourRow,
    NotificationRow,
    UptimeHourRow,
)
from edgeplane.store.tables import AlertRow, AuditRow, EdgeAnalyticsRow, MetricRow, utcnow
from edgeplane.store.waf_tables import WafMatchRow

log = logging.getLogger("edgeplane.retention")

HOUR = timedelta(hours=1)
FINAL_AFTER = timedelta(minutes=20)
BATCH = 5000
ROLLUP_HOURS_PER_PASS = 24  # a backlog is caught up over several passes

_SUMMED = ("requests", "hits", "misses", "bytes_out", "static", "static_bytes")
_COUNTED = ("statuses", "cache", "countries", "blocked", "backends", "bots")
_HISTOGRAMS = ("upstream_ms", "request_ms")


def rolled_until(tx: Tx) -> datetime | None:
    """The end of the newest hour rolled up (None: none yet)."""
    newest = tx.session.scalar(select(func.max(EdgeAnalyticsHourRow.hour)))
    return None if newest is None else newest + HOUR


def _floor_hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def _merge(into: dict[str, Any], row: EdgeAnalyticsRow) -> None:
    for name in _SUMMED:
        into[name] = into.get(name, 0) + (getattr(row, name) or 0)
    for name in _COUNTED:
        counts = into.setdefault(name, {})
        for key, n in (getattr(row, name) or {}).items():
            if isinstance(n, int):
                counts[key] = counts.get(key, 0) + n
    for name in _HISTOGRAMS:
        hist = into.setdefault(name, [])
        for i, n in enumerate(getattr(row, name) or []):
            if i >= len(hist):
                hist.append(0)
            if isinstance(n, int):
                hist[i] += n


def roll_up(db: Database, now: datetime | None = None, stopping: Event | None = None) -> int:
    """Roll up the hours that are final and not rolled up yet; the number of hours that had
    traffic."""
    return roll_hours(db, EdgeAnalyticsRow.minute, rolled_until, _roll_hour, now, stopping)


def roll_hours(
    db: Database,
    minute: Any,
    until: Callable[[Tx], datetime | None],
    roll: Callable[[Tx, datetime], bool],
    now: datetime | None = None,
    stopping: Event | None = None,
) -> int:
    """Roll up hour by hour, one transaction each, from where ``until`` says the rollups end
    (none yet: the hour of the oldest ``minute``) to the newest hour that is final
    (``ROLLUP_HOURS_PER_PASS`` at most); the number of hours ``roll`` found rows in."""
    last_final = _floor_hour((now or utcnow()) - FINAL_AFTER) - HOUR  # the newest final hour
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        start = until(tx)
        if start is None:
            oldest = tx.session.scalar(select(func.min(minute)))
            if oldest is None:
                return 0
            start = _floor_hour(oldest)
    rolled = 0
    hour = start
    for _ in range(ROLLUP_HOURS_PER_PASS):
        if hour > last_final or (stopping is not None and stopping.is_set()):
            break
        with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
            rolled += roll(tx, hour)
        hour += HOUR
    return rolled


def _roll_hour(tx: Tx, hour: datetime) -> bool:
    sums: dict[tuple[str, str], dict[str, Any]] = defaultdict(dict)
    rows = tx.session.scalars(
        select(EdgeAnalyticsRow).where(
            EdgeAnalyticsRow.minute >= hour, EdgeAnalyticsRow.minute < hour + HOUR
        )
    )
    for row in rows:
        into = sums[(row.node_id, row.domain)]
        into["project_id"] = row.project_id
        _merge(into, row)
    tx.session.execute(delete(EdgeAnalyticsHourRow).where(EdgeAnalyticsHourRow.hour == hour))
    for (node_id, domain), fields in sums.items():
        tx.session.add(EdgeAnalyticsHourRow(node_id=node_id, domain=domain, hour=hour, **fields))
    tx.session.flush()
    return bool(sums)


def _prune(db: Database, table: Any, column: Any, before: datetime, *extra: Any) -> int:
    """Delete rows with ``column < before`` (and ``extra`` conditions), in batches."""
    removed = 0
    pk = tuple_(*table.__mapper__.primary_key)
    while True:
        batch = select(*table.__mapper__.primary_key).where(column < before, *extra).limit(BATCH)
        with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
            result: Any = tx.session.execute(delete(table).where(pk.in_(batch)))
            done = int(result.rowcount or 0)
        removed += done
        if done < BATCH:
            return removed


def prune(db: Database, settings: Settings, now: datetime | None = None) -> dict[str, int]:
    """Delete what is past its retention; the rows removed per table."""
    now = now or utcnow()

    def ago(seconds: float) -> datetime:
        return now - timedelta(seconds=seconds)

    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        rolled = rolled_until(tx)
    minute_limit = ago(settings.metrics_minute_retention_s)
    if rolled is not None:
        minute_limit = min(minute_limit, rolled)  # never a minute not rolled up
    else:
        minute_limit = ago(settings.metrics_hour_retention_s)
    out = {
        "edge_analytics": _prune(db, EdgeAnalyticsRow, EdgeAnalyticsRow.minute, minute_limit),
        "edge_analytics_hourly": _prune(
            db,
            EdgeAnalyticsHourRow,
            EdgeAnalyticsHourRow.hour,
            min(ago(settings.metrics_hour_retention_s), (rolled or now) - HOUR),
        ),
        "uptime_hourly": _prune(
            db, UptimeHourRow, UptimeHourRow.hour, ago(settings.metrics_hour_retention_s)
        ),
        "server_metrics": _prune(
            db, MetricRow, MetricRow.at, ago(settings.server_metrics_retention_s)
        ),
        "audit_events": _prune(db, AuditRow, AuditRow.at, ago(settings.audit_retention_s)),
        "waf_matches": _prune(
            db, WafMatchRow, WafMatchRow.at, ago(settings.waf_match_retention_s)
        ),
        "notifications": _prune(
            db,
            NotificationRow,
            NotificationRow.created_at,
            ago(settings.alert_retention_s),
            NotificationRow.status != "pending",
        ),
        "alerts": _prune(
            db,
            AlertRow,
            AlertRow.created_at,
            ago(settings.alert_retention_s),
            AlertRow.state == "resolved",
        ),
    }
    removed = {k: v for k, v in out.items() if v}
    if removed:
        log.info("retention removed %s", removed)
    return out


def prune_functions(db: Database, settings: Settings, now: datetime | None = None
                    ) -> dict[str, int]:  # fmt: skip
    """Edge functions' invocations past their retention, as the traffic's (minutes only once
    rolled up); the rows removed per table."""
    from edgeplane.services import function_obs

    now = now or utcnow()
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        rolled = function_obs.rolled_until(tx)
    minute_limit = now - timedelta(seconds=settings.metrics_minute_retention_s)
    if rolled is not None:
        minute_limit = min(minute_limit, rolled)
    else:
        minute_limit = now - timedelta(seconds=settings.metrics_hour_retention_s)
    hour_limit = min(now - timedelta(seconds=settings.metrics_hour_retention_s),
                     (rolled or now) - HOUR)  # fmt: skip
    out = {
        "function_minutes": _prune(db, FunctionMinuteRow, FunctionMinuteRow.minute, minute_limit),
        "function_hours": _prune(db, FunctionHourRow, FunctionHourRow.hour, hour_limit),
    }
    removed = {k: v for k, v in out.items() if v}
    if removed:
        log.info("retention removed %s", removed)
    return out


def roll_up_functions(db: Database, now: datetime | None = None,
                      stopping: Event | None = None) -> int:  # fmt: skip
    """The edge functions' final hours rolled up (``function_hours``)."""
    from edgeplane.services import function_obs

    until, roll = function_obs.rolled_until, function_obs.roll_hour
    return roll_hours(db, FunctionMinuteRow.minute, until, roll, now, stopping)


def run_once(db: Database, settings: Settings, stopping: Event | None = None) -> int:
    hours = roll_up(db, stopping=stopping)
    hours += roll_up_functions(db, stopping=stopping)
    if stopping is None or not stopping.is_set():
        prune(db, settings)
        prune_functions(db, settings)
    return hours
