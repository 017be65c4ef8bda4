"""Uptime: what the edge nodes' checks of the served domains report, stored for the series.

A node reports each probe's state when it changes (``uptime_state``: a row per node, probe
kind and domain) and its checks per domain and hour (``uptime_hourly``, replaced as the hour
fills). From them (``edgeplane.services.series``): ``uptime_percent`` (checks that passed, over
a window, per domain, region or node), ``domain_up`` and ``dns_up`` (the share of live nodes
whose latest HTTP(S) / DNS probe of a domain passed) and ``tls_days_left``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from edgeplane.errors import InvalidInput
from edgeplane.protocol.messages import UptimeReport
from edgeplane.services.edge_nodes import touch
from edgeplane.store.db import Tx
from edgeplane.store.monitoring_tables import UptimeHourRow, UptimeStateRow

HOUR_KIND = "domain"  # uptime_hourly's kind: a check of a domain (its probes together)


def _hour(value: datetime) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def store(tx: Tx, node_id: str, body: UptimeReport) -> int:
    """Store a node's report; the rows written."""
    node = touch(tx, node_id)
    for i, h in enumerate(body.hours):
        if h.failures > h.checks:
            raise InvalidInput.at(f"hours.{i}.failures", "must not exceed checks")
    written = 0
    for s in body.states:
        row = tx.session.get(UptimeStateRow, (node.id, s.kind, s.target))
        if row is None:
            row = UptimeStateRow(node_id=node.id, kind=s.kind, target=s.target)
            tx.session.add(row)
        row.project_id = s.site
        row.up = s.up
        row.since = s.since
        row.checked_at = s.checked_at
        row.error = s.error
        row.latency_ms = s.latency_ms
        row.expires_at = s.expires_at
        written += 1
    for h in body.hours:
        hour = _hour(h.hour)
        totals = tx.session.get(UptimeHourRow, (node.id, HOUR_KIND, h.target, hour))
        if totals is None:
            totals = UptimeHourRow(node_id=node.id, kind=HOUR_KIND, target=h.target, hour=hour)
            tx.session.add(totals)
        totals.project_id = h.site
        totals.checks = h.checks
        totals.failures = h.failures
        totals.latency_ms_sum = h.latency_ms_sum
        written += 1
    tx.session.flush()
    return written
