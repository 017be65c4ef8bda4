"""The steps of a drill (``edgeplane.dr.drill``), each a function of the running drill
(``Run``) that returns whether it went well and its details, or raises ``Stop`` when the
drill must not go on; and the restoration of the primary, which ``drill.execute`` runs
whatever happened. The steps are spec 004's system recovery procedure; ``drill``'s docstring
says what each one does and measures.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import select

from edgeplane.dr import live, observe, probe, rpo
from edgeplane.dr import state as cycle
from edgeplane.notify.message import Event, Notification
from edgeplane.notify.send import send
from edgeplane.services import capacity, channels, liveness
from edgeplane.settings import Settings
from edgeplane.store.db import Database
from edgeplane.store.dr_tables import DRDrillRow
from edgeplane.store.monitoring_tables import ChannelRow, UptimeStateRow
from edgeplane.store.tables import (
    AlertRow,
    CDNConfigRow,
    DataCenterRow,
    DomainRow,
    LoadBalancerRow,
    utcnow,
)

log = logging.getLogger("edgeplane.dr")

ALIVE_EVERY_S = 5.0  # how often a running drill notes it is alive (at least)
MIN_WAIT_S = 60.0  # the least a drill waits for the backup to serve (and the primary again)
MAX_WAIT_S = 900.0
EVIDENCE_WAIT_S = 90.0  # for the nodes' analytics to show which backend answered
POLL_S = 0.1


class Stop(Exception):
    """A step found a reason not to go on: the drill stops there (``failed``)."""

    def __init__(self, message: str, detail: dict[str, Any]) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


def iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def wait_s(rto_target_s: float) -> float:
    """How long a drill waits for the backup to serve: twice the RTO, within bounds."""
    return max(MIN_WAIT_S, min(MAX_WAIT_S, 2 * rto_target_s))


# Starting -----------------------------------------------------------------------------------


@dataclass
class Run:
    db: Database
    settings: Settings
    drill: str
    project: str
    dr_id: str
    actor: str
    rto_target_s: float
    rpo_target_s: float
    steps: list[dict[str, Any]] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)
    impact: dict[str, Any] = field(default_factory=dict)
    initiated_at: datetime | None = None
    revision: int | None = None
    rto_s: float | None = None
    rpo_s: float | None = None
    restored: dict[str, Any] | None = None
    saved: float = 0.0

    def step(self, name: str) -> dict[str, Any]:
        return next(s for s in self.steps if s["step"] == name)

    def save(self, *, force: bool = True) -> None:
        """Write the steps and the report as they are (the drill's progress), noting it is
        alive; without ``force`` only every ``ALIVE_EVERY_S``."""
        if not force and time.monotonic() - self.saved < ALIVE_EVERY_S:
            return
        self.saved = time.monotonic()
        self.report["alive_at"] = utcnow().isoformat()
        with self.db.transaction(live.MONITOR, self.project) as tx:
            row = tx.session.get(DRDrillRow, self.drill)
            if row is not None:
                row.steps = [dict(s) for s in self.steps]
                row.report = dict(self.report)

    def config(self) -> Config:
        with self.db.read(live.MONITOR, self.project) as tx:
            row = live.config(tx, self.dr_id)
            return Config(row.id, row.name, row.primary_dc, row.backup_dc, row.failover_mode)


@dataclass(frozen=True)
class Config:
    """What a drill's report names of its DR config (read once, outside a transaction)."""

    id: str
    name: str
    primary_dc: str
    backup_dc: str
    failover_mode: str


def _health_doc(v: Any) -> dict[str, Any]:
    return {"state": v.state, "since": iso(v.since), "reason": v.reason}


def assess(run: Run) -> tuple[bool, dict[str, Any]]:
    now = utcnow()
    with run.db.read(live.MONITOR, run.project) as tx:
        cfg = live.config(tx, run.dr_id)
        seen = observe.observe(
            tx.session, [cfg], now, metrics_max_age_s=run.settings.metrics_max_age_s
        )[(run.project, run.dr_id)]
        alerts = [
            {
                "id": a.id,
                "kind": a.kind,
                "object": a.object_id,
                "severity": a.severity,
                "message": a.message,
            }
            for a in tx.session.scalars(
                select(AlertRow)
                .where(AlertRow.project_id == run.project, AlertRow.state == "firing")
                .order_by(AlertRow.created_at.desc())
                .limit(20)
            )
        ]
    detail = {
        "primary": _health_doc(seen.primary),
        "backup": _health_doc(seen.backup),
        "live_nodes": list(seen.live_nodes),
        "open_alerts": len(alerts),
        "alerts": alerts[:10],
    }
    if seen.primary.state == "down":
        raise Stop(f"the primary is down ({seen.primary.reason}): no drill now", detail)
    if seen.backup.state == "down":
        raise Stop(f"the backup is down ({seen.backup.reason}): no drill now", detail)
    return True, detail


def _notify(run: Run, event: Event, summary: str, details: dict[str, Any]) -> dict[str, Any]:
    with run.db.read(live.MONITOR, run.project) as tx:
        rows = list(
            tx.session.scalars(
                select(ChannelRow)
                .where(ChannelRow.project_id == run.project, ChannelRow.enabled)
                .order_by(ChannelRow.id)
            )
        )
        configs = [(r.id, r.kind, channels.config_of(tx, r)) for r in rows]
    if not configs:
        return {
            "channels": [],
            "note": f"no notification channel is configured in project {run.project!r}",
        }
    sent = []
    for channel_id, kind, config in configs:
        result = send(
            config,
            Notification(
                event=event,
                alert_id=run.drill,
                project=run.project,
                rule="DR drill",
                severity="info",
                object_id=run.dr_id,
                summary=summary,
                started_at=utcnow(),
                details=details,
            ),
        )
        sent.append(
            {
                "channel": channel_id,
                "kind": kind,
                "ok": result.ok,
                "error": result.error,
                "status": result.status,
                "ms": round(result.ms, 1),
            }
        )
    return {"channels": sent}


def notify(run: Run) -> tuple[bool, dict[str, Any]]:
    cfg = run.config()
    summary = (
        f"DR drill {run.drill} of {cfg.name} ({cfg.id}): the primary data center "
        f"{cfg.primary_dc} is drained and traffic moves to the backup {cfg.backup_dc}"
    )
    detail = _notify(run, "firing", summary, {"drill": run.drill, "dr_config": cfg.id})
    return all(c["ok"] for c in detail["channels"]), detail


def _site_lb(tx: Any, project: str) -> str | None:
    """The load balancer the project's domains are served through (``snapshot.build``'s
    choice): the CDN config's first load balancer origin, else with no CDN config the
    project's only load balancer."""
    cdn = tx.session.get(CDNConfigRow, project)
    if cdn is not None:
        for o in cdn.origins or []:
            if isinstance(o, dict) and o.get("load_balancer"):
                return str(o["load_balancer"])
        return None
    lbs = list(
        tx.session.scalars(select(LoadBalancerRow.id).where(LoadBalancerRow.project_id == project))
    )
    return lbs[0] if len(lbs) == 1 else None


def analyse(run: Run) -> tuple[bool, dict[str, Any]]:
    with run.db.read(live.MONITOR, run.project) as tx:
        cfg = live.config(tx, run.dr_id)
        sides = observe.sides_of(tx.session, [cfg])[(run.project, run.dr_id)]
        site_lb = _site_lb(tx, run.project)
        domains = sorted(
            tx.session.scalars(
                select(DomainRow.name).where(
                    DomainRow.project_id == run.project, DomainRow.status == "active"
                )
            )
        )
        primary = tx.session.get(DataCenterRow, (run.project, cfg.primary_dc))
        backup = tx.session.get(DataCenterRow, (run.project, cfg.backup_dc))
        used = capacity.allocated_in_data_center(tx, cfg.primary_dc)
        backup_used = capacity.allocated_in_data_center(tx, cfg.backup_dc)
        live_nodes = sorted(liveness.live_ids(tx))
        names = (cfg.primary_dc, cfg.backup_dc)
        tiers = (primary.tier if primary else None, backup.tier if backup else None)
        backup_total = capacity.of_row(backup) if backup is not None else None
    governed = sides.governed
    site_pool = next((p for p in governed if p.lb == site_lb), None)
    free = backup_total - backup_used if backup_total is not None else None
    short = used.fits_in(free) if free is not None else None
    detail: dict[str, Any] = {
        "load_balancers": [
            {"id": p.lb, "pool": p.pool, "primary": list(p.primary), "backup": list(p.backup)}
            for p in governed
        ],
        "site_load_balancer": site_lb,
        "domains": domains if site_pool is not None else [],
        "projects": [run.project] if site_pool is not None else [],
        "live_nodes": len(live_nodes),
        "capacity": {
            "primary_used": used.model_dump(),
            "backup_total": backup_total.model_dump() if backup_total is not None else None,
            "backup_free": free.model_dump() if free is not None else None,
            "fits": short is None,
        },
        "warnings": [],
    }
    if short is not None and free is not None:
        detail["warnings"].append(
            f"the backup data center has {getattr(free, short):g} {capacity.UNITS[short]} "
            f"free, less than the {getattr(used, short):g} the primary's servers use"
        )
    if tiers[0] is not None and tiers[1] is not None and tiers[1] < tiers[0]:
        detail["warnings"].append(
            f"the backup is tier {tiers[1]}, below the primary's tier {tiers[0]}"
        )
    run.report["load_balancers"] = detail["load_balancers"]
    if not governed:
        raise Stop(
            f"no load balancer of project {run.project!r} has backends in both "
            f"{names[0]} and {names[1]}: nothing fails over",
            detail,
        )
    if site_pool is not None and domains:
        run.impact = {
            "domain": domains[0],
            "pool": site_pool.pool,
            "backup_keys": list(site_pool.backup),
        }
    else:
        detail["warnings"].append(
            "no active domain is served through these load balancers: the drill can only "
            "check that the edge nodes applied the change"
        )
        run.impact = {"domain": None, "pool": None, "backup_keys": []}
    return True, detail


def initiate(run: Run) -> tuple[bool, dict[str, Any]]:
    now = utcnow()
    with run.db.transaction(live.MONITOR, run.project) as tx:
        cfg = live.config(tx, run.dr_id)
        row = live.state_row(tx, run.dr_id)
        events = live.episode_events(tx, run.dr_id, row.episode)
        t = cycle.drill_start(live.view_of(row, events))
        if isinstance(t, str):
            raise Stop(f"the config changed before the drill could start: {t}", {})
        row.episode = run.drill
        live.apply(
            tx,
            cfg,
            row,
            t,
            actor=run.actor,
            now=now,
            reason=f"drill {run.drill}",
            details={"drill": {"drill": run.drill, "phase": "initiated"}},
        )
        revision = tx.next_revision()
    run.initiated_at, run.revision = now, revision
    run.report["initiated_at"] = now.isoformat()
    pools = run.report.get("load_balancers") or []
    return True, {
        "revision": revision,
        "status": "drill",
        "active": "backup",
        "drained": [f"{p['pool']}/{k}" for p in pools for k in p["primary"]],
        "promoted": [f"{p['pool']}/{k}" for p in pools for k in p["backup"]],
    }


@dataclass
class NodeProbe:
    target: probe.Target
    acked_at: datetime | None = None
    answered_at: datetime | None = None
    status: int | None = None
    ms: float | None = None
    tries: int = 0
    answered: int = 0
    baseline: int | None = None
    counted: int | None = None
    evidence_at: datetime | None = None
    error: str | None = None
    served_by: str | None = None

    def doc(self) -> dict[str, Any]:
        return {
            "node": self.target.name,
            "acked_at": iso(self.acked_at),
            "answered_at": iso(self.answered_at),
            "status": self.status,
            "ms": round(self.ms, 1) if self.ms is not None else None,
            "tries": self.tries,
            "served_by": self.served_by,
            "backup_answered": (
                self.counted - self.baseline
                if self.counted is not None and self.baseline is not None
                else None
            ),
            "evidence_at": iso(self.evidence_at),
            "error": self.error,
        }


def _acks(run: Run, nodes: list[NodeProbe], revision: int) -> None:
    """Note the nodes that have applied ``revision`` and, for those, the backup's count of
    answered requests before any probe (the baseline)."""
    domain = run.impact.get("domain")
    with run.db.read(live.MONITOR, run.project) as tx:
        acks = {a.id: a for a in live.node_acks(tx, {n.target.id for n in nodes})}
        for n in nodes:
            a = acks.get(n.target.id)
            if n.acked_at is None and a is not None and (a.applied_revision or 0) >= revision:
                n.acked_at = a.applied_at or utcnow()
            if n.acked_at is not None and domain and n.baseline is None:
                assert run.initiated_at is not None
                n.baseline = probe.answered_by(
                    tx.session, n.target.id, domain, run.initiated_at, run.impact["backup_keys"]
                )


def restore_service(run: Run) -> tuple[bool, dict[str, Any]]:
    assert run.revision is not None and run.initiated_at is not None
    domain = run.impact.get("domain")
    with run.db.read(live.MONITOR, run.project) as tx:
        targets = probe.targets(tx.session, liveness.live_ids(tx))
    nodes = [NodeProbe(t) for t in targets]
    if not nodes:
        return False, {"nodes": [], "error": "no live edge node: nothing serves the traffic"}
    deadline = time.monotonic() + wait_s(run.rto_target_s)
    # verify=False: the probes ask our own edge nodes which backend answers, by address; the
    # certificate a node serves for the domain is not what a drill checks.
    with httpx.Client(follow_redirects=False, verify=False) as client:
        while time.monotonic() < deadline:
            _acks(run, nodes, run.revision)
            for n in nodes:
                if n.acked_at is None or not domain or n.answered_at is not None:
                    continue
                answer = probe.probe(
                    client, n.target, domain, f"{probe.PATH}{run.drill}-{n.target.name}-{n.tries}"
                )
                n.tries += 1
                n.status, n.ms, n.error = answer.status, answer.ms, answer.error
                if answer.served:
                    n.answered_at, n.served_by = utcnow(), answer.served_by
                    n.answered += 1
            done = [n.answered_at if domain else n.acked_at for n in nodes]
            if all(d is not None for d in done):
                break
            run.save(force=False)
            time.sleep(POLL_S)
    served = [n.answered_at if domain else n.acked_at for n in nodes]
    detail: dict[str, Any] = {"revision": run.revision, "domain": domain}
    if not all(s is not None for s in served):
        detail["nodes"] = [n.doc() for n in nodes]
        missing = [n.target.name for n, s in zip(nodes, served, strict=True) if s is None]
        detail["error"] = (
            f"not served by the backup within {wait_s(run.rto_target_s):g} s on: "
            + ", ".join(missing)
        )
        return False, detail
    served_at = max(s for s in served if s is not None)
    _record_served(run)
    evidence_ok = True
    if domain:
        evidence_ok = _evidence(run, nodes, domain)
    detail["nodes"] = [n.doc() for n in nodes]
    detail["served_at"] = served_at.isoformat()
    if not evidence_ok:
        lacking = [n.target.name for n in nodes if n.evidence_at is None]
        detail["error"] = (
            "answered, but no evidence within "
            f"{EVIDENCE_WAIT_S:g} s that a backup data center backend answered on: "
            + ", ".join(lacking)
        )
        return False, detail
    run.rto_s = round((served_at - run.initiated_at).total_seconds(), 3)
    detail["rto_s"] = run.rto_s
    return True, detail


def _record_served(run: Run) -> None:
    """``served`` in the timeline for the drill's move, once every live node applied it
    (unless the monitor wrote it already)."""
    with run.db.transaction(live.MONITOR, run.project) as tx:
        cfg = live.config(tx, run.dr_id)
        row = live.state_row(tx, run.dr_id)
        if row.episode != run.drill:
            return
        events = live.episode_events(tx, run.dr_id, run.drill)
        acks = live.node_acks(tx, liveness.live_ids(tx))
        live.record_served(tx, cfg, row, events, acks, utcnow())


def _evidence(run: Run, nodes: list[NodeProbe], domain: str) -> bool:
    """Wait until each node's analytics count the requests the backup's backends answered:
    grown since the baseline by at least the probes answered."""
    assert run.initiated_at is not None
    deadline = time.monotonic() + EVIDENCE_WAIT_S
    while True:
        with run.db.read(live.MONITOR, run.project) as tx:
            for n in nodes:
                if n.evidence_at is not None:
                    continue
                n.counted = probe.answered_by(
                    tx.session, n.target.id, domain, run.initiated_at, run.impact["backup_keys"]
                )
                if n.counted - (n.baseline or 0) >= max(1, n.answered):
                    n.evidence_at = utcnow()
        if all(n.evidence_at is not None for n in nodes):
            return True
        if time.monotonic() >= deadline:
            return False
        run.save(force=False)
        time.sleep(0.25)


def verify(run: Run) -> tuple[bool, dict[str, Any]]:
    now = utcnow()
    domain = run.impact.get("domain")
    with run.db.read(live.MONITOR, run.project) as tx:
        cfg = live.config(tx, run.dr_id)
        sides = observe.sides_of(tx.session, [cfg])[(run.project, run.dr_id)]
        live_names = observe.live_node_names(tx.session)
        reports = observe.reports_of(tx.session, [run.project])
        uptime = (
            [
                (u.node_id, u.kind, u.up)
                for u in tx.session.scalars(
                    select(UptimeStateRow).where(
                        UptimeStateRow.project_id == run.project, UptimeStateRow.target == domain
                    )
                )
            ]
            if domain
            else []
        )
    names = set(live_names.values())
    pools: list[dict[str, Any]] = []
    health_ok = True
    for p in sides.governed:
        per_node: dict[str, dict[str, str]] = {}
        for r in reports:
            if r.pool == p.pool and r.backend in p.backup and r.node in names:
                per_node.setdefault(r.node, {})[r.backend] = r.state
        down = sorted(n for n, states in per_node.items() if "up" not in states.values())
        health_ok = health_ok and not down
        pools.append({"pool": p.pool, "backup": list(p.backup), "nodes": per_node, "down": down})
    probes = [u for u in uptime if u[0] in live_names]
    uptime_down = [f"{live_names[node]} {kind}" for node, kind, up in probes if not up]
    restoration = run.step("service_restoration")
    answered = bool(restoration.get("ok"))
    point = rpo.measure(run.db, live.MONITOR, now)
    run.rpo_s = point.seconds
    run.report["rpo"] = {"seconds": point.seconds, "message": point.message, **point.detail}
    detail = {
        "backup_health": pools,
        "backup_health_ok": health_ok,
        "uptime_probes": len(probes),
        "uptime_down": uptime_down,
        "drill_probes_answered": answered,
        "rpo_s": point.seconds,
        "rpo": point.message,
        "rpo_sources": point.detail,
    }
    if not any(p["nodes"] for p in pools):
        detail["note"] = "no edge node reports active health checks of the backup's backends"
    return health_ok and not uptime_down and answered, detail


def restore_primary(run: Run, why: str) -> dict[str, Any]:
    """Traffic back to the primary (when this drill still holds the config), waiting until
    every live node serves it."""
    now = utcnow()
    with run.db.transaction(live.MONITOR, run.project) as tx:
        cfg = live.config(tx, run.dr_id)
        row = live.state_row(tx, run.dr_id)
        if row.status != "drill" or row.episode != run.drill:
            return {"restored": False, "note": "the config was no longer held by this drill"}
        live.apply(
            tx,
            cfg,
            row,
            cycle.DRILL_END,
            actor=run.actor,
            now=now,
            reason=why,
            details={"restored": {"drill": run.drill, "why": why}},
        )
        revision = tx.next_revision()
    out: dict[str, Any] = {"restored": True, "at": now.isoformat(), "revision": revision}
    deadline = time.monotonic() + MIN_WAIT_S
    while time.monotonic() < deadline:
        with run.db.transaction(live.MONITOR, run.project) as tx:
            cfg = live.config(tx, run.dr_id)
            row = live.state_row(tx, run.dr_id)
            events = live.episode_events(tx, run.dr_id, run.drill)
            acks = live.node_acks(tx, liveness.live_ids(tx))
            served = live.served_at(now, revision, acks, utcnow())
            if served is not None:
                live.record_served(tx, cfg, row, events, acks, utcnow())
                out["served_at"] = served.isoformat()
                out["seconds"] = round((served - now).total_seconds(), 3)
                return out
        run.save(force=False)
        time.sleep(POLL_S)
    out["error"] = f"not every live edge node applied revision {revision} within {MIN_WAIT_S:g} s"
    return out


def verdict(run: Run) -> tuple[str, str]:
    """The drill's status and its one-line message."""
    parts = []
    rto_ok = run.rto_s is not None and run.rto_s <= run.rto_target_s
    rpo_ok = run.rpo_s is not None and run.rpo_s <= run.rpo_target_s
    parts.append(
        f"RTO {run.rto_s:.2f} s (target {run.rto_target_s:g} s): {'PASS' if rto_ok else 'FAIL'}"
        if run.rto_s is not None
        else f"RTO not measured (target {run.rto_target_s:g} s): FAIL"
    )
    parts.append(
        f"RPO {run.rpo_s:.1f} s (target {run.rpo_target_s:g} s): {'PASS' if rpo_ok else 'FAIL'}"
        if run.rpo_s is not None
        else f"RPO unknown (target {run.rpo_target_s:g} s): FAIL: "
        + str((run.report.get("rpo") or {}).get("message") or "not measured")
    )
    failed_steps = [s["step"] for s in run.steps if s.get("ok") is False]
    if failed_steps:
        parts.append("failed steps: " + ", ".join(failed_steps))
    ok = rto_ok and rpo_ok and not failed_steps
    return ("passed" if ok else "failed"), "; ".join(parts)


def document(run: Run) -> tuple[bool, dict[str, Any]]:
    status, message = verdict(run)
    cfg = run.config()
    rto_ok = run.rto_s is not None and run.rto_s <= run.rto_target_s
    rpo_ok = run.rpo_s is not None and run.rpo_s <= run.rpo_target_s
    run.report.update(
        dr_config={
            "id": cfg.id,
            "name": cfg.name,
            "primary_dc": cfg.primary_dc,
            "backup_dc": cfg.backup_dc,
            "failover_mode": cfg.failover_mode,
        },
        rto={"measured_s": run.rto_s, "target_s": run.rto_target_s, "ok": rto_ok},
        rpo={
            **(run.report.get("rpo") or {}),
            "measured_s": run.rpo_s,
            "target_s": run.rpo_target_s,
            "ok": rpo_ok,
        },
        steps=[
            {"step": s["step"], "seconds": s.get("seconds"), "ok": s.get("ok")} for s in run.steps
        ],
        restore=run.restored,
        status=status,
        summary=message,
    )
    sent = _notify(
        run,
        "resolved",
        f"DR drill {run.drill} of {cfg.name} ({cfg.id}) {status}: {message}",
        {"drill": run.drill, "dr_config": cfg.id, "status": status},
    )
    return True, {"status": status, "summary": message, "notification": sent}
