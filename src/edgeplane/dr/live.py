"""The live side of a DR config, read and written: its state, its timeline, its drills.

Every change of a config's state goes through ``apply`` (the monitor's steps, an operator's
failover or failback, a drill's start and end), in a transaction that holds the state row
locked, so that two writers (the monitor of two replicas, the monitor and an operator) never
take the same step twice: each re-reads the row and decides again under the lock.

Each step writes its events (``DREventRow``, one episode per failover and its failback) and
one audit record per event: a step that moves traffic (``switched``, ``failback``,
``restored``) is a change of the desired state, audited as ``dr_state`` with the state before
and after, with a revision that brings every edge node the new pools (``snapshot.dr``); the
other events are audited as ``dr_event`` (a revision that changes nothing served). When
every live edge node has applied the revision of a move, ``record_served`` writes ``served``
with the seconds from detection (and from the primary's loss) to then: the failover time,
compared with the config's RTO. The episode closes when traffic is back on the primary.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from edgeplane.dr import state as cycle
from edgeplane.errors import Conflict, InvalidInput, NotFound
from edgeplane.model.common import Page
from edgeplane.model.dr import DREvent, Drill, DrillStep, DRStatus, PrimaryHealth
from edgeplane.model.enums import Role
from edgeplane.services.common import get_scoped, lock_name, paged
from edgeplane.store.actor import Actor
from edgeplane.store.db import Tx
from edgeplane.store.dr_tables import DRDrillRow, DREventRow, DRStateRow
from edgeplane.store.tables import DRConfigRow, EdgeNodeRow, utcnow

MONITOR = Actor(name="edgeplane-dr", local=True)
"""Who the monitor and the drills act as in the audit trail."""
STATE_KIND = "dr_state"
EVENT_KIND = "dr_event"
ASKED = frozenset({"confirmed", "forced", "drill"})  # events that ask for a move
_CURSOR = re.compile(r"^[0-9]{1,18}$")
_DRILL_CURSOR = re.compile(r"^[A-Za-z0-9._-]{1,80}$")


def new_episode(now: datetime) -> str:
    return f"ep-{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


# State ------------------------------------------------------------------------------------


def state_row(tx: Tx, dr_id: str) -> DRStateRow:
    """The config's state, locked until the transaction ends; made when it has none yet."""
    row = tx.session.get(DRStateRow, (tx.project, dr_id), with_for_update=True)
    if row is not None:
        return row
    lock_name(tx, "dr_states", tx.project, dr_id)
    row = tx.session.get(
        DRStateRow, (tx.project, dr_id), with_for_update=True, populate_existing=True
    )
    if row is None:
        row = DRStateRow(
            project_id=tx.project,
            dr_id=dr_id,
            active="primary",
            status="normal",
            since=utcnow(),
            primary_health="unknown",
            health_since=None,
            health_detail={},
            episode=None,
        )
        tx.session.add(row)
        tx.session.flush()
    return row


def episode_events(tx: Tx, dr_id: str, episode: str | None) -> list[DREventRow]:
    if episode is None:
        return []
    return list(
        tx.session.scalars(
            select(DREventRow)
            .where(
                DREventRow.project_id == tx.project,
                DREventRow.dr_id == dr_id,
                DREventRow.episode == episode,
            )
            .order_by(DREventRow.id)
        )
    )


def forced_failover(events: Sequence[DREventRow]) -> bool:
    """Whether the episode's failover was forced by an operator (no automatic failback)."""
    return any(e.kind == "forced" and (e.detail or {}).get("action") == "failover" for e in events)


def view_of(row: DRStateRow | None, events: Sequence[DREventRow] = ()) -> cycle.View:
    if row is None:
        return cycle.View()
    return cycle.View(
        status=row.status,
        active=row.active,
        health=row.primary_health,
        health_since=row.health_since,
        episode=row.episode,
        manual=forced_failover(events),
    )


def state_doc(row: DRStateRow) -> dict[str, Any]:
    return {"active": row.active, "status": row.status, "episode": row.episode}


def set_health(row: DRStateRow, view: cycle.View, reason: str, detail: dict[str, Any]) -> bool:
    """Store the primary's health as ``view`` has it; whether it changed."""
    if (row.primary_health, row.health_since) == (view.health, view.health_since):
        return False
    row.primary_health, row.health_since = view.health, view.health_since
    row.health_detail = {"reason": reason, **detail}
    return True


