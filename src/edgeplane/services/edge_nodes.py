"""Edge nodes: registration, acknowledgements, backend health, purge acks and analytics.

None of this is desired state: these writes never bump the revision (no ``tx.record``).
A node's edge protocol version (``edgeplane.protocol.versions``) is recorded when it
registers; a version this control plane does not serve is refused (``UnsupportedProtocol``).
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select

from edgeplane import metrics
from edgeplane.errors import Forbidden, InvalidInput, NotFound
from edgeplane.protocol import versions
from edgeplane.protocol.config import NodeSpec
from edgeplane.protocol.messages import (
    UPSTREAM_MS_BUCKETS,
    Ack,
    AnalyticsReport,
    EdgeNode,
    HealthReport,
    Heartbeat,
    NodeRegister,
    PurgeAck,
    PurgeTask,
)
from edgeplane.services import function_rollouts, liveness, regions, rollouts, zone_serials
from edgeplane.settings import Settings
from edgeplane.snapshot.cache import SnapshotCache
from edgeplane.snapshot.functions import runs_functions
from edgeplane.store.db import Tx
from edgeplane.store.tables import (
    AuditRow,
    BackendHealthRow,
    EdgeAnalyticsRow,
    EdgeNodeRow,
    PurgeAckRow,
    PurgeRow,
    RegionRow,
    utcnow,
)

ONLINE_WITHIN = timedelta(seconds=60)
PURGE_WINDOW = timedelta(minutes=10)
SEEN_GRANULARITY = timedelta(seconds=5)
_SLUG = r"[a-z0-9][a-z0-9_-]{0,62}"
_COUNTRY = re.compile(r"^[A-Z]{2}\Z")
BOT_VERDICT = re.compile(
    r"^(?:bad|impostor|automated|behaviour|good):(?:detect|challenge|pass|block)\Z"
)
_POOL = re.compile(rf"^(?:lb\.(?P<lb>{_SLUG})\.[^\s]+|origin\.(?P<o>{_SLUG}))$")


class UnsupportedProtocol(InvalidInput):
    """An edge protocol version this control plane does not serve; the problem document names
    those it does (``protocols``: ``{"min": 1, "max": 2}``), for the agent to choose one."""

    def __init__(self, version: int, field: str) -> None:
        reason = versions.refusal(version) or f"edge protocol version {version} is not served"
        super().__init__(f"{field}: {reason}", field=field)
        self.extra["protocols"] = versions.served()


def check_protocol(version: int, field: str) -> int:
    """``version``, when this control plane serves it; else ``UnsupportedProtocol``."""
    if versions.refusal(version) is not None:
        raise UnsupportedProtocol(version, field)
    return version


def _require_viewer(tx: Tx) -> None:
    actor = tx.actor
    if actor.edge:
        raise Forbidden("this token is for the edge protocol only")
    if not (actor.local or actor.roles):
        raise Forbidden("this token has no role in any project")


def _node_spec(row: EdgeNodeRow) -> NodeSpec:
    return NodeSpec(id=row.id, name=row.name, region=row.region)


def _to_model(
    tx: Tx, snapshots: SnapshotCache, row: EdgeNodeRow, desired: int, now: datetime
) -> EdgeNode:
    in_sync = False
    if row.applied_hash is not None:
        snap = snapshots.for_node(
            tx.session,
            _node_spec(row),
            desired,
            functions=runs_functions(row.protocol, row.functions),
        )
        in_sync = snap.hash == row.applied_hash
    online = row.last_seen_at is not None and now - row.last_seen_at < ONLINE_WITHIN
    place = tx.session.get(RegionRow, row.region)
    return EdgeNode(
        id=row.id,
        name=row.name,
        region=row.region,
        region_code=place.region_code if place is not None else None,
        region_type=place.area if place is not None else None,
        address=row.address,
        http_port=row.http_port,
        https_port=row.https_port,
        status="online" if online else "offline",
        registered_at=row.registered_at,
        last_seen_at=row.last_seen_at,
        desired_revision=desired,
        applied_revision=row.applied_revision,
        applied_hash=row.applied_hash,
        applied_at=row.applied_at,
        in_sync=in_sync,
        apply_ms=row.apply_ms,
        propagation_ms=row.propagation_ms,
        last_error=row.last_error,
        failed_revision=row.failed_revision,
        stats={k: float(v) for k, v in (row.stats or {}).items() if isinstance(v, int | float)},
        live=row.id in liveness.live_ids(tx),
        heartbeat_at=row.heartbeat_at,
        protocol=row.protocol or 1,
        ignored_fields=list(row.ignored_fields or []),
        functions=bool(row.functions),
    )


def node_row(tx: Tx, node_id: str) -> EdgeNodeRow:
    row = tx.session.get(EdgeNodeRow, node_id)
    if row is None:
        raise NotFound(f"edge node {node_id!r} not found")
    return row


def _seen(row: EdgeNodeRow, now: datetime) -> None:
    if row.last_seen_at is None or now - row.last_seen_at >= SEEN_GRANULARITY:
        row.last_seen_at = now


def node_model(tx: Tx, snapshots: SnapshotCache, row: EdgeNodeRow) -> EdgeNode:
    return _to_model(tx, snapshots, row, tx.current_revision(), utcnow())


# The edge protocol ------------------------------------------------------------------------


def register(tx: Tx, snapshots: SnapshotCache, spec: NodeRegister) -> EdgeNode:
    """Register a node; the same name again is the same node, its fields updated. Its
    ``region`` must be a location (a region code or type is refused, listing its locations),
    its ``protocol`` a version this control plane serves."""
    check_protocol(spec.protocol, "protocol")
    location = regions.need_location(
        tx, regions.resolve(tx, spec.region, "region"), "region", "an edge node"
    )
    now = utcnow()
    row = tx.session.scalar(select(EdgeNodeRow).where(EdgeNodeRow.name == spec.name))
    if row is None:
        row = EdgeNodeRow(id=f"node-{secrets.token_hex(6)}", name=spec.name, registered_at=now)
        tx.session.add(row)
    row.region = location.code
    row.address = spec.address
    row.http_port = spec.http_port
    row.https_port = spec.https_port
    row.dns_port = spec.dns_port
    row.local_ports = {k: v for k, v in spec.local_ports.items() if 1 <= v <= 65535}
    row.version = spec.version
    row.protocol = spec.protocol
    row.functions = spec.functions
    row.token_id = tx.actor.token_id
    row.last_seen_at = now
    if row.stats is None:
        row.stats = {}
    tx.session.flush()
    return node_model(tx, snapshots, row)


def touch(tx: Tx, node_id: str) -> EdgeNodeRow:
    """The node, marked as seen now."""
    row = node_row(tx, node_id)
    _seen(row, utcnow())
    return row


def heartbeat(tx: Tx, node_id: str, body: Heartbeat, settings: Settings) -> None:
    """Record the heartbeat; a node that was not live joins the GeoDNS answers at once."""
    row = node_row(tx, node_id)
    now = utcnow()
    row.heartbeat_at = now
    row.last_seen_at = now
    row.healthy = body.healthy
    if body.dns_serials is not None:  # None: unchanged since the last heartbeat
        zone_serials.record(tx, row.id, body.dns_serials, partial=body.dns_serials_partial)
    dns = {"error": body.dns_error, "reason": body.reason}
    if dns != (row.dns or {}):
        row.dns = dns
    changed: list[str] = []
    if body.bundles is not None:
        reports = {site: r.model_dump(mode="json") for site, r in body.bundles.items()}
        before = row.bundles or {}
        changed = sorted(s for s in set(reports) | set(before) if reports.get(s) != before.get(s))
        if changed:
            row.bundles = reports
    functions: list[str] = []
    if body.functions is not None:
        reports = {key: r.model_dump(mode="json") for key, r in body.functions.items()}
        before = row.function_reports or {}
        functions = sorted(k for k in set(reports) | set(before) if reports.get(k) != before.get(k))
        if functions:
            row.function_reports = reports
    tx.session.flush()
    if body.healthy != (row.id in liveness.live_ids(tx)):
        liveness.refresh(tx, settings, now)
    for project in changed:
        rollouts.advance(tx, settings, now, project)
    for key in functions:
        project, _, name = key.partition("/")
        if project and name:
            function_rollouts.advance(tx, settings, now, project, name)


def commit_time(tx: Tx, revision: int) -> datetime | None:
    """When ``revision`` was committed: its newest audit event."""
    return tx.session.scalar(select(func.max(AuditRow.at)).where(AuditRow.revision == revision))


def ack(tx: Tx, snapshots: SnapshotCache, node_id: str, body: Ack) -> EdgeNode:
    now = utcnow()
    row = node_row(tx, node_id)
    row.last_seen_at = now
    if list(body.ignored) != (row.ignored_fields or []):
        row.ignored_fields = list(body.ignored)
    if body.stats:
        row.stats = {**(row.stats or {}), **body.stats}
    if body.ok:
        if row.applied_revision != body.revision or row.applied_hash != body.hash:
            committed = commit_time(tx, body.revision)
            row.propagation_ms = (
                max(0.0, (now - committed).total_seconds() * 1000) if committed else None
            )
            row.applied_at = now
            if committed is not None:
                tx.session.flush()
                _observe_propagation(tx, body.revision, (now - committed).total_seconds())
        row.applied_revision = body.revision
        row.applied_hash = body.hash
        row.apply_ms = body.apply_ms
        row.last_error = None
        row.failed_revision = None
    else:
        row.last_error = body.error or "apply failed (no message)"
        row.failed_revision = body.revision
        row.apply_ms = body.apply_ms
    tx.session.flush()
    return node_model(tx, snapshots, row)


def _observe_propagation(tx: Tx, revision: int, seconds: float) -> None:
    """One node applied ``revision``, committed ``seconds`` ago; when every live node now
    serves it (or a newer one), the revision's propagation is done."""
    metrics.node_propagation.observe(max(0.0, seconds))
    live = liveness.live_ids(tx)
    if not live:
        return
    applied = tx.session.scalars(
        select(EdgeNodeRow.applied_revision).where(EdgeNodeRow.id.in_(live))
    ).all()
    if all(a is not None and a >= revision for a in applied) and metrics.propagated.first(revision):
        metrics.propagation.observe(max(0.0, seconds))


