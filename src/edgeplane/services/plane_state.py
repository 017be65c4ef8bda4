"""The control plane's state as Prometheus metrics, read from the database at scrape time.

A Prometheus collector (``PlaneStateCollector``): each scrape reads the revision, the edge
nodes (known, live, each node's applied revision, last propagation and apply time, heartbeat
age), the certificates (by state, renewals failing, each served certificate's expiry), the
background jobs' lag (from the runner) and the database connection pool. Reads take a few
narrow queries (no certificate bodies), so a scrape of a control plane with 10,000 domains
stays cheap; nothing is kept between scrapes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.pool import QueuePool

from edgeplane.certificates import versions
from edgeplane.certificates.versions import ACTIVE
from edgeplane.services import liveness
from edgeplane.services.runner import Runner
from edgeplane.store.actor import LOCAL, PLATFORM_PROJECT
from edgeplane.store.db import Database
from edgeplane.store.tables import CertificateRow, EdgeNodeRow, utcnow


def _epoch(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


class PlaneStateCollector(Collector):
    def __init__(self, db: Database, runner: Runner | None = None) -> None:
        self.db = db
        self.runner = runner

    def collect(self) -> Iterator[Metric]:
        yield from self._nodes()
        yield from self._certificates()
        yield from self._jobs()
        yield from self._pool()

    def _nodes(self) -> Iterator[Metric]:
        now = utcnow()
        revision = self.db.current_revision()
        with self.db.read(LOCAL, PLATFORM_PROJECT) as tx:
            live = liveness.live_ids(tx)
            nodes = tx.session.execute(
                select(
                    EdgeNodeRow.id,
                    EdgeNodeRow.name,
                    EdgeNodeRow.region,
                    EdgeNodeRow.applied_revision,
                    EdgeNodeRow.propagation_ms,
                    EdgeNodeRow.apply_ms,
                    EdgeNodeRow.heartbeat_at,
                )
            ).all()
        yield GaugeMetricFamily(
            "edgeplane_revision", "The newest revision of the desired state", value=revision
        )
        yield GaugeMetricFamily("edgeplane_edge_nodes", "Edge nodes registered", value=len(nodes))
        yield GaugeMetricFamily(
            "edgeplane_edge_nodes_live",
            "Edge nodes live: heartbeat fresh and healthy (answered by GeoDNS)",
            value=sum(1 for n in nodes if n.id in live),
        )
        labels = ["node", "region"]
        applied = GaugeMetricFamily(
            "edgeplane_edge_node_applied_revision",
            "The revision an edge node serves",
            labels=labels,
        )
        behind = GaugeMetricFamily(
            "edgeplane_edge_node_revisions_behind",
            "Revisions between the newest and the one an edge node serves",
            labels=labels,
        )
        last_propagation = GaugeMetricFamily(
            "edgeplane_edge_node_last_propagation_seconds",
            "Commit to acknowledgement of the revision an edge node serves",
            labels=labels,
        )
        last_apply = GaugeMetricFamily(
            "edgeplane_edge_node_last_apply_seconds",
            "An edge node's last apply (render, check, swap, reload, probe)",
            labels=labels,
        )
        heartbeat = GaugeMetricFamily(
            "edgeplane_edge_node_heartbeat_age_seconds",
            "Time since an edge node's last heartbeat",
            labels=labels,
        )
        up = GaugeMetricFamily(
            "edgeplane_edge_node_live", "1 when an edge node is live, else 0", labels=labels
        )
        for n in nodes:
            values = [n.name, n.region]
            up.add_metric(values, 1 if n.id in live else 0)
            if n.applied_revision is not None:
                applied.add_metric(values, n.applied_revision)
                behind.add_metric(values, max(0, revision - n.applied_revision))
            if n.propagation_ms is not None:
                last_propagation.add_metric(values, n.propagation_ms / 1000)
            if n.apply_ms is not None:
                last_apply.add_metric(values, n.apply_ms / 1000)
            if n.heartbeat_at is not None:
                heartbeat.add_metric(values, max(0.0, (now - n.heartbeat_at).total_seconds()))
        yield from (up, applied, behind, last_propagation, last_apply, heartbeat)

    def _certificates(self) -> Iterator[Metric]:
        with self.db.read(LOCAL, PLATFORM_PROJECT) as tx:
            counts = tx.session.execute(
                select(CertificateRow.status, func.count()).group_by(CertificateRow.status)
            ).all()
            served = versions.served_expiries(tx.session, utcnow())
            renewal = tx.session.execute(
                select(CertificateRow.renewal).where(CertificateRow.status == ACTIVE)
            ).scalars()
            failing = sum(
                1
                for r in renewal
                if r and int(r.get("attempts") or 0) > 0 and not r.get("renewed_by")
            )
        by_status = GaugeMetricFamily(
            "edgeplane_certificates", "Certificate versions by status", labels=["status"]
        )
        for status, count in counts:
            by_status.add_metric([status], count)
        yield by_status
        yield GaugeMetricFamily(
            "edgeplane_certificate_renewals_failing",
            "Active certificates whose last renewal attempt failed (retried with backoff)",
            value=failing,
        )
        expiry = GaugeMetricFamily(
            "edgeplane_certificate_expiry_timestamp_seconds",
            "When the certificate the edge serves for a domain expires (Unix time)",
            labels=["project", "domain"],
        )
        for (project, domain), not_after in served.items():
            expiry.add_metric([project, domain], _epoch(not_after))
        yield expiry

    def _jobs(self) -> Iterator[Metric]:
        if self.runner is None:
            return
        lag = GaugeMetricFamily(
            "edgeplane_background_job_lag_seconds",
            "How late a background job is past its next due start (0: on time)",
            labels=["job"],
        )
        for job, seconds in self.runner.lag().items():
            lag.add_metric([job], seconds)
        yield lag

    def _pool(self) -> Iterator[Metric]:
        pool = self.db.engine.pool
        if not isinstance(pool, QueuePool):
            return  # an in-memory SQLite database: one connection, nothing to watch
        size = GaugeMetricFamily(
            "edgeplane_db_pool_size", "Connections the database pool keeps", value=pool.size()
        )
        used = GaugeMetricFamily(
            "edgeplane_db_pool_connections",
            "Database connections by state (in_use, idle, overflow)",
            labels=["state"],
        )
        used.add_metric(["in_use"], pool.checkedout())
        used.add_metric(["idle"], pool.checkedin())
        used.add_metric(["overflow"], max(0, pool.overflow()))
        yield size
        yield used
