"""Drills: a DR config's primary taken out on purpose, spec 004's recovery procedure followed
step by step, the real RTO and RPO measured against the config's targets, the primary
restored, and a report kept (``DRDrillRow``).

The steps, each with its start, end and details (``model.dr.STEPS``):

1. **alert_assessment**: the primary's and the backup's health as the edge sees them
   (``dr.health``) and the project's open alerts. A drill stops here when either side is down
   (the primary: that is the monitor's business; the backup: moving traffic there would take
   the service down).
2. **notification**: a message through each of the project's enabled notification channels
   (or the note that it has none).
3. **impact_analysis**: the load balancers that fail over (backends in both data centers),
   their backends on each side, the domains served through them, the live edge nodes, and the
   backup data center's free capacity against what the primary's servers use. Nothing to fail
   over stops the drill.
4. **recovery_initiation**: the config goes to ``drill``: the primary's backends drained
   (no new request, those in flight finish), the backup's promoted, in one revision.
5. **service_restoration**: until every live edge node has applied that revision and a real
   request through each of them to a domain of the project was answered (below 500) by a
   backup data center's backend (``dr.probe``: the node's own count of the requests each
   backend answered is the evidence). **RTO** = recovery initiation -> the last node so
   served.
6. **verification**: the backup's backends up in the live nodes' health reports, the nodes'
   uptime probes of the domain, the drill's own answers; and the **RPO** (``dr.rpo``).
7. **documentation**: the report; the outcome through the channels again.

The primary is then restored (its own revision, ``served`` when every node applied it),
whatever happened: a drill that fails midway never leaves the config failed over. A drill
that misses a target, or a step that fails, is ``failed``; one that could not complete
(an error) is ``error``. While it runs, the drill notes that it is alive in its report
(``alive_at``): the monitor ends a drill whose process went away (``dr.monitor``).

The steps themselves are ``edgeplane.dr.drill_steps``. ``start`` checks and records a drill
(409 when it cannot run now: a drill running, a failover open, the primary down);
``execute`` claims a queued drill (one process only, across replicas) and runs it;
``run_drill`` does both. ``due_drills`` lists the configs whose scheduled drill is due
(``drill_every_days``); ``Drills`` is the runner's job: the queued drills, then the due ones.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from edgeplane.dr import live, observe
from edgeplane.dr import state as cycle
from edgeplane.dr.drill_steps import (
    Run,
    Stop,
    analyse,
    assess,
    document,
    initiate,
    notify,
    restore_primary,
    restore_service,
    verdict,
    verify,
)
from edgeplane.dr.monitor import ABANDON_S
from edgeplane.errors import Conflict
from edgeplane.model.dr import STEPS
from edgeplane.model.enums import Role
from edgeplane.settings import Settings
from edgeplane.store.actor import PLATFORM_PROJECT, Actor
from edgeplane.store.db import Database
from edgeplane.store.dr_tables import DRDrillRow
from edgeplane.store.tables import DRConfigRow, utcnow

log = logging.getLogger("edgeplane.dr")


def new_drill_id(now: datetime) -> str:
    return f"drill-{now:%Y%m%dT%H%M%S%f}Z-{secrets.token_hex(3)}"


def start(
    db: Database,
    settings: Settings,
    project: str,
    dr_id: str,
    actor: Actor,
    trigger: str = "manual",
) -> str:
    """Record a new drill of the config (``queued``, for the runner); Conflict (409) naming why
    it cannot run now: a drill queued or running already, a failover open, the primary (or the
    backup) down. A drill queued for longer than ``ABANDON_S`` that no process took is ended."""
    now = utcnow()
    with db.transaction(actor, project) as tx:
        tx.actor.require(project, Role.EDITOR)
        cfg = live.config(tx, dr_id)
        row = live.state_row(tx, dr_id)
        for stale in tx.session.scalars(
            select(DRDrillRow).where(
                DRDrillRow.project_id == project,
                DRDrillRow.dr_id == dr_id,
                DRDrillRow.status == "queued",
                DRDrillRow.started_at < now - timedelta(seconds=ABANDON_S),
            )
        ):
            stale.status, stale.finished_at = "error", now
            stale.message = "never started: no control plane took it within 2 minutes"
        running = tx.session.scalars(
            select(DRDrillRow.id).where(
                DRDrillRow.project_id == project,
                DRDrillRow.dr_id == dr_id,
                DRDrillRow.status.in_(("queued", "running")),
            )
        ).first()
        if running is not None:
            raise Conflict(f"cannot drill DR config {dr_id!r}: drill {running} is running")
        seen = observe.observe(
            tx.session, [cfg], now, metrics_max_age_s=settings.metrics_max_age_s
        )[(project, dr_id)]
        events = live.episode_events(tx, dr_id, row.episode)
        view = cycle.observe(live.view_of(row, events), seen.primary.state, seen.primary.since, now)
        t = cycle.drill_start(view)
        if isinstance(t, str):
            raise Conflict(f"cannot drill DR config {dr_id!r}: {t} ({seen.primary.reason})")
        if seen.backup.state == "down":
            raise Conflict(
                f"cannot drill DR config {dr_id!r}: the backup data center {cfg.backup_dc} is "
                f"down ({seen.backup.reason})"
            )
        drill_id = new_drill_id(now)
        tx.session.add(
            DRDrillRow(
                id=drill_id,
                project_id=project,
                dr_id=dr_id,
                trigger=trigger,
                actor=actor.name,
                started_at=now,
                status="queued",
                steps=[{"step": s, "ok": None, "detail": {}} for s in STEPS],
                rto_target_s=cfg.rto * 60.0,
                rpo_target_s=cfg.rpo * 60.0,
                message="",
                report={"alive_at": now.isoformat()},
            )
        )
        live.add_event(
            tx,
            cfg,
            drill_id,
            "drill",
            f"drill {drill_id} started by {actor.name} ({trigger})",
            {"drill": drill_id, "phase": "started", "trigger": trigger},
            actor=actor.name,
            at=now,
        )
    return drill_id


# Running ------------------------------------------------------------------------------------


def _run_step(run: Run, name: str, fn: Callable[[Run], tuple[bool, dict[str, Any]]]) -> bool:
    entry = run.step(name)
    started = utcnow()
    entry.update(started_at=started.isoformat(), ok=None)
    run.save()
    clock = time.monotonic()
    try:
        ok, detail = fn(run)
    except Stop as stop:
        entry.update(
            ended_at=utcnow().isoformat(),
            seconds=round(time.monotonic() - clock, 3),
            ok=False,
            detail={**stop.detail, "stopped": stop.message},
        )
        run.save()
        raise
    except Exception as exc:
        entry.update(
            ended_at=utcnow().isoformat(),
            seconds=round(time.monotonic() - clock, 3),
            ok=False,
            detail={"error": f"{type(exc).__name__}: {exc}"},
        )
        run.save()
        raise
    entry.update(
        ended_at=utcnow().isoformat(),
        seconds=round(time.monotonic() - clock, 3),
        ok=ok,
        detail=detail,
    )
    run.save()
    return ok


PLAN: tuple[tuple[str, Callable[[Run], tuple[bool, dict[str, Any]]]], ...] = (
    ("alert_assessment", assess),
    ("notification", notify),
    ("impact_analysis", analyse),
    ("recovery_initiation", initiate),
    ("service_restoration", restore_service),
    ("verification", verify),
)


def claim(db: Database, drill_id: str) -> bool:
    """Take a queued drill for this process: one process only, whatever the replicas."""
    with db.transaction(live.MONITOR, PLATFORM_PROJECT) as tx:
        taken = tx.session.execute(
            update(DRDrillRow)
            .where(DRDrillRow.id == drill_id, DRDrillRow.status == "queued")
            .values(status="running", report={"alive_at": utcnow().isoformat()})
        )
        return bool(getattr(taken, "rowcount", 0))


def execute(db: Database, settings: Settings, drill_id: str) -> str:
    """Claim and run a drill recorded by ``start``; its final status."""
    if not claim(db, drill_id):
        with db.read(live.MONITOR, PLATFORM_PROJECT) as tx:
            row = tx.session.get(DRDrillRow, drill_id)
            return row.status if row is not None else "missing"
    with db.read(live.MONITOR, PLATFORM_PROJECT) as tx:
        row = tx.session.get(DRDrillRow, drill_id)
        if row is None or row.status != "running":
            return row.status if row is not None else "missing"
        run = Run(
            db=db,
            settings=settings,
            drill=drill_id,
            project=row.project_id,
            dr_id=row.dr_id,
            actor=row.actor,
            rto_target_s=row.rto_target_s,
            rpo_target_s=row.rpo_target_s,
            steps=[dict(s) for s in row.steps or []],
            report=dict(row.report or {}),
        )
    status, message = "error", ""
    stopped: str | None = None
    try:
        for name, fn in PLAN:
            try:
                _run_step(run, name, fn)
            except Stop as stop:
                stopped = stop.message
                break
        if stopped is not None:
            for s in run.steps:
                if s.get("started_at") is None:
                    s["detail"] = {"skipped": stopped}
    except Exception as exc:  # an error midway: restore, report, never leave it failed over
        log.exception("drill %s failed", drill_id)
        message = f"the drill could not complete: {type(exc).__name__}: {exc}"
    finally:
        try:
            run.restored = restore_primary(run, f"drill {drill_id} over")
        except Exception as exc:
            log.exception("drill %s: restoring the primary failed", drill_id)
            run.restored = {"restored": False, "error": f"{type(exc).__name__}: {exc}"}
    if not message:
        try:
            _run_step(run, "documentation", document)
            status, message = verdict(run)
            if stopped is not None:
                message = f"stopped: {stopped}; {message}"
        except Exception as exc:
            log.exception("drill %s: the report failed", drill_id)
            status, message = "error", f"the report could not be made: {exc}"
    _finish(run, status, message)
    return status


def _finish(run: Run, status: str, message: str) -> None:
    now = utcnow()
    with run.db.transaction(live.MONITOR, run.project) as tx:
        row = tx.session.get(DRDrillRow, run.drill)
        if row is None:
            return
        run.report["alive_at"] = now.isoformat()
        run.report["restore"] = run.restored
        row.steps = [dict(s) for s in run.steps]
        row.report = dict(run.report)
        row.rto_s, row.rpo_s = run.rto_s, run.rpo_s
        row.status, row.message, row.finished_at = status, message, now
        cfg = live.config(tx, run.dr_id)
        live.add_event(
            tx,
            cfg,
            run.drill,
            "drill",
            f"drill {run.drill} {status}: {message}",
            {
                "drill": run.drill,
                "phase": "finished",
                "status": status,
                "rto_s": run.rto_s,
                "rpo_s": run.rpo_s,
                "rto_target_s": run.rto_target_s,
                "rpo_target_s": run.rpo_target_s,
            },
            actor=run.actor,
            at=now,
        )
    log.info("drill %s of %s/%s %s: %s", run.drill, run.project, run.dr_id, status, message)


def run_drill(
    db: Database,
    settings: Settings,
    project: str,
    dr_id: str,
    actor: Actor,
    trigger: str = "manual",
) -> str:
    """Start and run a drill to its end; its id (``live.get_drill`` reads its report)."""
    drill_id = start(db, settings, project, dr_id, actor, trigger)
    execute(db, settings, drill_id)
    return drill_id


def due_drills(
    db: Database, settings: Settings, now: datetime | None = None
) -> list[tuple[str, str]]:
    """(project, DR config id) of the configs whose scheduled drill is due: every
    ``drill_every_days`` after the last drill (or after the config was made), when no drill
    runs and no failover is open."""
    now = now or utcnow()
    out = []
    with db.read(live.MONITOR, PLATFORM_PROJECT) as tx:
        configs = list(
            tx.session.scalars(
                select(DRConfigRow)
                .where(DRConfigRow.drill_every_days.is_not(None))
                .order_by(DRConfigRow.project_id, DRConfigRow.id)
            )
        )
        states = observe.states_of(tx.session)
        last: dict[tuple[str, str], DRDrillRow] = {}
        running: set[tuple[str, str]] = set()
        for d in tx.session.scalars(select(DRDrillRow).order_by(DRDrillRow.started_at)):
            last[(d.project_id, d.dr_id)] = d
            if d.status in ("queued", "running"):
                running.add((d.project_id, d.dr_id))
        for cfg in configs:
            key = (cfg.project_id, cfg.id)
            st = states.get(key)
            if key in running or (st is not None and st.status != "normal"):
                continue
            due = live.next_drill_due(cfg, last.get(key))
            if due is not None and due <= now:
                out.append(key)
    return out


def run_due_drills(
    db: Database,
    settings: Settings,
    stopping: threading.Event | None = None,
    now: datetime | None = None,
) -> list[str]:
    """The schedule's job body: run each due drill (``due_drills``) to its end, one after the
    other; the ids of those run. A config that cannot be drilled now (a failover open, the
    primary down: 409) is skipped and tried again at the next pass."""
    done: list[str] = []
    for project, dr_id in due_drills(db, settings, now):
        if stopping is not None and stopping.is_set():
            break
        try:
            done.append(run_drill(db, settings, project, dr_id, live.MONITOR, "schedule"))
        except Conflict as exc:
            log.info("scheduled drill of %s/%s not now: %s", project, dr_id, exc.message)
    return done


def queued(db: Database) -> list[str]:
    """The drills waiting for a process to run them, oldest first."""
    with db.read(live.MONITOR, PLATFORM_PROJECT) as tx:
        return list(
            tx.session.scalars(
                select(DRDrillRow.id)
                .where(DRDrillRow.status == "queued")
                .order_by(DRDrillRow.started_at)
            )
        )


class Drills:
    """The runner's job (every second): the drills asked for through the API, then, every
    ``DUE_EVERY_S``, the scheduled ones that are due."""

    DUE_EVERY_S = 60.0

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db, self.settings = db, settings
        self._due_checked: float | None = None

    def __call__(self, stopping: threading.Event | None = None) -> list[str]:
        done: list[str] = []
        for drill_id in queued(self.db):
            if stopping is not None and stopping.is_set():
                return done
            execute(self.db, self.settings, drill_id)
            done.append(drill_id)
        now = time.monotonic()
        if self._due_checked is None or now - self._due_checked >= self.DUE_EVERY_S:
            self._due_checked = now
            done += run_due_drills(self.db, self.settings, stopping)
        return done