def pool_project(pool: str) -> str | None:
    m = _POOL.match(pool)
    if not m:
        return None
    return m.group("lb") or m.group("o")


def report_health(tx: Tx, node_id: str, body: HealthReport) -> int:
    """Store what the node's checks saw, backend by backend; returns the count stored."""
    row = touch(tx, node_id)
    now = utcnow()
    seen: set[tuple[str, str]] = set()
    for i, b in enumerate(body.backends):
        project = pool_project(b.pool)
        if project is None:
            raise InvalidInput.at(
                f"backends.{i}.pool", "must be lb.<project>.<load balancer> or origin.<project>"
            )
        if not b.backend or len(b.backend) > 300:
            raise InvalidInput.at(f"backends.{i}.backend", "must be 1-300 characters")
        if (b.pool, b.backend) in seen:
            raise InvalidInput.at(f"backends.{i}", "this pool and backend are listed twice")
        seen.add((b.pool, b.backend))
        h = tx.session.get(BackendHealthRow, (row.id, b.pool, b.backend))
        if h is None:
            h = BackendHealthRow(node_id=row.id, pool=b.pool, backend=b.backend)
            tx.session.add(h)
        if h.state != b.state:
            h.changed_at = b.changed_at or now
        elif b.changed_at is not None:
            h.changed_at = b.changed_at
        h.project_id = project
        h.state = b.state
        h.reason = b.reason
        h.checked_at = b.checked_at or now
        h.latency_ms = b.latency_ms
    tx.session.flush()
    return len(body.backends)


