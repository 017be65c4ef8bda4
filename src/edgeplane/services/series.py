"""Series: what the platform measures, by name, over time, per object.

A series is a number per object (a domain, a region, an edge node, a server, a pool, a
certificate) read from what the nodes and servers report:

- **traffic** (the edge nodes' per-minute analytics, ``edge_analytics``; the hourly rollups,
  ``edge_analytics_hourly`` (``services.retention``), for hour steps and older ranges):
  ``requests``, ``requests_per_second``, ``bandwidth_bytes``, ``hit_ratio`` and
  ``error_rate`` (percent), ``errors_5xx``, ``errors_4xx``, ``response_time_p50_ms`` /
  ``_p95_ms`` / ``_p99_ms`` (whole request) and ``upstream_time_p95_ms``; per domain
  (default), region, node or project; ``backend_requests``, the requests each backend of the
  project's load balancer answered (as the edge logged them), per backend;
- **edge functions** (the edge nodes' invocations per minute, ``function_minutes``, and the
  hourly rollups, ``function_hours``; ``services.function_obs``): ``function_invocations``,
  ``function_errors`` (an exception, a time or memory limit, the runtime unavailable),
  ``function_error_rate`` (percent), ``function_duration_p50_ms`` / ``_p95_ms`` / ``_p99_ms``
  (whole request); per function (default), region, node or project;
- **servers** (``server_metrics``, the mean over the window): ``cpu_percent``,
  ``memory_percent``, ``memory_available_percent``, ``storage_percent``,
  ``network_latency_ms``; per server;
- **health, now**: ``origin_up`` (1 when at least one backend of a pool is up for a live edge
  node, else 0; pools whose backends are all unknown have no value), per pool;
  ``certificate_days_left`` (of the newest active certificate), per domain.

``current`` gives each object's value over the last ``window_s`` (what alert rules compare);
``query`` gives points over a time range at a step (what the API, CLI and dashboard draw). An
object with nothing measured in a window has no value there (not 0): a quiet domain neither
breaches "error rate > 1 %" nor "throughput < 500 rps"; ``requests`` and ``bandwidth_bytes``
are 0 for the domains with rows but no requests.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select

from edgeplane.certificates import versions
from edgeplane.errors import InvalidInput
from edgeplane.model.alerting import SERIES_NAMES
from edgeplane.protocol.messages import UPSTREAM_MS_BUCKETS
from edgeplane.services import function_obs, liveness, retention
from edgeplane.services.analytics import add_counts, add_histogram, percentile
from edgeplane.services.function_obs import FunctionSum
from edgeplane.store.actor import PLATFORM_PROJECT
from edgeplane.store.backup_tables import BackupRow
from edgeplane.store.db import Tx
from edgeplane.store.dr_tables import DRDrillRow, DRStateRow
from edgeplane.store.iac_tables import IacDriftRow
from edgeplane.store.monitoring_tables import EdgeAnalyticsHourRow, UptimeHourRow, UptimeStateRow
from edgeplane.store.tables import (
    BackendHealthRow,
    DRConfigRow,
    EdgeAnalyticsRow,
    EdgeNodeRow,
    MetricRow,
    ServerRow,
    utcnow,
)

Source = Literal[
    "traffic",
    "backend",
    "server",
    "health",
    "certificate",
    "uptime",
    "probe",
    "drift",
    "backup",
    "dr",
    "security",
    "compliance",
    "surface",
    "function",
]
GROUPS: dict[Source, tuple[str, ...]] = {
    "traffic": ("domain", "region", "node", "project"),
    "backend": ("backend",),
    "uptime": ("domain", "region", "node", "project"),
    "probe": ("domain",),
    "server": ("server", "location", "project"),
    "health": ("pool",),
    "certificate": ("domain",),
    "drift": ("project",),
    "backup": ("backups",),
    "dr": ("dr_config",),
    "security": ("domain",),
    "compliance": ("requirement",),
    "surface": ("node",),
    "function": ("function", "region", "node", "project"),
}
SELECTORS: dict[Source, tuple[str, ...]] = {
    "traffic": ("domain", "node", "region"),
    "backend": ("domain", "node", "region"),
    "uptime": ("domain", "node", "region"),
    "probe": ("domain",),
    "server": ("location", "server"),
    "health": ("pool",),
    "certificate": ("domain",),
    "drift": (),
    "backup": (),
    "dr": ("dr_config",),
    "security": ("domain",),
    "compliance": ("domain", "requirement"),
    "surface": ("node",),
    "function": ("function", "node", "region"),
}
MINUTE_RETENTION = timedelta(days=7)  # minute rows older than this: the hourly rollups
MAX_POINTS = 2000
_BUCKETS = len(UPSTREAM_MS_BUCKETS) + 1


@dataclass(frozen=True)
class SeriesInfo:
    name: str
    source: Source
    unit: str
    description: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "description": self.description,
            "objects": list(GROUPS[self.source]),
            "selectors": list(SELECTORS[self.source]),
        }


# Traffic ------------------------------------------------------------------------------------


@dataclass
class TrafficSum:
    requests: int = 0
    hits: int = 0
    misses: int = 0
    bytes_out: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    blocked: dict[str, int] = field(default_factory=dict)
    request_ms: list[int] = field(default_factory=lambda: [0] * _BUCKETS)
    upstream_ms: list[int] = field(default_factory=lambda: [0] * _BUCKETS)

    def add(self, row: Any) -> None:
        self.requests += row.requests
        self.hits += row.hits
        self.misses += row.misses
        self.bytes_out += row.bytes_out
        add_counts(self.statuses, row.statuses)
        add_counts(self.blocked, row.blocked)
        add_histogram(self.request_ms, row.request_ms)
        add_histogram(self.upstream_ms, row.upstream_ms)


def _ratio(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 4) if whole else None


TRAFFIC: dict[str, tuple[str, str, Callable[[TrafficSum, float], float | None]]] = {
    "requests": ("requests", "Requests served", lambda t, _s: t.requests),
    "requests_per_second": (
        "requests/s",
        "Requests served per second over the window",
        lambda t, s: round(t.requests / s, 4) if s > 0 else None,
    ),
    "bandwidth_bytes": ("bytes", "Bytes sent to clients", lambda t, _s: t.bytes_out),
    "hit_ratio": (
        "percent",
        "Cache hits / (hits + misses): responses served at the edge",
        lambda t, _s: _ratio(t.hits, t.hits + t.misses),
    ),
    "error_rate": (
        "percent",
        "5xx responses / requests",
        lambda t, _s: _ratio(t.statuses.get("5xx", 0), t.requests),
    ),
    "errors_5xx": ("requests", "5xx responses", lambda t, _s: t.statuses.get("5xx", 0)),
    "errors_4xx": ("requests", "4xx responses", lambda t, _s: t.statuses.get("4xx", 0)),
    "blocked_requests": (
        "requests",
        "Requests the edge refused itself: rate limits (429), IP lists (403), connection "
        "limits (503), slow clients (408), headers and bodies too large (431, 413)",
        lambda t, _s: sum(t.blocked.values()),
    ),
    "client_limits_refused": (
        "requests",
        "Requests refused by a client limit (L7 DDoS protection): rate and connection limits, "
        "slow clients, headers and bodies too large",
        lambda t, _s: sum(n for reason, n in t.blocked.items() if reason != "denied"),
    ),
    "connection_limited": (
        "requests",
        "Requests refused by a per-client connection limit (503)",
        lambda t, _s: t.blocked.get("connection_limit", 0),
    ),
    "slow_clients_cut": (
        "requests",
        "Requests cut at the header timeout (408): slow clients, slowloris",
        lambda t, _s: t.blocked.get("timeout", 0),
    ),
    "too_large_refused": (
        "requests",
        "Requests refused for a header (431) or body (413) above the project's limit",
        lambda t, _s: t.blocked.get("too_large", 0),
    ),
    "rate_limited": (
        "requests",
        "Requests refused by a rate limit (429)",
        lambda t, _s: t.blocked.get("rate_limit", 0),
    ),
    "denied": (
        "requests",
        "Requests refused by an IP allow / deny list (403)",
        lambda t, _s: t.blocked.get("denied", 0),
    ),
    "response_time_p50_ms": (
        "ms",
        "Median whole-request time",
        lambda t, _s: percentile(t.request_ms, 0.50),
    ),
    "response_time_p95_ms": (
        "ms",
        "95th percentile whole-request time",
        lambda t, _s: percentile(t.request_ms, 0.95),
    ),
    "response_time_p99_ms": (
        "ms",
        "99th percentile whole-request time",
        lambda t, _s: percentile(t.request_ms, 0.99),
    ),
    "upstream_time_p95_ms": (
        "ms",
        "95th percentile time waiting on the origin",
        lambda t, _s: percentile(t.upstream_ms, 0.95),
    ),
}

FUNCTION: dict[str, tuple[str, str, Callable[[FunctionSum, float], float | None]]] = {
    "function_invocations": (
        "invocations",
        "Edge function invocations",
        lambda f, _s: f.invocations,
    ),
    "function_errors": (
        "invocations",
        "Edge function invocations that failed: an exception, a time or memory limit, or the "
        "runtime unavailable",
        lambda f, _s: f.error_count,
    ),
    "function_error_rate": (
        "percent",
        "Failed edge function invocations / invocations",
        lambda f, _s: f.error_rate,
    ),
    "function_duration_p50_ms": (
        "ms",
        "Median whole-request time of edge function invocations",
        lambda f, _s: percentile(f.duration_ms, 0.50),
    ),
    "function_duration_p95_ms": (
        "ms",
        "95th percentile whole-request time of edge function invocations",
        lambda f, _s: percentile(f.duration_ms, 0.95),
    ),
    "function_duration_p99_ms": (
        "ms",
        "99th percentile whole-request time of edge function invocations",
        lambda f, _s: percentile(f.duration_ms, 0.99),
    ),
}

SERVER: dict[str, tuple[str, str, Callable[[dict[str, Any]], float | None]]] = {
    "cpu_percent": ("percent", "CPU utilisation", lambda v: v.get("cpu_percent")),
    "memory_percent": ("percent", "Memory used", lambda v: v.get("memory_percent")),
    "memory_available_percent": (
        "percent",
        "Memory available",
        lambda v: None if v.get("memory_percent") is None else 100 - v["memory_percent"],
    ),
    "storage_percent": ("percent", "Storage used", lambda v: v.get("storage_percent")),
    "network_latency_ms": ("ms", "Network latency", lambda v: v.get("latency_ms")),
}

CATALOG: dict[str, SeriesInfo] = {
    **{n: SeriesInfo(n, "traffic", unit, d) for n, (unit, d, _f) in TRAFFIC.items()},
    **{n: SeriesInfo(n, "server", unit, d) for n, (unit, d, _f) in SERVER.items()},
    **{n: SeriesInfo(n, "function", unit, d) for n, (unit, d, _f) in FUNCTION.items()},
    "backend_requests": SeriesInfo(
        "backend_requests",
        "backend",
        "requests",
        "Requests each backend of the project's load balancer answered (the last try's)",
    ),
    "origin_up": SeriesInfo(
        "origin_up",
        "health",
        "bool",
        "1 when a pool has a backend up for at least one live edge node, else 0 (now)",
    ),
    "uptime_percent": SeriesInfo(
        "uptime_percent",
        "uptime",
        "percent",
        "The edge nodes' uptime checks of a domain that passed (HTTP, HTTPS, DNS together)",
    ),
    "domain_up": SeriesInfo(
        "domain_up",
        "probe",
        "ratio",
        "The share of live edge nodes whose latest HTTP(S) check of a domain passed (now)",
    ),
    "dns_up": SeriesInfo(
        "dns_up",
        "probe",
        "ratio",
        "The share of live edge nodes whose own DNS server answered for a domain (now)",
    ),
    "tls_days_left": SeriesInfo(
        "tls_days_left",
        "probe",
        "days",
        "Days until the certificate the edge serves for a domain expires (now)",
    ),
    "config_drift_objects": SeriesInfo(
        "config_drift_objects",
        "drift",
        "count",
        "Objects changed outside the last applied file since it was applied (the newest "
        "drift check)",
    ),
    "backup_age_hours": SeriesInfo(
        "backup_age_hours",
        "backup",
        "hours",
        "Hours since the newest database backup that did not fail its verification (the "
        "default project only: backups are the platform's)",
    ),
    "backup_verification_failed": SeriesInfo(
        "backup_verification_failed",
        "backup",
        "count",
        "Backups whose newest verification failed (the default project only)",
    ),
    "dr_failed_over": SeriesInfo(
        "dr_failed_over",
        "dr",
        "count",
        "1 while a DR config's traffic is on its backup data center or waits for an "
        "operator's confirmation to move (not during a drill)",
    ),
    "dr_drill_failed": SeriesInfo(
        "dr_drill_failed",
        "dr",
        "count",
        "1 when a DR config's newest drill missed its RTO or RPO target or could not finish",
    ),
    "certificate_days_left": SeriesInfo(
        "certificate_days_left",
        "certificate",
        "days",
        "Days until the certificate the edge serves for a domain expires (now)",
    ),
    "security_score": SeriesInfo(
        "security_score",
        "security",
        "points",
        "A domain's newest security score, 0-100 (edgeplane security score)",
    ),
    "security_score_drop": SeriesInfo(
        "security_score_drop",
        "security",
        "points",
        "The best security score of the last 7 days minus the newest (0: no drop)",
    ),
    "compliance_failed": SeriesInfo(
        "compliance_failed",
        "compliance",
        "bool",
        "1 per requirement of the project's compliance policy a domain fails, 0 when it "
        "passes (object: domain/requirement)",
    ),
    "exposed_ports": SeriesInfo(
        "exposed_ports",
        "surface",
        "count",
        "Ports the newest scan found answering on an edge node's address that it should not "
        "expose (the default project only: nodes are the platform's)",
    ),
}


if tuple(sorted(CATALOG)) != tuple(sorted(SERIES_NAMES)):  # the API's schema lists them
    raise RuntimeError("model.alerting.SERIES_NAMES must name the series of the catalog")


def info(name: str, field_name: str = "series") -> SeriesInfo:
    found = CATALOG.get(name)
    if found is None:
        raise InvalidInput.at(
            field_name, f"unknown series {name!r}; known: {', '.join(sorted(CATALOG))}"
        )
    return found


def check_selector(series: SeriesInfo, selector: dict[str, Any], field_name: str) -> None:
    allowed = SELECTORS[series.source]
    for key, value in selector.items():
        if key not in allowed:
            raise InvalidInput.at(
                f"{field_name}.{key}",
                f"{series.name} is selected by {', '.join(sorted(allowed))}",
            )
        if not isinstance(value, str) or not value:
            raise InvalidInput.at(f"{field_name}.{key}", "must be a non-empty string")


def check_group(series: SeriesInfo, group_by: str | None) -> str:
    groups = GROUPS[series.source]
    if group_by is None:
        return groups[0]
    if group_by not in groups:
        raise InvalidInput.at("group_by", f"{series.name} groups by {', '.join(groups)}")
    return group_by


def _traffic_rows(
    tx: Tx, project: str, selector: dict[str, Any], start: datetime, end: datetime, hourly: bool
) -> Iterable[tuple[datetime, str, str, str, Any]]:
    """(period start, domain, region, node name, row) of the project's traffic in range."""
    table: Any = EdgeAnalyticsHourRow if hourly else EdgeAnalyticsRow
    at = table.hour if hourly else table.minute
    q = (
        select(at, table.domain, EdgeNodeRow.region, EdgeNodeRow.name, table)
        .join(EdgeNodeRow, EdgeNodeRow.id == table.node_id)
        .where(table.project_id == project, at >= start, at < end)
    )
    if "domain" in selector:
        q = q.where(table.domain == selector["domain"])
    if "region" in selector:
        q = q.where(EdgeNodeRow.region == selector["region"])
    if "node" in selector:
        q = q.where(EdgeNodeRow.name == selector["node"])
    return ((p, d, r, n, row) for p, d, r, n, row in tx.session.execute(q))


