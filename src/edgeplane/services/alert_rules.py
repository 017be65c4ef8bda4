"""Alert rules of a project, and the defaults every project starts with.

A rule compares a series (``edgeplane.services.series``) with a threshold for each object
its selector picks. The shipped defaults are the thresholds of the operations guide (CPU above
80 %, memory available under 20 %, storage above 85 %, network latency above 200 ms, response
time above 500 ms, error rate above 1 %, throughput under 500 rps where traffic is expected)
and the product's monitoring list (downtime, origin down, DNS resolution, uptime, cache hit
rate, certificate expiry), and the edge's refusals as security alerts (requests blocked in
bulk; client limits refusing in bulk, an L7 attack: docs/security-ddos.md). They
are ``builtin``: they can be changed or disabled, not deleted, and come back (as shipped)
only if missing. The throughput rule ships disabled: only the operator knows which domains
expect traffic (enable it with a selector).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from edgeplane.errors import Conflict, InvalidInput, NotFound
from edgeplane.model.alerting import AlertRule, AlertRuleCreate, AlertRuleUpdate
from edgeplane.model.enums import Role
from edgeplane.services import series
from edgeplane.services.common import validate
from edgeplane.store.db import Tx
from edgeplane.store.monitoring_tables import AlertRuleRow, AlertStateRow, ChannelRow
from edgeplane.store.tables import utcnow

DEFAULT_RULES: tuple[dict[str, Any], ...] = (
    {"id": "cpu-high", "name": "CPU above 80 %", "series": "cpu_percent", "comparison": ">",
     "threshold": 80, "window_s": 300, "for_s": 300, "severity": "warning",
     "description": "Scale up (operations guide: CPU > 80 %)"},
    {"id": "memory-low", "name": "Memory available under 20 %",
     "series": "memory_available_percent", "comparison": "<", "threshold": 20,
     "window_s": 300, "for_s": 300, "severity": "warning", "description": "Investigate"},
    {"id": "storage-high", "name": "Storage above 85 %", "series": "storage_percent",
     "comparison": ">", "threshold": 85, "window_s": 300, "for_s": 300, "severity": "warning",
     "description": "Expand"},
    {"id": "network-latency-high", "name": "Network latency above 200 ms",
     "series": "network_latency_ms", "comparison": ">", "threshold": 200, "window_s": 300,
     "for_s": 300, "severity": "warning", "description": "Optimize"},
    {"id": "response-time-high", "name": "Response time above 500 ms (p95)",
     "series": "response_time_p95_ms", "comparison": ">", "threshold": 500, "window_s": 300,
     "for_s": 300, "severity": "warning", "description": "Performance degradation"},
    {"id": "error-rate-high", "name": "Error rate above 1 %", "series": "error_rate",
     "comparison": ">", "threshold": 1, "window_s": 300, "for_s": 120, "severity": "critical",
     "description": "5xx responses / requests"},
    {"id": "throughput-low", "name": "Throughput under 500 rps", "series": "requests_per_second",
     "comparison": "<", "threshold": 500, "window_s": 300, "for_s": 300, "severity": "warning",
     "enabled": False, "description": "Enable it for the domains where traffic is expected"},
    {"id": "origin-down", "name": "Origin down", "series": "origin_up", "comparison": "<",
     "threshold": 1, "window_s": 60, "for_s": 0, "severity": "critical",
     "description": "No backend of a pool is up for any live edge node: downtime"},
    {"id": "domain-down", "name": "Domain down", "series": "domain_up", "comparison": "<",
     "threshold": 0.5, "window_s": 60, "for_s": 60, "severity": "critical",
     "description": "Most live edge nodes' uptime checks of the domain fail: downtime"},
    {"id": "dns-down", "name": "DNS resolution failing", "series": "dns_up", "comparison": "<",
     "threshold": 0.5, "window_s": 60, "for_s": 60, "severity": "critical",
     "description": "Most live edge nodes' DNS servers do not answer for the domain"},
    {"id": "uptime-low", "name": "Uptime under 99.8 % (24 h)", "series": "uptime_percent",
     "comparison": "<", "threshold": 99.8, "window_s": 86400, "for_s": 0,
     "severity": "critical", "description": "Incident response (operations guide)"},
    {"id": "security-events", "name": "Requests blocked in bulk", "series": "blocked_requests",
     "comparison": ">", "threshold": 1000, "window_s": 300, "for_s": 0, "severity": "warning",
     "description": "Rate or connection limits, slow-client timeouts, size limits or IP "
     "lists refused over 1,000 requests in 5 minutes"},
    {"id": "l7-attack", "name": "Client limits refusing in bulk (L7 DDoS)",
     "series": "client_limits_refused", "comparison": ">", "threshold": 600, "window_s": 60,
     "for_s": 0, "severity": "critical",
     "description": "Over 10 requests a second refused by rate or connection limits, "
     "slow-client timeouts or size limits: an application-layer attack, likely. Consider "
     "edgeplane cdn under-attack on"},
    {"id": "function-error-rate-high", "name": "Edge function error rate above 5 %",
     "series": "function_error_rate", "comparison": ">", "threshold": 5, "window_s": 300,
     "for_s": 120, "severity": "warning",
     "description": "A function's invocations fail: exceptions, time or memory limits, or the "
     "runtime unavailable (edgeplane function logs NAME)"},
    {"id": "hit-ratio-low", "name": "Cache hit ratio under 50 %", "series": "hit_ratio",
     "comparison": "<", "threshold": 50, "window_s": 3600, "for_s": 3600, "severity": "info",
     "description": "Cache rules or purges keep traffic going to the origin"},
    {"id": "certificate-expiring", "name": "Certificate expires within 30 days",
     "series": "certificate_days_left", "comparison": "<", "threshold": 30, "window_s": 60,
     "for_s": 0, "severity": "info", "description": "Renewal did not happen in time"},
    {"id": "certificate-expiring-soon", "name": "Certificate expires within 7 days",
     "series": "certificate_days_left", "comparison": "<", "threshold": 7, "window_s": 60,
     "for_s": 0, "severity": "warning", "description": "Renew or replace it soon"},
    {"id": "certificate-expires-tomorrow", "name": "Certificate expires within a day",
     "series": "certificate_days_left", "comparison": "<", "threshold": 1, "window_s": 60,
     "for_s": 0, "severity": "critical", "description": "Renew or replace it now"},
    {"id": "config-drift", "name": "Configuration drifted from the applied file",
     "series": "config_drift_objects", "comparison": ">", "threshold": 0, "window_s": 60,
     "for_s": 0, "severity": "warning",
     "description": "Objects changed by the API, CLI or dashboard since the last apply "
     "(edgeplane drift names them and who changed them)"},
    {"id": "backup-verification-failed", "name": "A backup failed its verification",
     "series": "backup_verification_failed", "comparison": ">", "threshold": 0, "window_s": 60,
     "for_s": 0, "severity": "critical",
     "description": "A backup could not be restored and checked (edgeplane backup list says "
     "why): it would not restore either"},
    {"id": "backup-stale", "name": "No good backup for over 26 hours",
     "series": "backup_age_hours", "comparison": ">", "threshold": 26, "window_s": 60,
     "for_s": 0, "severity": "warning",
     "description": "The daily backup did not happen or failed its verification"},
    {"id": "dr-failover", "name": "Traffic failed over to the backup data center",
     "series": "dr_failed_over", "comparison": ">", "threshold": 0, "window_s": 60,
     "for_s": 0, "severity": "critical",
     "description": "A DR config's primary failed: its traffic is on the backup data center, "
     "or waits for edgeplane dr failover (edgeplane dr status)"},
    {"id": "dr-drill-failed", "name": "A DR drill missed its targets",
     "series": "dr_drill_failed", "comparison": ">", "threshold": 0, "window_s": 60,
     "for_s": 0, "severity": "warning",
     "description": "The newest drill measured an RTO or RPO above the config's target, or "
     "could not finish (edgeplane dr drills)"},
    {"id": "security-score-drop", "name": "Security score dropped",
     "series": "security_score_drop", "comparison": ">=", "threshold": 5, "window_s": 60,
     "for_s": 0, "severity": "warning",
     "description": "A domain lost 5 points or more against its best score of the last 7 days "
     "(HSTS removed, an old TLS version offered...: edgeplane security score DOMAIN)"},
    {"id": "compliance-failed", "name": "A compliance requirement fails",
     "series": "compliance_failed", "comparison": ">", "threshold": 0, "window_s": 60,
     "for_s": 0, "severity": "warning",
     "description": "A domain fails a requirement of the project's compliance policy "
     "(edgeplane security compliance report)"},
    {"id": "node-exposed-port", "name": "An edge node exposes an unexpected port",
     "series": "exposed_ports", "comparison": ">", "threshold": 0, "window_s": 60,
     "for_s": 0, "severity": "critical",
     "description": "The surface scan found a port answering on an edge node's address that "
     "it should not expose (edgeplane security scan)"},
)  # fmt: skip


def ensure_defaults(tx: Tx, project: str) -> int:
    """Add the shipped rules a project lacks (by id); the number added."""
    have = set(
        tx.session.scalars(select(AlertRuleRow.id).where(AlertRuleRow.project_id == project))
    )
    added = 0
    for spec in DEFAULT_RULES:
        if spec["id"] in have:
            continue
        rule = AlertRuleCreate.model_validate(spec)
        tx.session.add(_new_row(project, rule, builtin=True))
        added += 1
    if added:
        tx.session.flush()
    return added


def _new_row(project: str, spec: AlertRuleCreate, *, builtin: bool = False) -> AlertRuleRow:
    now = utcnow()
    return AlertRuleRow(
        project_id=project,
        id=spec.id,
        name=spec.name,
        series=spec.series,
        selector=dict(spec.selector),
        comparison=spec.comparison,
        threshold=spec.threshold,
        window_s=spec.window_s,
        for_s=spec.for_s,
        severity=spec.severity,
        enabled=spec.enabled,
        channels=list(spec.channels),
        description=spec.description,
        builtin=builtin,
        created_at=now,
        updated_at=now,
    )


def to_model(row: AlertRuleRow, counts: dict[str, int] | None = None) -> AlertRule:
    counts = counts or {}
    return AlertRule(
        id=row.id,
        project=row.project_id,
        name=row.name,
        series=row.series,
        selector=dict(row.selector or {}),
        comparison=row.comparison,
        threshold=row.threshold,
        window_s=row.window_s,
        for_s=row.for_s,
        severity=row.severity,
        enabled=row.enabled,
        channels=list(row.channels or []),
        description=row.description,
        builtin=row.builtin,
        firing=counts.get("firing", 0),
        pending=counts.get("pending", 0),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _check(tx: Tx, name: str, selector: dict[str, str], channels: list[str]) -> None:
    info = series.info(name, "series")
    series.check_selector(info, selector, "selector")
    for i, channel in enumerate(channels):
        if tx.session.get(ChannelRow, (tx.project, channel)) is None:
            raise InvalidInput.at(f"channels.{i}", f"no notification channel {channel!r}")


def _counts(tx: Tx, rule_id: str) -> dict[str, int]:
    rows = tx.session.execute(
        select(AlertStateRow.state, func.count())
        .where(AlertStateRow.project_id == tx.project, AlertStateRow.rule_id == rule_id)
        .group_by(AlertStateRow.state)
    )
    return {state: n for state, n in rows}


def _row(tx: Tx, rule_id: str) -> AlertRuleRow:
    row = tx.session.get(AlertRuleRow, (tx.project, rule_id))
    if row is None:
        raise NotFound(f"alert rule {rule_id!r} not found")
    return row


def create(tx: Tx, data: AlertRuleCreate | dict[str, Any]) -> AlertRule:
    tx.actor.require(tx.project, Role.EDITOR)
    spec = validate(AlertRuleCreate, data) if isinstance(data, dict) else data
    _check(tx, spec.series, spec.selector, spec.channels)
    ensure_defaults(tx, tx.project)
    if tx.session.get(AlertRuleRow, (tx.project, spec.id)) is not None:
        raise Conflict(f"alert rule {spec.id!r} exists")
    row = _new_row(tx.project, spec)
    tx.session.add(row)
    tx.session.flush()
    view = to_model(row)
    tx.record("create", "alert_rule", row.id, None, view.model_dump(mode="json"))
    return view


def update(tx: Tx, rule_id: str, data: AlertRuleUpdate | dict[str, Any]) -> AlertRule:
    tx.actor.require(tx.project, Role.EDITOR)
    spec = validate(AlertRuleUpdate, data) if isinstance(data, dict) else data
    ensure_defaults(tx, tx.project)
    row = _row(tx, rule_id)
    before = to_model(row).model_dump(mode="json")
    # null leaves a field as it is (a rule has no field that can be empty)
    changes = {k: v for k, v in spec.model_dump(exclude_unset=True).items() if v is not None}
    _check(
        tx,
        changes.get("series", row.series),
        changes.get("selector", row.selector or {}),
        changes.get("channels", row.channels or []),
    )
    for name, value in changes.items():
        setattr(row, name, value)
    row.updated_at = utcnow()
    tx.session.flush()
    view = to_model(row, _counts(tx, rule_id))
    tx.record("update", "alert_rule", row.id, before, view.model_dump(mode="json"))
    return view


def delete(tx: Tx, rule_id: str) -> None:
    """Delete a rule; its open alerts resolve at the next evaluation."""
    tx.actor.require(tx.project, Role.EDITOR)
    ensure_defaults(tx, tx.project)
    row = _row(tx, rule_id)
    if row.builtin:
        raise Conflict(
            f"alert rule {rule_id!r} ships with the platform: disable it instead "
            '(PATCH {"enabled": false})'
        )
    before = to_model(row).model_dump(mode="json")
    tx.session.delete(row)
    tx.session.flush()
    tx.record("delete", "alert_rule", rule_id, before, None)


def get(tx: Tx, rule_id: str) -> AlertRule:
    tx.actor.require(tx.project, Role.VIEWER)
    row = tx.session.get(AlertRuleRow, (tx.project, rule_id))
    shipped = next((spec for spec in DEFAULT_RULES if spec["id"] == rule_id), None)
    if row is None and shipped is not None:  # not stored yet: shown as it will be
        row = _new_row(tx.project, AlertRuleCreate.model_validate(shipped), builtin=True)
    if row is None:
        raise NotFound(f"alert rule {rule_id!r} not found")
    return to_model(row, _counts(tx, rule_id))


def list_rules(tx: Tx) -> list[AlertRule]:
    """The project's rules (the shipped defaults included, even before their first
    evaluation)."""
    tx.actor.require(tx.project, Role.VIEWER)
    rows = {
        r.id: r
        for r in tx.session.scalars(
            select(AlertRuleRow).where(AlertRuleRow.project_id == tx.project)
        )
    }
    for spec in DEFAULT_RULES:
        if spec["id"] not in rows:  # not stored yet: shown as they will be
            rows[spec["id"]] = _new_row(
                tx.project, AlertRuleCreate.model_validate(spec), builtin=True
            )
    counts: dict[str, dict[str, int]] = {}
    for rule_id, state, n in tx.session.execute(
        select(AlertStateRow.rule_id, AlertStateRow.state, func.count())
        .where(AlertStateRow.project_id == tx.project)
        .group_by(AlertStateRow.rule_id, AlertStateRow.state)
    ):
        counts.setdefault(rule_id, {})[state] = n
    return [to_model(rows[k], counts.get(k)) for k in sorted(rows)]