def add_event(
    tx: Tx,
    cfg: DRConfigRow,
    episode: str | None,
    kind: str,
    message: str,
    detail: dict[str, Any],
    *,
    actor: str,
    at: datetime,
) -> DREventRow:
    """An event of the timeline, audited as ``dr_event`` unless it moves traffic (those are
    audited as the ``dr_state`` change they make)."""
    row = DREventRow(
        project_id=cfg.project_id,
        dr_id=cfg.id,
        episode=episode,
        kind=kind,
        at=at,
        actor=actor,
        message=message,
        detail=detail,
    )
    tx.session.add(row)
    if kind not in cycle.SWITCHES:
        tx.record(
            kind,
            EVENT_KIND,
            cfg.id,
            None,
            {"episode": episode, "kind": kind, "message": message, "detail": detail},
        )
    return row


def _side_dc(cfg: DRConfigRow, side: str) -> str:
    return cfg.primary_dc if side == "primary" else cfg.backup_dc


def _message(
    cfg: DRConfigRow, t: cycle.Transition, kind: str, actor: str, reason: str, revision: int | None
) -> str:
    action = "failover" if t.active == "backup" else "failback"
    return {
        "detected": f"the primary data center {cfg.primary_dc} is down: {reason}",
        "pending": f"the failover to {cfg.backup_dc} waits for an operator "
        "(POST .../failover, or `edgeplane dr failover`)",
        "confirmed": f"{action} confirmed by {actor}: {reason}",
        "forced": f"{action} forced by {actor}: {reason}",
        "switched": f"traffic moves to the backup data center {cfg.backup_dc} "
        f"(revision {revision})",
        "failback": f"traffic returns to the primary data center {cfg.primary_dc} "
        f"(revision {revision})",
        "recovered": t.message,
        "failback_pending": f"the failback to {cfg.primary_dc} waits for an operator "
        "(POST .../failback, or `edgeplane dr failback`)",
        "cancelled": t.message,
    }.get(kind, t.message)


def apply(
    tx: Tx,
    cfg: DRConfigRow,
    row: DRStateRow,
    t: cycle.Transition,
    *,
    actor: str,
    now: datetime,
    reason: str = "",
    health: dict[str, Any] | None = None,
    details: dict[str, dict[str, Any]] | None = None,
) -> list[DREventRow]:
    """Take step ``t``: the new state, its events and audit records, and for a move of
    traffic the revision that brings it to the edge. ``details``: more detail for some of
    its events, by kind."""
    before = state_doc(row)
    if t.opens or row.episode is None:
        row.episode = new_episode(now)
    episode = row.episode
    revision = tx.next_revision() if t.moves else None
    row.status, row.active, row.since = t.status, t.active, now
    out = []
    for kind in t.events:
        detail: dict[str, Any] = {}
        if kind == "detected":
            detail = {
                "down_since": iso(row.health_since),
                "reason": (row.health_detail or {}).get("reason", ""),
                "health": dict(health or row.health_detail or {}),
            }
        elif kind in cycle.SWITCHES:
            detail = {"revision": revision, "to": t.active, "data_center": _side_dc(cfg, t.active)}
        elif kind in ("confirmed", "forced"):
            action = "failover" if t.active == "backup" else "failback"
            detail = {"action": action, "reason": reason}
        detail.update((details or {}).get(kind, {}))
        why = reason or (row.health_detail or {}).get("reason", "")
        message = _message(cfg, t, kind, actor, why, revision)
        out.append(add_event(tx, cfg, episode, kind, message, detail, actor=actor, at=now))
    if t.moves:
        after = state_doc(row)
        tx.record(t.events[-1], STATE_KIND, cfg.id, before, after)
    if t.closes:
        row.episode = None
    tx.session.flush()
    return out


@dataclass(frozen=True)
class NodeAck:
    id: str
    name: str
    applied_revision: int | None
    applied_at: datetime | None


def node_acks(tx: Tx, live: set[str]) -> list[NodeAck]:
    """The live edge nodes and the revision each has applied."""
    if not live:
        return []
    return [
        NodeAck(n.id, n.name, n.applied_revision, n.applied_at)
        for n in tx.session.scalars(select(EdgeNodeRow).where(EdgeNodeRow.id.in_(sorted(live))))
    ]


def pending_switch(events: Sequence[DREventRow]) -> DREventRow | None:
    """The episode's last move of traffic, while no ``served`` event follows it."""
    last = next((e for e in reversed(events) if e.kind in cycle.SWITCHES), None)
    if last is None:
        return None
    revision = (last.detail or {}).get("revision")
    served = any(
        e.kind == "served" and e.id > last.id and (e.detail or {}).get("revision") == revision
        for e in events
    )
    return None if served else last


def served_at(
    switch_at: datetime, revision: int, acks: Sequence[NodeAck], now: datetime
) -> datetime | None:
    """When every live node had applied ``revision`` (the last one's acknowledgement), or
    None while one has not."""
    if any(a.applied_revision is None or a.applied_revision < revision for a in acks):
        return None
    times = [a.applied_at for a in acks if a.applied_at is not None]
    at = max(times) if times else now
    return min(max(at, switch_at), now)