def _server_rows(
    tx: Tx, project: str, selector: dict[str, Any], start: datetime, end: datetime
) -> Iterable[tuple[datetime, str, str, dict[str, Any]]]:
    q = (
        select(MetricRow.at, MetricRow.server_id, ServerRow.location, MetricRow.values)
        .join(
            ServerRow,
            (ServerRow.project_id == MetricRow.project_id) & (ServerRow.id == MetricRow.server_id),
        )
        .where(MetricRow.project_id == project, MetricRow.at >= start, MetricRow.at < end)
    )
    if "server" in selector:
        q = q.where(MetricRow.server_id == selector["server"])
    if "location" in selector:
        q = q.where(ServerRow.location == selector["location"])
    return ((at, s, loc, dict(v or {})) for at, s, loc, v in tx.session.execute(q))


def _origin_up(tx: Tx, project: str, selector: dict[str, Any]) -> dict[str, float]:
    live = liveness.live_ids(tx)
    q = select(BackendHealthRow.pool, BackendHealthRow.node_id, BackendHealthRow.state).where(
        BackendHealthRow.project_id == project
    )
    if "pool" in selector:
        q = q.where(BackendHealthRow.pool == selector["pool"])
    seen: dict[str, set[str]] = defaultdict(set)
    for pool, node, state in tx.session.execute(q):
        if node in live and state in ("up", "down"):
            seen[pool].add(state)
    return {pool: 1.0 if "up" in states else 0.0 for pool, states in seen.items()}


