"""The DR monitor: every second (a job of the control plane's runner), each DR config's
primary is judged from what the edge sees (``dr.health``, read in bulk by ``dr.observe``) and
the config's cycle advanced (``dr.state``): failover after ``Settings.dr_detect_s`` of a
down primary (or a pending one for an operator to confirm), failback after
``Settings.dr_failback_after_s`` of a healthy one, ``served`` once every live edge node has
applied a move. A drill whose process went away (it holds the config in ``drill`` but has
not noted it is alive for ``ABANDON_S``, or no longer runs) is ended: traffic returns to the
primary.

A pass reads everything in one read transaction and writes only the configs that change,
each in a transaction of its own that re-reads the state under its lock and decides again
(``dr.live``): two monitors (replicas) or a monitor and an operator never take a step twice.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import select

from edgeplane.dr import live, observe
from edgeplane.dr import state as cycle
from edgeplane.dr.health import Verdict
from edgeplane.services import liveness
from edgeplane.settings import Settings
from edgeplane.store.actor import PLATFORM_PROJECT
from edgeplane.store.db import Database
from edgeplane.store.dr_tables import DRDrillRow, DREventRow, DRStateRow
from edgeplane.store.tables import DRConfigRow, utcnow

log = logging.getLogger("edgeplane.dr")

ABANDON_S = 120.0  # a running drill notes it is alive every few seconds (dr.drill)


def policy(cfg: DRConfigRow, settings: Settings) -> cycle.Policy:
    return cycle.Policy(
        failover_mode=cfg.failover_mode,
        failback_mode=cfg.failback_mode,
        detect_s=settings.dr_detect_s,
        failback_after_s=settings.dr_failback_after_s,
    )


def alive_at(drill: DRDrillRow) -> datetime:
    """When a running drill last noted it is alive."""
    text = (drill.report or {}).get("alive_at")
    try:
        return datetime.fromisoformat(text) if isinstance(text, str) else drill.started_at
    except ValueError:
        return drill.started_at


def abandoned(row: DRStateRow, running: dict[str, datetime], now: datetime) -> bool:
    """Whether the drill holding ``row`` is gone: not running, or silent for ``ABANDON_S``
    (``running``: drill id -> when it was last alive)."""
    if row.status != "drill":
        return False
    alive = running.get(row.episode or "")
    return alive is None or now - alive > timedelta(seconds=ABANDON_S)


def run_once(db: Database, settings: Settings, now: datetime | None = None) -> int:
    """One pass over every DR config; the number of steps taken (events written)."""
    now = now or utcnow()
    with db.read(live.MONITOR, PLATFORM_PROJECT) as tx:
        configs = list(
            tx.session.scalars(select(DRConfigRow).order_by(DRConfigRow.project_id, DRConfigRow.id))
        )
        if not configs:
            return 0
        states = observe.states_of(tx.session)
        seen = observe.observe(
            tx.session, configs, now, metrics_max_age_s=settings.metrics_max_age_s
        )
        episodes = sorted({s.episode for s in states.values() if s.episode})
        events: dict[str, list[DREventRow]] = {}
        if episodes:
            for e in tx.session.scalars(
                select(DREventRow).where(DREventRow.episode.in_(episodes)).order_by(DREventRow.id)
            ):
                events.setdefault(e.episode or "", []).append(e)
        acks = live.node_acks(tx, liveness.live_ids(tx))
        running = {
            d.id: alive_at(d)
            for d in tx.session.scalars(select(DRDrillRow).where(DRDrillRow.status == "running"))
        }
        work: list[tuple[str, str, Verdict, str]] = []
        for cfg in configs:
            key = (cfg.project_id, cfg.id)
            row = states.get(key)
            episode = events.get(row.episode or "", []) if row is not None else []
            backup = seen[key].backup.state
            view = replace(live.view_of(row, episode), backup_health=backup)
            verdict = seen[key].primary
            after = cycle.observe(view, verdict.state, verdict.since, now)
            switch = live.pending_switch(episode)
            due = (
                row is None
                or after != view
                or cycle.decide(after, policy(cfg, settings), now) is not None
                or (row.status == "drill" and abandoned(row, running, now))
                or (
                    switch is not None
                    and live.served_at(switch.at, int(switch.detail["revision"]), acks, now)
                    is not None
                )
            )
            if due:
                work.append((cfg.project_id, cfg.id, verdict, backup))
    steps = 0
    for project, dr_id, verdict, backup_health in work:
        try:
            steps += step(db, settings, project, dr_id, verdict, now, backup_health=backup_health)
        except Exception:
            log.exception("DR config %s/%s: the monitor's step failed", project, dr_id)
    return steps


def step(
    db: Database,
    settings: Settings,
    project: str,
    dr_id: str,
    verdict: Verdict,
    now: datetime,
    *,
    backup_health: str = "unknown",
) -> int:
    """Advance one config under its state's lock; the number of events written."""
    with db.transaction(live.MONITOR, project) as tx:
        cfg = tx.session.get(DRConfigRow, (project, dr_id))
        if cfg is None:
            return 0
        row = live.state_row(tx, dr_id)
        episode = live.episode_events(tx, dr_id, row.episode)
        view = replace(live.view_of(row, episode), backup_health=backup_health)
        view = cycle.observe(view, verdict.state, verdict.since, now)
        live.set_health(row, view, verdict.reason, verdict.detail)
        written = 0
        if row.status == "drill":
            drill = tx.session.get(DRDrillRow, row.episode) if row.episode else None
            running = {drill.id: alive_at(drill)} if drill and drill.status == "running" else {}
            if abandoned(row, running, now):
                why = "the drill stopped before it restored the primary"
                if drill is not None and drill.status == "running":
                    why = f"abandoned (silent for {ABANDON_S:g} s): traffic returned to the primary"
                    drill.status, drill.finished_at, drill.message = "error", now, why
                restored = live.apply(
                    tx,
                    cfg,
                    row,
                    cycle.DRILL_END,
                    actor=live.MONITOR.name,
                    now=now,
                    reason=why,
                    details={"restored": {"abandoned": True}},
                )
                written += len(restored)
                log.warning("DR config %s/%s: %s", project, dr_id, why)
        else:
            t = cycle.decide(view, policy(cfg, settings), now)
            if t is not None:
                written += len(
                    live.apply(
                        tx, cfg, row, t, actor=live.MONITOR.name, now=now, health=verdict.detail
                    )
                )
                log.warning("DR config %s/%s: %s", project, dr_id, t.message)
        episode = live.episode_events(tx, dr_id, row.episode)
        acks = live.node_acks(tx, liveness.live_ids(tx))
        if live.record_served(tx, cfg, row, episode, acks, now) is not None:
            written += 1
        return written