def purge_task(row: PurgeRow) -> PurgeTask:
    paths = [p for p in row.paths or [] if not p.endswith("*")]
    prefixes = [p[:-1] for p in row.paths or [] if p.endswith("*")]
    return PurgeTask(
        id=row.id,
        site=row.project_id,
        paths=sorted(set(paths)),
        prefixes=sorted(set(prefixes)),
        purge_all=bool(row.purge_all),
    )


def pending_purges(tx: Tx, node: EdgeNodeRow) -> list[PurgeTask]:
    """Purges made since the node registered, within the last 10 minutes, it has not done."""
    since = max(node.registered_at, utcnow() - PURGE_WINDOW)
    done = select(PurgeAckRow.purge_id).where(PurgeAckRow.node_id == node.id)
    rows = tx.session.scalars(
        select(PurgeRow)
        .where(PurgeRow.created_at >= since, PurgeRow.id.not_in(done))
        .order_by(PurgeRow.created_at, PurgeRow.id)
    )
    return [purge_task(r) for r in rows]


def ack_purge(tx: Tx, node_id: str, purge_id: str, body: PurgeAck) -> None:
    row = touch(tx, node_id)
    if tx.session.get(PurgeRow, purge_id) is None:
        raise NotFound(f"purge {purge_id!r} not found")
    done = tx.session.get(PurgeAckRow, (purge_id, row.id))
    if done is None:
        done = PurgeAckRow(purge_id=purge_id, node_id=row.id)
        tx.session.add(done)
    done.completed_at = body.completed_at
    done.purged_count = body.purged_count
    done.error = body.error
    tx.session.flush()
    _observe_purge(tx, purge_id)