def _drift(tx: Tx, project: str) -> dict[str, float]:
    row = tx.session.get(IacDriftRow, project)
    return {project: float(row.objects)} if row is not None else {}


def _backups(tx: Tx, project: str, name: str, now: datetime) -> dict[str, float]:
    """The platform's backups, seen from the default project (its admins run the platform)."""
    if project != PLATFORM_PROJECT:
        return {}
    rows = tx.session.execute(
        select(BackupRow.kind, BackupRow.created_at, BackupRow.verify_ok, BackupRow.expires_at)
    ).all()
    if name == "backup_verification_failed":
        failed = sum(1 for _k, _c, ok, _e in rows if ok is False)
        return {"backups": float(failed)} if rows else {}
    good = [c for k, c, ok, _e in rows if k in ("full", "incremental") and ok is not False]
    if not good:
        return {}
    return {"backups": round((now - max(good)).total_seconds() / 3600, 3)}


def _dr(tx: Tx, project: str, name: str, selector: dict[str, Any]) -> dict[str, float]:
    configs = list(
        tx.session.scalars(select(DRConfigRow.id).where(DRConfigRow.project_id == project))
    )
    if "dr_config" in selector:
        configs = [c for c in configs if c == selector["dr_config"]]
    if not configs:
        return {}
    if name == "dr_failed_over":
        states = {
            r.dr_id: r.status
            for r in tx.session.scalars(select(DRStateRow).where(DRStateRow.project_id == project))
        }
        open_ = ("failover_pending", "failed_over", "failback_pending")
        return {c: 1.0 if states.get(c) in open_ else 0.0 for c in configs}
    out: dict[str, float] = {}
    for dr_id in configs:
        status = tx.session.scalars(
            select(DRDrillRow.status)
            .where(
                DRDrillRow.project_id == project,
                DRDrillRow.dr_id == dr_id,
                DRDrillRow.status != "running",
            )
            .order_by(DRDrillRow.started_at.desc())
            .limit(1)
        ).first()
        if status is not None:
            out[dr_id] = 1.0 if status in ("failed", "error") else 0.0
    return out