def record_served(
    tx: Tx,
    cfg: DRConfigRow,
    row: DRStateRow,
    events: Sequence[DREventRow],
    acks: Sequence[NodeAck],
    now: datetime,
) -> DREventRow | None:
    """``served`` for the episode's last move, once every live node has applied it."""
    switch = pending_switch(events)
    if switch is None:
        return None
    detail = dict(switch.detail or {})
    revision = int(detail.get("revision") or 0)
    at = served_at(switch.at, revision, acks, now)
    if at is None:
        return None
    side = str(detail.get("to") or row.active)
    seconds: dict[str, float] = {"switched_to_served": _between(switch.at, at)}
    before = [e for e in events if e.id < switch.id]
    detected = next((e for e in before if e.kind == "detected"), None)
    recovered = next((e for e in reversed(before) if e.kind == "recovered"), None)
    asked = next((e for e in reversed(before) if e.kind in ASKED), None)
    if side == "primary" and recovered is not None:
        seconds["recovered_to_served"] = _between(recovered.at, at)
    if side == "backup" and detected is not None:
        seconds["detected_to_served"] = _between(detected.at, at)
        down = (detected.detail or {}).get("down_since")
        if down:
            seconds["down_to_served"] = _between(datetime.fromisoformat(down), at)
    if asked is not None:  # an operator's confirmation or request, a drill's start
        seconds["requested_to_served"] = _between(asked.at, at)
    out: dict[str, Any] = {
        "revision": revision,
        "to": side,
        "data_center": _side_dc(cfg, side),
        "nodes": sorted(a.name for a in acks),
        "seconds": seconds,
    }
    text = f"every live edge node ({len(acks)}) serves revision {revision}: traffic on the "
    text += f"{side} data center {_side_dc(cfg, side)}"
    if side == "backup":
        measured = seconds.get("down_to_served", seconds.get("detected_to_served"))
        if measured is None:
            measured = seconds.get("requested_to_served", seconds["switched_to_served"])
        out["rto_s"] = cfg.rto * 60.0
        out["within_rto"] = measured <= cfg.rto * 60.0
        how = "the primary was lost" if "down_to_served" in seconds else "it was asked for"
        text += f", {measured:.2f} s after {how} (RTO {cfg.rto * 60.0:g} s)"
    event = add_event(tx, cfg, row.episode, "served", text, out, actor=MONITOR.name, at=at)
    if side == "primary" and row.status == "normal" and row.episode == switch.episode:
        row.episode = None
    return event


def _between(start: datetime, end: datetime) -> float:
    return round(max(0.0, (end - start).total_seconds()), 3)


# Reading ----------------------------------------------------------------------------------


def to_event(row: DREventRow) -> DREvent:
    return DREvent(
        id=row.id,
        dr_id=row.dr_id,
        episode=row.episode,
        kind=row.kind,
        at=row.at,
        actor=row.actor,
        message=row.message,
        detail=dict(row.detail or {}),
    )


def _met(measured: float | None, target: float, finished: bool) -> bool | None:
    """Whether a measure met its target; a finished drill that could not measure missed it."""
    if measured is None:
        return False if finished else None
    return measured <= target


def to_drill(row: DRDrillRow) -> Drill:
    steps = [DrillStep.model_validate(s) for s in row.steps or []]
    finished = row.status not in ("queued", "running")
    return Drill(
        id=row.id,
        project=row.project_id,
        dr_id=row.dr_id,
        trigger=row.trigger,
        actor=row.actor,
        status=row.status,
        started_at=row.started_at,
        finished_at=row.finished_at,
        steps=steps,
        rto_target_s=row.rto_target_s,
        rpo_target_s=row.rpo_target_s,
        rto_s=row.rto_s,
        rpo_s=row.rpo_s,
        rto_ok=_met(row.rto_s, row.rto_target_s, finished),
        rpo_ok=_met(row.rpo_s, row.rpo_target_s, finished),
        message=row.message,
        report=dict(row.report or {}),
    )


def config(tx: Tx, dr_id: str) -> DRConfigRow:
    return get_scoped(tx, DRConfigRow, dr_id, "DR config")


def last_drill(tx: Tx, dr_id: str) -> DRDrillRow | None:
    return tx.session.scalars(
        select(DRDrillRow)
        .where(DRDrillRow.project_id == tx.project, DRDrillRow.dr_id == dr_id)
        .order_by(DRDrillRow.started_at.desc(), DRDrillRow.id.desc())
        .limit(1)
    ).first()