def _observe_purge(tx: Tx, purge_id: str) -> None:
    """When every live node has done the purge, its duration (request to the last ack)."""
    live = liveness.live_ids(tx)
    done = set(
        tx.session.scalars(select(PurgeAckRow.node_id).where(PurgeAckRow.purge_id == purge_id))
    )
    purge = tx.session.get(PurgeRow, purge_id)
    if purge is None or not live or not live <= done or not metrics.purged.first(purge_id):
        return
    last = tx.session.scalar(
        select(func.max(PurgeAckRow.completed_at)).where(PurgeAckRow.purge_id == purge_id)
    )
    if last is not None:
        metrics.purge_duration.observe(max(0.0, (last - purge.created_at).total_seconds()))


def _minute(value: datetime) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(second=0, microsecond=0)


def store_analytics(tx: Tx, node_id: str, body: AnalyticsReport) -> int:
    """Replace the node's totals of each (domain, minute) given; returns the count stored."""
    row = touch(tx, node_id)
    buckets = len(UPSTREAM_MS_BUCKETS) + 1
    seen: set[tuple[str, datetime]] = set()
    for i, m in enumerate(body.minutes):
        for name, histogram in (("upstream_ms", m.upstream_ms), ("request_ms", m.request_ms)):
            if len(histogram) not in (0, buckets):
                raise InvalidInput.at(
                    f"minutes.{i}.{name}", f"must hold {buckets} bucket counts (or none)"
                )
            if any(c < 0 for c in histogram):
                raise InvalidInput.at(f"minutes.{i}.{name}", "counts must not be negative")
        for code, count in m.countries.items():
            if not _COUNTRY.match(code):
                raise InvalidInput.at(
                    f"minutes.{i}.countries", f"{code!r} is not an ISO country code (or ZZ)"
                )
            if count < 0:
                raise InvalidInput.at(f"minutes.{i}.countries", "counts must not be negative")
        for key, count in m.bots.items():
            if not BOT_VERDICT.match(key) or count < 0:
                raise InvalidInput.at(
                    f"minutes.{i}.bots", f"{key!r}: not <class>:<action> with a count >= 0"
                )
        for key, count in m.backends.items():
            if not key or len(key) > 300:
                raise InvalidInput.at(f"minutes.{i}.backends", "backend keys are 1-300 characters")
            if count < 0:
                raise InvalidInput.at(f"minutes.{i}.backends", "counts must not be negative")
        if not m.domain or len(m.domain) > 253:
            raise InvalidInput.at(f"minutes.{i}.domain", "must be 1-253 characters")
        if not m.site or len(m.site) > 63:
            raise InvalidInput.at(f"minutes.{i}.site", "must be 1-63 characters")
        minute = _minute(m.minute)
        if (m.domain, minute) in seen:
            raise InvalidInput.at(f"minutes.{i}", "this domain and minute are listed twice")
        seen.add((m.domain, minute))
        existing = tx.session.get(EdgeAnalyticsRow, (row.id, m.domain, minute))
        if existing is None:
            existing = EdgeAnalyticsRow(node_id=row.id, domain=m.domain, minute=minute)
            tx.session.add(existing)
        existing.project_id = m.site
        existing.requests = m.requests
        existing.hits = m.hits
        existing.misses = m.misses
        existing.bytes_out = m.bytes_out
        existing.statuses = dict(m.statuses)
        existing.cache = dict(m.cache)
        existing.upstream_ms = list(m.upstream_ms)
        existing.request_ms = list(m.request_ms)
        existing.static = m.static
        existing.static_bytes = m.static_bytes
        existing.blocked = {str(k): v for k, v in m.blocked.items()}
        existing.countries = dict(m.countries)
        existing.backends = dict(m.backends)
        existing.bots = dict(m.bots)
    tx.session.flush()
    return len(body.minutes)


# For people ---------------------------------------------------------------------------------


def list_nodes(tx: Tx, snapshots: SnapshotCache) -> list[EdgeNode]:
    _require_viewer(tx)
    desired = tx.current_revision()
    now = utcnow()
    rows = tx.session.scalars(select(EdgeNodeRow).order_by(EdgeNodeRow.name))
    return [_to_model(tx, snapshots, r, desired, now) for r in rows]


def get_node(tx: Tx, snapshots: SnapshotCache, node_id: str) -> EdgeNode:
    _require_viewer(tx)
    return node_model(tx, snapshots, node_row(tx, node_id))


def delete_node(tx: Tx, node_id: str) -> None:
    tx.actor.require_platform_admin()
    row = node_row(tx, node_id)
    tx.session.execute(delete(BackendHealthRow).where(BackendHealthRow.node_id == row.id))
    tx.session.execute(delete(PurgeAckRow).where(PurgeAckRow.node_id == row.id))
    tx.session.delete(row)