def _days_left(tx: Tx, project: str, selector: dict[str, Any], now: datetime) -> dict[str, float]:
    served = versions.served_expiries(tx.session, now, project)
    return {
        domain: round((not_after - now).total_seconds() / 86400, 3)
        for (_project, domain), not_after in served.items()
        if "domain" not in selector or domain == selector["domain"]
    }


def _posture(tx: Tx, project: str, name: str, selector: dict[str, Any], now: datetime
             ) -> dict[str, float]:  # fmt: skip
    """Security scores, compliance and the nodes' surface (``edgeplane.posture``)."""
    from edgeplane.services import compliance, node_surface, security_scores

    if name == "compliance_failed":
        return compliance.series_values(tx, project, selector)
    if name == "exposed_ports":
        return node_surface.series_values(tx, project, selector)
    return security_scores.series_values(tx, project, name, selector, now)


class Memo:
    """What one pass of reads loaded, shared by the series that read the same rows (the
    traffic of a window, the server samples of a window)."""

    def __init__(self) -> None:
        self._loaded: dict[tuple[Any, ...], Any] = {}

    def get(self, key: tuple[Any, ...], load: Callable[[], Any]) -> Any:
        if key not in self._loaded:
            self._loaded[key] = load()
        return self._loaded[key]


def _probes(tx: Tx, project: str, name: str, selector: dict[str, Any], now: datetime
             ) -> dict[str, float]:  # fmt: skip
    """``domain_up``, ``dns_up``, ``tls_days_left`` from the live nodes' latest checks."""
    live = liveness.live_ids(tx)
    kinds = {"domain_up": ("http", "https"), "dns_up": ("dns",), "tls_days_left": ("https",)}
    q = select(UptimeStateRow).where(
        UptimeStateRow.project_id == project, UptimeStateRow.kind.in_(kinds[name])
    )
    if "domain" in selector:
        q = q.where(UptimeStateRow.target == selector["domain"])
    per_node: dict[str, dict[str, bool]] = defaultdict(dict)  # domain -> node -> all up
    expiry: dict[str, datetime] = {}
    for row in tx.session.scalars(q):
        if row.node_id not in live:
            continue
        nodes = per_node[row.target]
        nodes[row.node_id] = nodes.get(row.node_id, True) and row.up
        if row.expires_at is not None:
            expiry[row.target] = min(expiry.get(row.target, row.expires_at), row.expires_at)
    if name == "tls_days_left":
        return {d: round((at - now).total_seconds() / 86400, 3) for d, at in expiry.items()}
    return {
        domain: round(sum(nodes.values()) / len(nodes), 4)
        for domain, nodes in per_node.items()
        if nodes
    }