def next_drill_due(cfg: DRConfigRow, last: DRDrillRow | None) -> datetime | None:
    """When the schedule drills the config next (``drill_every_days`` after the last drill,
    or after the config was created)."""
    if cfg.drill_every_days is None:
        return None
    start = last.started_at if last is not None else cfg.created_at
    return start + timedelta(days=cfg.drill_every_days)


def status(tx: Tx, dr_id: str) -> DRStatus:
    tx.actor.require(tx.project, Role.VIEWER)
    cfg = config(tx, dr_id)
    row = tx.session.get(DRStateRow, (tx.project, dr_id))
    events = episode_events(tx, dr_id, row.episode) if row is not None else []
    drill = last_drill(tx, dr_id)
    switch = pending_switch(events)
    active = row.active if row is not None else "primary"
    detail = dict(row.health_detail or {}) if row is not None else {}
    reason = str(detail.pop("reason", "")) if detail else "not observed yet"
    return DRStatus(
        id=cfg.id,
        project=cfg.project_id,
        name=cfg.name,
        primary_dc=cfg.primary_dc,
        backup_dc=cfg.backup_dc,
        active=active,
        active_dc=_side_dc(cfg, active),
        status=row.status if row is not None else "normal",
        since=row.since if row is not None else None,
        failover_mode=cfg.failover_mode,
        failback_mode=cfg.failback_mode,
        rto=cfg.rto,
        rpo=cfg.rpo,
        primary_health=PrimaryHealth(
            state=row.primary_health if row is not None else "unknown",
            since=row.health_since if row is not None else None,
            reason=reason,
            detail=detail,
        ),
        manual=forced_failover(events),
        episode=row.episode if row is not None else None,
        episode_events=[to_event(e) for e in events],
        awaiting_revision=int(switch.detail["revision"]) if switch is not None else None,
        last_drill=to_drill(drill) if drill is not None else None,
        next_drill_due=next_drill_due(cfg, drill),
    )


def events_page(
    tx: Tx, dr_id: str, *, cursor: str | None = None, limit: int | None = None
) -> Page[DREvent]:
    """The config's timeline, newest first; ``cursor``: the last event id of the previous
    page."""
    tx.actor.require(tx.project, Role.VIEWER)
    config(tx, dr_id)
    q = select(DREventRow).where(DREventRow.project_id == tx.project, DREventRow.dr_id == dr_id)
    if cursor and not _CURSOR.match(cursor):
        raise InvalidInput.at("cursor", "must be an event id")
    after = int(cursor) if cursor else None
    rows, nxt = paged(tx, q, DREventRow.id, after, limit, newest_first=True)
    return Page[DREvent](items=[to_event(r) for r in rows], next_cursor=nxt)


def drills_page(
    tx: Tx, dr_id: str, *, cursor: str | None = None, limit: int | None = None
) -> Page[Drill]:
    """The config's drills, newest first; ``cursor``: the last drill id of the previous page
    (drill ids sort by their start)."""
    tx.actor.require(tx.project, Role.VIEWER)
    config(tx, dr_id)
    q = select(DRDrillRow).where(DRDrillRow.project_id == tx.project, DRDrillRow.dr_id == dr_id)
    if cursor and not _DRILL_CURSOR.match(cursor):
        raise InvalidInput.at("cursor", "must be a drill id")
    rows, nxt = paged(tx, q, DRDrillRow.id, cursor, limit, newest_first=True)
    return Page[Drill](items=[to_drill(r) for r in rows], next_cursor=nxt)


def get_drill(tx: Tx, dr_id: str, drill_id: str) -> Drill:
    tx.actor.require(tx.project, Role.VIEWER)
    config(tx, dr_id)
    row = tx.session.get(DRDrillRow, drill_id)
    if row is None or row.project_id != tx.project or row.dr_id != dr_id:
        raise NotFound(f"drill {drill_id!r} not found for DR config {dr_id!r}")
    return to_drill(row)


# An operator's failover and failback --------------------------------------------------------


def switch(tx: Tx, dr_id: str, action: cycle.Action, reason: str) -> DRStatus:
    """Confirm a pending failover (failback), or force one; 409 when it makes no sense now."""
    tx.actor.require(tx.project, Role.EDITOR)
    cfg = config(tx, dr_id)
    row = state_row(tx, dr_id)
    events = episode_events(tx, dr_id, row.episode)
    t = cycle.manual(view_of(row, events), action)
    if isinstance(t, str):
        raise Conflict(f"cannot {action} DR config {dr_id!r}: {t}")
    apply(tx, cfg, row, t, actor=tx.actor.name, now=utcnow(), reason=reason)
    tx.session.flush()
    return status(tx, dr_id)
