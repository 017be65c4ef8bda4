"""The control plane's replicas: who holds the runner lease, and the answering replica's jobs."""

from __future__ import annotations

from edgeplane.model.control_plane import ControlPlaneStatus, JobState, Leader
from edgeplane.services import leases
from edgeplane.services.runner import LEASE, Runner
from edgeplane.store.actor import Actor
from edgeplane.store.db import Database
from edgeplane.store.tables import utcnow


def status(db: Database, actor: Actor, runner: Runner | None) -> ControlPlaneStatus:
    actor.require_platform_admin()
    row = leases.current(db, LEASE)
    leader = None
    if row is not None:
        info = row.info or {}
        leader = Leader(
            holder=row.holder,
            epoch=row.epoch,
            since=row.acquired_at,
            renewed_at=row.renewed_at,
            expires_at=row.expires_at,
            live=row.expires_at > utcnow(),
            url=str(info.get("url") or ""),
            version=str(info.get("version") or ""),
        )
    lag = runner.lag() if runner is not None else {}
    jobs = [
        JobState(name=job.name, interval_s=job.interval_s, lag_s=lag.get(job.name))
        for job in (runner.jobs if runner is not None else [])
    ]
    replica = runner.leadership.holder if runner is not None and runner.leadership else ""
    return ControlPlaneStatus(
        replica=replica,
        leading=bool(runner is not None and runner.leading),
        leader=leader,
        jobs=jobs,
    )