def _uptime_rows(
    tx: Tx, project: str, selector: dict[str, Any], start: datetime, end: datetime
) -> Iterable[tuple[datetime, str, str, str, int, int]]:
    """(hour, domain, region, node name, checks, failures) of the hours in range."""
    q = (
        select(
            UptimeHourRow.hour,
            UptimeHourRow.target,
            EdgeNodeRow.region,
            EdgeNodeRow.name,
            UptimeHourRow.checks,
            UptimeHourRow.failures,
        )
        .join(EdgeNodeRow, EdgeNodeRow.id == UptimeHourRow.node_id)
        .where(
            UptimeHourRow.project_id == project,
            UptimeHourRow.hour >= start.replace(minute=0, second=0, microsecond=0),
            UptimeHourRow.hour < end,
        )
    )
    if "domain" in selector:
        q = q.where(UptimeHourRow.target == selector["domain"])
    if "region" in selector:
        q = q.where(EdgeNodeRow.region == selector["region"])
    if "node" in selector:
        q = q.where(EdgeNodeRow.name == selector["node"])
    return ((h, d, r, n, c, f) for h, d, r, n, c, f in tx.session.execute(q))


def _uptime(checks: int, failures: int) -> float | None:
    return round(100.0 * (checks - failures) / checks, 4) if checks else None


def _traffic_key(group: str, project: str, domain: str, region: str, node: str) -> str:
    return {"domain": domain, "region": region, "node": node}.get(group, project)


def _function_key(group: str, project: str, function: str, region: str, node: str) -> str:
    return {"function": function, "region": region, "node": node}.get(group, project)


def current(
    tx: Tx,
    project: str,
    name: str,
    selector: dict[str, Any] | None = None,
    window_s: float = 300.0,
    now: datetime | None = None,
    group_by: str | None = None,
    memo: Memo | None = None,
) -> dict[str, float]:
    """Each object's value over ``[now - window_s, now)``; objects without a value are absent.
    No access check: the caller has made it."""
    memo = memo or Memo()
    series = info(name)
    selector = selector or {}
    group = check_group(series, group_by)
    now = now or utcnow()
    start = now - timedelta(seconds=window_s)
    if series.source == "health":
        return _origin_up(tx, project, selector)
    if series.source == "certificate":
        return _days_left(tx, project, selector, now)
    if series.source == "drift":
        return _drift(tx, project)
    if series.source == "backup":
        return _backups(tx, project, name, now)
    if series.source == "dr":
        return _dr(tx, project, name, selector)
    if series.source == "probe":
        return _probes(tx, project, name, selector, now)
    if series.source in ("security", "compliance", "surface"):
        return _posture(tx, project, name, selector, now)
    out: dict[str, float] = {}
    if series.source == "uptime":
        counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for _h, domain, region, node, checks, failures in _uptime_rows(
            tx, project, selector, start, now
        ):
            total = counts[_traffic_key(group, project, domain, region, node)]
            total[0] += checks
            total[1] += failures
        for key, (checks, failures) in counts.items():
            value = _uptime(checks, failures)
            if value is not None:
                out[key] = value
        return out
    selected = tuple(sorted(selector.items()))
    if series.source == "backend":
        first = start.replace(second=0, microsecond=0)
        answered: dict[str, int] = {}
        for _at, _domain, _region, _node, row in _traffic_rows(
            tx, project, selector, first, now, hourly=False
        ):
            add_counts(answered, row.backends)
        return {key: float(n) for key, n in answered.items()}
    if series.source == "function":
        first = start.replace(second=0, microsecond=0)

        def load_functions() -> dict[str, FunctionSum]:
            sums: dict[str, FunctionSum] = defaultdict(FunctionSum)
            for _at, fn, region, node, row in function_obs.rows_in(
                tx, project, selector, first, now, hourly=False
            ):
                sums[_function_key(group, project, fn, region, node)].add(row)
            return sums

        fn_sums = memo.get(("function", project, selected, first, now, group), load_functions)
        reduce_fn = FUNCTION[name][2]
        for key, fn_total in fn_sums.items():
            value = reduce_fn(fn_total, window_s)
            if value is not None:
                out[key] = float(value)
        return out
    if series.source == "traffic":
        # The minute that holds ``start`` counts whole: a window of 60 s sees the last minute.
        first = start.replace(second=0, microsecond=0)

        def load_traffic() -> dict[str, TrafficSum]:
            sums: dict[str, TrafficSum] = defaultdict(TrafficSum)
            for _at, domain, region, node, row in _traffic_rows(
                tx, project, selector, first, now, hourly=False
            ):
                sums[_traffic_key(group, project, domain, region, node)].add(row)
            return sums

        sums = memo.get(("traffic", project, selected, first, now, group), load_traffic)
        reduce = TRAFFIC[name][2]
        for key, total in sums.items():
            value = reduce(total, window_s)
            if value is not None:
                out[key] = float(value)
        return out

    def load_samples() -> list[tuple[str, dict[str, Any]]]:
        return [
            ({"server": server, "location": location}.get(group, project), values)
            for _at, server, location, values in _server_rows(tx, project, selector, start, now)
        ]

    samples: dict[str, list[float]] = defaultdict(list)
    pick = SERVER[name][2]
    for key, values in memo.get(("server", project, selected, start, now, group), load_samples):
        value = pick(values)
        if value is not None:
            samples[key].append(float(value))
    return {key: round(sum(v) / len(v), 4) for key, v in samples.items()}


def _points(counts: dict[int, int], start: datetime, step_s: int) -> list[tuple[datetime, float]]:
    """A count per step -> the points (the step's start, the count)."""
    return [(start + timedelta(seconds=i * step_s), float(n)) for i, n in sorted(counts.items())]


def query(
    tx: Tx,
    project: str,
    name: str,
    selector: dict[str, Any],
    start: datetime,
    end: datetime,
    step_s: int,
    group_by: str | None = None,
) -> dict[str, list[tuple[datetime, float]]]:
    """Points per object over ``[start, end)``, one per ``step_s`` (the step's start); steps
    without a value are left out. The series of "now" (origin, certificate and probe states)
    have one point: now."""
    series = info(name)
    group = check_group(series, group_by)
    if end <= start:
        raise InvalidInput.at("end", "must be after start")
    if step_s < 60:
        raise InvalidInput.at("step", "must be at least 60 seconds")
    if (end - start).total_seconds() / step_s > MAX_POINTS:
        raise InvalidInput.at("step", f"gives more than {MAX_POINTS} points: take a larger one")
    now = utcnow()

    def slot(at: datetime) -> int:
        return int((at - start).total_seconds() // step_s)

    if series.source in (
        "health", "certificate", "probe", "drift", "backup", "dr", "security", "compliance",
        "surface",
    ):  # fmt: skip
        values = current(tx, project, name, selector, 0, now, group)
        return {key: [(now, value)] for key, value in values.items()}
    if series.source == "uptime":
        per_slot: dict[str, dict[int, list[int]]] = defaultdict(dict)
        for hour, domain, region, node, checks, failures in _uptime_rows(
            tx, project, selector, start, end
        ):
            total = per_slot[_traffic_key(group, project, domain, region, node)].setdefault(
                slot(max(hour, start)), [0, 0]
            )
            total[0] += checks
            total[1] += failures
        return {
            key: [
                (start + timedelta(seconds=i * step_s), v)
                for i, (c, f) in sorted(per.items())
                if (v := _uptime(c, f)) is not None
            ]
            for key, per in per_slot.items()
        }
    buckets: dict[str, dict[int, Any]] = defaultdict(dict)
    if series.source == "function":
        split = function_obs.split_at(tx, start, end, step_s, now)
        for first, last, hourly in ((start, split, True), (split, end, False)):
            if first >= last:
                continue
            for at, fn, region, node, row in function_obs.rows_in(
                tx, project, selector, first, last, hourly
            ):
                per = buckets[_function_key(group, project, fn, region, node)]
                per.setdefault(slot(max(at, start)), FunctionSum()).add(row)
        reduce_fn = FUNCTION[name][2]
        return {
            key: [
                (start + timedelta(seconds=i * step_s), float(value))
                for i in sorted(per)
                if (value := reduce_fn(per[i], step_s)) is not None
            ]
            for key, per in buckets.items()
        }
    if series.source in ("traffic", "backend"):
        # Hours rolled up are read from the rollups when the step is whole hours or the range
        # reaches past the minutes kept; the rest (the hours not rolled up yet) from minutes.
        split = start
        if step_s % 3600 == 0 or start < now - MINUTE_RETENTION:
            split = min(max(start, retention.rolled_until(tx) or start), end)
        parts = ((start, split, True), (split, end, False))
        for first, last, hourly in parts:
            if first >= last:
                continue
            for at, domain, region, node, row in _traffic_rows(
                tx, project, selector, first, last, hourly
            ):
                if series.source == "backend":
                    for key, n in (row.backends or {}).items():
                        if isinstance(n, int):
                            per = buckets[key]
                            per[slot(at)] = per.get(slot(at), 0) + n
                    continue
                per = buckets[_traffic_key(group, project, domain, region, node)]
                per.setdefault(slot(at), TrafficSum()).add(row)
        if series.source == "backend":
            return {key: _points(per, start, step_s) for key, per in buckets.items()}
        reduce = TRAFFIC[name][2]
        out: dict[str, list[tuple[datetime, float]]] = {}
        for key, per in buckets.items():
            points = []
            for i in sorted(per):
                value = reduce(per[i], step_s)
                if value is not None:
                    points.append((start + timedelta(seconds=i * step_s), float(value)))
            out[key] = points
        return out
    pick = SERVER[name][2]
    for at, server, location, values in _server_rows(tx, project, selector, start, end):
        value = pick(values)
        if value is not None:
            key = {"server": server, "location": location}.get(group, project)
            buckets[key].setdefault(slot(at), []).append(float(value))
    return {
        key: [
            (start + timedelta(seconds=i * step_s), round(sum(v) / len(v), 4))
            for i, v in sorted(per.items())
        ]
        for key, per in buckets.items()
    }
