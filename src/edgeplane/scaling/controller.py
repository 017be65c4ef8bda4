"""The scaling controller: one pass over every scaling group, run by the control plane's runner
every ``scaling_interval_s`` (``edgeplane.services.jobs``).

Each pass over a group: (1) asks its driver what runs (outside any transaction); (2) in one
transaction, moves each instance along its steps, reads the metrics, decides the size
(``edgeplane.scaling.decide``) and plans launches and removals; (3) makes the driver calls
(outside the transaction) and records what they gave.

An instance's steps (spec 002's flow, observable in ``scaling_instances`` and the action):

- ``provisioning``: the driver was asked; ``starting`` once it answered (its inventory server
  exists from then on);
- ``starting`` -> ``registered``: once the driver says it runs, it becomes a backend of the load
  balancer with ``wait_for_check``: every edge node keeps it out of rotation until its own
  health check passed;
- ``registered`` -> ``serving``: once every live edge node reports it up. Not within
  ``health_timeout_s``, or exited: ``failed`` (a failed launch; it is removed and replaced, and
  after ``max_failures`` in a row the group stops trying and raises a ``scaling_failed`` alert);
- ``serving``: an instance that exits is removed (``failed``) and replaced;
- scale-in: ``draining`` (the backend's state: no new requests, in-flight ones finish) until
  every live edge node applied that and ``drain_s`` passed; then ``deleting`` (out of the load
  balancer) until every live node applied that; then the driver deletes it and its server
  goes: ``deleted``.

Instances not yet in the load balancer go first at a scale-in, then the newest.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from threading import Event
from typing import Any

from sqlalchemy import select

from edgeplane.errors import EdgeplaneError
from edgeplane.model.common import Capacity
from edgeplane.model.enums import ServerType
from edgeplane.model.scaling import ScalingGroupCreate
from edgeplane.scaling import actions, decide, observe, schedule
from edgeplane.scaling.drivers import driver_for
from edgeplane.scaling.drivers.base import Driver, DriverError, Instance, InstanceSpec
from edgeplane.services import (
    alerts,
    capacity,
    liveness,
    load_balancers,
    scaling_groups,
    server_services,
    servers,
)
from edgeplane.settings import Settings
from edgeplane.store.actor import LOCAL, PLATFORM_PROJECT
from edgeplane.store.db import Database, Tx
from edgeplane.store.scaling_tables import ScalingActionRow, ScalingGroupRow, ScalingInstanceRow
from edgeplane.store.tables import (
    DataCenterRow,
    EdgeNodeRow,
    LoadBalancerRow,
    ServerRow,
    ServiceRow,
    utcnow,
)

log = logging.getLogger("edgeplane.scaling")

START_TIMEOUT_S = 120.0  # provisioning with no answer from the driver
UP = ("provisioning", "starting", "registered", "serving")


def group_key(project: str, group: str) -> str:
    return f"{project}/{group}"


def backend_key(row: ScalingInstanceRow) -> str:
    return f"{row.id}:{row.port}"


@dataclass
class Plan:
    """What a pass asks of the driver once its transaction is over."""

    launch: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)


def run(db: Database, settings: Settings, stopping: Event | None = None) -> int:
    """One pass over every group; the number of groups seen."""
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        groups = [(r.project_id, r.id) for r in tx.session.scalars(select(ScalingGroupRow))]
    for project, group in groups:
        if stopping is not None and stopping.is_set():
            break
        try:
            reconcile(db, settings, project, group)
        except Exception:
            log.exception("scaling group %s/%s: the pass failed", project, group)
    return len(groups)


def driver_of(settings: Settings, spec: ScalingGroupCreate) -> Driver:
    return driver_for(spec.driver, root=Path(settings.home) / "scaling")


def reconcile(db: Database, settings: Settings, project: str, group: str) -> None:
    with db.read(LOCAL, project) as tx:
        row = tx.session.get(ScalingGroupRow, (project, group))
        if row is None:
            return
        spec = ScalingGroupCreate.model_validate(row.spec)
        deleting = row.status == "deleting"
        states = {i.id: i.state for i in scaling_groups.live_instances(tx, group)}
        leftovers = [i.id for i in _unclean(tx, group)]
    driver = driver_of(settings, spec)
    key = group_key(project, group)
    seen: dict[str, Instance] = {}
    listed = True
    try:
        seen = {i.name: i for i in driver.list(key)}
    except DriverError as exc:
        listed = False
        log.warning("scaling group %s: the driver could not list: %s", key, exc)
    usage = {
        iid: (driver.cpu_percent(key, iid), driver.memory_percent(key, iid))
        for iid, state in states.items()
        if state == "serving" and iid in seen
    }
    with db.transaction(LOCAL, project) as tx:
        row = tx.session.get(ScalingGroupRow, (project, group))
        if row is None:
            return
        plan = _advance(tx, row, spec, seen if listed else None, usage)
        plan.remove += [i for i in leftovers if i not in plan.remove]
    for iid in plan.launch:
        _launch(db, driver, spec, project, group, iid)
    for iid in plan.remove:
        _remove(db, driver, spec, project, group, iid)
    if deleting or plan.remove:  # a group being deleted goes with its last instance
        with db.transaction(LOCAL, project) as tx:
            row = tx.session.get(ScalingGroupRow, (project, group))
            gone = row is not None and row.status == "deleting"
            if gone and not scaling_groups.live_instances(tx, group):
                scaling_groups.delete(tx, group)


def _unclean(tx: Tx, group: str) -> list[ScalingInstanceRow]:
    """Failed instances not yet removed (the driver's delete and the server)."""
    return list(
        tx.session.scalars(
            select(ScalingInstanceRow).where(
                ScalingInstanceRow.project_id == tx.project,
                ScalingInstanceRow.group_id == group,
                ScalingInstanceRow.state == "failed",
                ScalingInstanceRow.ended_at.is_(None),
            )
        )
    )


# The transaction of a pass ------------------------------------------------------------------


@dataclass
class Edge:
    """What the edge nodes say: the pool's backends' health per node, the revisions applied."""

    live: set[str]
    applied: dict[str, int]
    health: dict[str, dict[str, str]]  # backend key -> node id -> up / down / unknown
    reasons: dict[str, list[str]]

    def acked(self, revision: int | None) -> bool:
        if revision is None:
            return True
        return all((self.applied.get(n) or 0) >= revision for n in self.live)

    def up_everywhere(self, key: str) -> bool:
        states = self.health.get(key, {})
        return bool(self.live) and all(states.get(n) == "up" for n in self.live)


def _edge(tx: Tx, pool: str) -> Edge:
    live = liveness.live_ids(tx)
    applied = {
        n.id: n.applied_revision or 0
        for n in tx.session.scalars(select(EdgeNodeRow).where(EdgeNodeRow.id.in_(live)))
    }
    health: dict[str, dict[str, str]] = {}
    reasons: dict[str, list[str]] = {}
    for key, nodes in load_balancers.nodes_health(tx, pool).items():
        health[key] = {n.node_id: n.state for n in nodes}
        reasons[key] = [f"{n.node}: {n.state} ({n.reason})" for n in nodes if n.state != "up"]
    return Edge(set(live), applied, health, reasons)


class Pass:
    """One group's transaction: the instances moved along, the decision, the plan."""

    def __init__(self, tx: Tx, row: ScalingGroupRow, spec: ScalingGroupCreate) -> None:
        self.tx, self.row, self.spec = tx, row, spec
        self.now = utcnow()
        self.plan = Plan()
        lb = tx.session.get(LoadBalancerRow, (tx.project, spec.load_balancer))
        self.lb = lb
        pool = load_balancers.pool_id(tx.project, spec.load_balancer)
        self.edge = _edge(tx, pool)
        self.running = {a.id: a for a in actions.running(tx, row.id)}
        self.backends = (
            {b.key for b in load_balancers.to_model(lb).backends} if lb is not None else set()
        )

    # the load balancer

    def _revision(self) -> int:
        return self.tx.next_revision()

    def register(self, inst: ScalingInstanceRow) -> None:
        backend = {"address": inst.id, "port": inst.port, "wait_for_check": True}
        load_balancers.add_backend(self.tx, self.spec.load_balancer, backend)
        self.backends.add(backend_key(inst))
        inst.registered_revision = self._revision()

    def deregister(self, inst: ScalingInstanceRow) -> None:
        key = backend_key(inst)
        if key in self.backends:
            load_balancers.remove_backend(self.tx, self.spec.load_balancer, key)
            self.backends.discard(key)
            inst.registered_revision = self._revision()

    def drain(self, inst: ScalingInstanceRow) -> None:
        key = backend_key(inst)
        if key in self.backends:
            load_balancers.drain_backend(self.tx, self.spec.load_balancer, key)
            inst.registered_revision = self._revision()

    # instances

    def move(self, inst: ScalingInstanceRow, state: str, detail: str = "") -> None:
        inst.state, inst.state_at = state, self.now
        if detail:
            inst.detail = detail[:2000]

    def fail(self, inst: ScalingInstanceRow, detail: str, *, launch: bool) -> None:
        """Out of the load balancer now; the driver's delete follows after the transaction."""
        self.deregister(inst)
        self.move(inst, "failed", detail)
        self.plan.remove.append(inst.id)
        if launch:
            self.row.failures += 1
        log.warning("scaling group %s: instance %s failed: %s", self.row.id, inst.id, detail)
        for action in self.running.values():
            if inst.id in (action.instances or []):
                actions.step(action, f"instance {inst.id} failed", detail, self.now)

    def advance(self, inst: ScalingInstanceRow, seen: dict[str, Instance] | None) -> None:
        age = (self.now - inst.state_at).total_seconds()
        d = None if seen is None else seen.get(inst.id)
        gone = seen is not None and (d is None or d.state in ("missing", "exited"))
        why = "the driver lost it" if d is None else f"{d.state}: {d.detail}".strip(": ")
        if inst.state == "provisioning":
            if age > START_TIMEOUT_S:
                self.fail(inst, f"no answer from the driver in {START_TIMEOUT_S:g} s", launch=True)
        elif inst.state == "starting":
            if gone:
                self.fail(inst, f"exited on start ({why})", launch=True)
            elif d is not None and d.state == "running":
                self.register(inst)
                self.move(inst, "registered")
            elif age > self.spec.health_timeout_s:
                self.fail(inst, f"not running after {age:.0f} s", launch=True)
        elif inst.state == "registered":
            key = backend_key(inst)
            if gone:
                self.fail(inst, f"exited before it was healthy ({why})", launch=True)
            elif self.edge.up_everywhere(key):
                self.move(inst, "serving")
                inst.serving_at = self.now
                self.row.failures = 0
            elif age > self.spec.health_timeout_s:
                seen_by = "; ".join(self.edge.reasons.get(key, [])) or "no edge node checked it"
                self.fail(
                    inst,
                    f"not healthy by the edge's checks after {age:.0f} s ({seen_by})",
                    launch=True,
                )
        elif inst.state == "serving":
            if gone:
                self.fail(inst, f"stopped while serving ({why})", launch=False)
        elif inst.state == "draining":
            if self.edge.acked(inst.registered_revision) and age >= self.spec.drain_s:
                self.deregister(inst)
                self.move(inst, "deleting")
        elif inst.state == "deleting" and self.edge.acked(inst.registered_revision):
            self.plan.remove.append(inst.id)

    def shrink(
        self, live: list[ScalingInstanceRow], count: int, action: ScalingActionRow | None
    ) -> None:
        """Remove ``count`` instances: those not in the load balancer yet first, then the
        newest; those serving drain first."""
        order = {"provisioning": 0, "starting": 1, "registered": 2, "serving": 3}
        up = [i for i in live if i.state in order]
        up.sort(key=lambda i: (order[i.state], -i.created_at.timestamp()))
        for inst in up[:count]:
            if action is not None:
                actions.add_instance(action, inst.id)
            if inst.state == "serving":
                self.drain(inst)
                self.move(inst, "draining")
            elif inst.state == "registered":
                self.deregister(inst)
                self.move(inst, "deleting")
            else:
                self.move(inst, "deleting", "removed before it served")
                self.plan.remove.append(inst.id)

    def grow(self, count: int, action: ScalingActionRow | None) -> None:
        dc = self.tx.session.get(DataCenterRow, (self.tx.project, self.spec.data_center))
        for _ in range(count):
            if dc is None:
                self.stop(f"data center {self.spec.data_center!r} no longer exists")
                return
            wanted = self.spec.instance_capacity
            pending = Capacity(
                cpu=wanted.cpu * len(self.plan.launch),
                memory=wanted.memory * len(self.plan.launch),
                storage=wanted.storage * len(self.plan.launch),
            )
            try:
                capacity.require_fit(
                    wanted,
                    capacity.of_row(dc),
                    capacity.allocated_in_data_center(self.tx, dc.id) + pending,
                    field="instance_capacity",
                    where=f"data center {dc.id!r}",
                )
            except EdgeplaneError as exc:
                self.row.status_detail = f"cannot grow: {exc}"[:2000]
                if action is not None:
                    actions.step(action, "capacity", str(exc), self.now)
                return
            inst = ScalingInstanceRow(
                project_id=self.tx.project,
                id=_instance_id(self.tx, self.row.id),
                group_id=self.row.id,
                action_id=None if action is None else action.id,
                state="provisioning",
                created_at=self.now,
                state_at=self.now,
            )
            self.tx.session.add(inst)
            self.tx.session.flush()
            if action is not None:
                actions.add_instance(action, inst.id)
            self.plan.launch.append(inst.id)

    def stop(self, why: str) -> None:
        if self.row.status == "stopped":
            return
        self.row.status, self.row.status_detail = "stopped", why[:2000]
        for action in self.running.values():
            actions.finish(action, "failed", why, self.now)
        alerts.raise_once(
            self.tx,
            self.tx.project,
            "scaling_failed",
            self.row.id,
            f"stopped-{self.now:%Y%m%dT%H%M%S}",
            "critical",
            f"scaling group {self.row.id} stopped: {why}",
            {"group": self.row.id, "failures": self.row.failures},
        )


def _last_failure(tx: Tx, group: str) -> tuple[str, str] | None:
    """The group's instance that failed last: (its id, why)."""
    found = tx.session.execute(
        select(ScalingInstanceRow.id, ScalingInstanceRow.detail)
        .where(
            ScalingInstanceRow.project_id == tx.project,
            ScalingInstanceRow.group_id == group,
            ScalingInstanceRow.state == "failed",
        )
        .order_by(ScalingInstanceRow.state_at.desc())
        .limit(1)
    ).first()
    return None if found is None else (found[0], found[1])


def _instance_id(tx: Tx, group: str) -> str:
    import secrets

    stem = group[:50]
    while True:
        candidate = f"{stem}-{secrets.token_hex(3)}"
        if (
            tx.session.get(ServerRow, (tx.project, candidate)) is None
            and tx.session.get(ScalingInstanceRow, (tx.project, candidate)) is None
        ):
            return candidate


def _advance(
    tx: Tx,
    row: ScalingGroupRow,
    spec: ScalingGroupCreate,
    seen: dict[str, Instance] | None,
    usage: dict[str, tuple[float | None, float | None]],
) -> Plan:
    p = Pass(tx, row, spec)
    live = scaling_groups.live_instances(tx, row.id)
    for inst in live:
        if inst.id in usage:
            inst.cpu_percent = usage[inst.id][0]
        p.advance(inst, seen)
    _record_usage(tx, live, usage, p.now)
    live = [i for i in live if i.state not in ("failed", "deleted")]
    serving = [i for i in live if i.state == "serving"]
    up = [i for i in live if i.state in UP]

    # a copy all the way down: a JSON column changed in place would compare equal to itself
    # and never be written
    memory: dict[str, Any] = copy.deepcopy(row.memory or {})
    wanted = {policy.metric for policy in spec.policies}
    domains = (
        load_balancers.with_domains(tx, [load_balancers.to_model(p.lb)])[0].domains if p.lb else []
    )
    values = observe.metrics(
        tx,
        tx.project,
        wanted,
        keys={backend_key(i) for i in live if i.port},
        serving=[i.id for i in serving],
        domains=list(domains),
        memory=memory,
        now=p.now,
        window_s=spec.metric_window_s,
    )
    memory["metrics"] = {k: v for k, v in values.items() if v is not None}
    floor, floor_why = schedule.floor(spec.min_size, spec.schedule, p.now)
    memory["floor"] = floor

    scaling = [a for a in p.running.values() if a.kind in ("scale_out", "scale_in")]
    if row.status not in ("stopped", "deleting"):
        rec = decide.recommend(spec.policies, values, len(serving), spec.tolerance)
        ts = p.now.timestamp()
        keep = max(spec.scale_in_stabilization_s, spec.scale_out_stabilization_s)
        history = [(t, s) for t, s in memory.get("recs") or [] if t >= ts - keep]
        stable = decide.stabilize(
            history, ts, rec.size, row.desired,
            spec.scale_out_stabilization_s, spec.scale_in_stabilization_s,
        )  # fmt: skip
        if rec.metric is not None:
            history.append((ts, rec.size))
        memory["recs"] = history
        last = actions.last(tx, row.id)
        since = None
        last_kind: decide.Kind | None = None
        if last is not None and last.kind in ("scale_out", "scale_in"):
            since = (p.now - (last.finished_at or p.now)).total_seconds()
            last_kind = "scale_out" if last.kind == "scale_out" else "scale_in"
        decision = decide.decide(
            desired=row.desired,
            recommendation=rec,
            stabilized=stable,
            floor=floor,
            floor_reason=floor_why,
            max_size=spec.max_size,
            running=bool(scaling),
            since_last_action_s=since,
            last_kind=last_kind,
            cooldown_s=spec.cooldown_s,
        )
        memory["held"] = decision.held
        if decision.kind is not None and decision.desired != row.desired:
            for old in scaling:  # a bound moved: what ran is superseded
                actions.finish(old, "failed", "superseded by a new target size", p.now)
            made = actions.start(
                tx, row.id, decision.kind, decision.trigger, row.desired, decision.desired,
                metric=decision.metric, value=decision.value, now=p.now,
            )  # fmt: skip
            p.running[made.id] = made
            row.desired, row.last_action_at = decision.desired, p.now
    row.memory = memory

    scaling = [
        a for a in p.running.values()
        if a.kind in ("scale_out", "scale_in") and a.status == "running"
    ]  # fmt: skip
    current = scaling[-1] if scaling else None
    gap = row.desired - len(up)
    if gap > 0 and row.status not in ("stopped", "deleting"):
        if row.failures >= spec.max_failures:
            last_fail = (_last_failure(tx, row.id) or ("", ""))[1]
            p.stop(
                f"{row.failures} launches failed in a row"
                + (f"; last: {last_fail}" if last_fail else "")
            )
        else:
            action: ScalingActionRow | None = current
            if action is None or action.kind != "scale_out":
                failed = _last_failure(tx, row.id)
                why = f"replacing {failed[0]}: {failed[1]}" if failed else "replacing instance(s)"
                action = actions.start(tx, row.id, "replace", why, len(up), row.desired, now=p.now)
                p.running[action.id] = action
            p.grow(gap, action)
    elif gap < 0:
        p.shrink(
            live, -gap, current if current is not None and current.kind == "scale_in" else None
        )
    progress(tx, row, list(p.running.values()))
    if row.status != "stopped" and row.status != "deleting":
        kinds = {a.kind for a in p.running.values() if a.status == "running"}
        row.status = (
            "scaling_out"
            if kinds & {"scale_out", "replace"}
            else ("scaling_in" if "scale_in" in kinds else "steady")
        )
        if row.status == "steady":  # why a change the metrics ask for waits, if one does
            held = (row.memory or {}).get("held")
            row.status_detail = f"{held}: the policies ask for a change" if held else ""
    return p.plan


def progress(tx: Tx, row: ScalingGroupRow, running: list[ScalingActionRow]) -> None:
    """Each running action's steps from its instances' states; done when they all are."""
    now = utcnow()
    states = {
        i.id: i.state
        for i in tx.session.scalars(
            select(ScalingInstanceRow).where(
                ScalingInstanceRow.project_id == tx.project,
                ScalingInstanceRow.group_id == row.id,
            )
        )
    }
    serving = sum(1 for s in states.values() if s == "serving")
    present = sum(1 for s in states.values() if s in UP or s in ("draining", "deleting"))
    for action in running:
        if action.status != "running":
            continue
        mine = [states.get(i, "deleted") for i in action.instances or []]
        ok = [s for s in mine if s != "failed"]
        if action.kind in ("scale_out", "replace"):
            if ok and all(s != "provisioning" for s in ok):
                actions.step(action, "provisioned", f"{len(ok)} instance(s)", now)
            if ok and all(s in ("registered", "serving") for s in ok):
                actions.step(action, "registered", "in the load balancer", now)
            if serving >= row.desired and all(
                s in ("serving", "draining", "deleting", "deleted") for s in ok
            ):
                actions.step(action, "healthy", "by the edge's health checks", now)
                actions.finish(action, "succeeded", f"{serving} instance(s) serving", now)
        else:
            if mine and all(s in ("deleting", "deleted", "failed") for s in mine):
                actions.step(action, "drained", "no new requests; in-flight ones finished", now)
                actions.step(action, "deregistered", "out of the load balancer", now)
            if present <= row.desired and all(s in ("deleted", "failed") for s in mine):
                actions.step(action, "deleted", f"{len(mine)} instance(s)", now)
                actions.finish(action, "succeeded", f"{serving} instance(s) serving", now)


def _record_usage(
    tx: Tx,
    live: list[ScalingInstanceRow],
    usage: dict[str, tuple[float | None, float | None]],
    now: datetime,
) -> None:
    """What the local driver measures of its processes, as their servers' metrics (the
    series the CPU policy reads, and what ``route_request`` weighs)."""
    for inst in live:
        cpu, memory = usage.get(inst.id, (None, None))
        if cpu is None or memory is None:
            continue
        if tx.session.get(ServerRow, (tx.project, inst.id)) is None:
            continue
        sample = {
            "cpu_percent": min(100.0, round(cpu, 2)),
            "memory_percent": min(100.0, round(memory, 3)),
            "at": now,
        }
        servers.ingest_metrics(tx, inst.id, sample)


# Driver calls, each followed by a transaction of its own ---------------------------------------


def _launch(
    db: Database, driver: Driver, spec: ScalingGroupCreate, project: str, group: str, iid: str
) -> None:
    key = group_key(project, group)
    try:
        made: Instance | None = driver.create(InstanceSpec(key, iid, spec.template))
        error = ""
    except DriverError as exc:
        made, error = None, str(exc)
    with db.transaction(LOCAL, project) as tx:
        inst = tx.session.get(ScalingInstanceRow, (project, iid))
        row = tx.session.get(ScalingGroupRow, (project, group))
        if inst is None or row is None:
            return
        now = utcnow()
        if made is None:
            inst.state, inst.state_at, inst.detail, inst.ended_at = "failed", now, error[:2000], now
            row.failures += 1
            log.warning("scaling group %s: launch of %s failed: %s", key, iid, error)
            return
        inst.driver_ref, inst.host, inst.port = made.ref, made.host, made.port
        try:
            servers.create(tx, _server(spec, group, iid, made))
            if spec.service_type is not None:
                server_services.create(tx, {
                    "id": iid, "server_id": iid, "type": spec.service_type,
                    "resources": spec.instance_capacity.model_dump(),
                })  # fmt: skip
        except EdgeplaneError as exc:
            inst.state, inst.state_at, inst.detail = "failed", now, f"inventory: {exc}"[:2000]
            row.failures += 1
            return
        if inst.state == "provisioning":
            inst.state, inst.state_at = "starting", now
        else:  # removed while it was being made
            pass


def _server(spec: ScalingGroupCreate, group: str, iid: str, made: Instance) -> dict[str, Any]:
    return {
        "id": iid,
        "name": f"{group} instance {iid.rsplit('-', 1)[-1]}",
        "type": ServerType.PRIMARY.value,
        "capacity": spec.instance_capacity.model_dump(),
        "data_center_id": spec.data_center,
        "address": made.host,
        "labels": {"scaling_group": group, "driver": spec.driver, "port": str(made.port)},
    }


def _remove(
    db: Database, driver: Driver, spec: ScalingGroupCreate, project: str, group: str, iid: str
) -> None:
    grace = float(spec.template.get("stop_grace_s", 10.0))
    try:
        driver.delete(group_key(project, group), iid, grace)
    except DriverError as exc:
        log.warning("scaling group %s/%s: deleting %s failed: %s", project, group, iid, exc)
        return  # tried again at the next pass
    with db.transaction(LOCAL, project) as tx:
        inst = tx.session.get(ScalingInstanceRow, (project, iid))
        if inst is None:
            return
        if tx.session.get(ServerRow, (project, iid)) is not None:
            try:
                for service in tx.session.scalars(
                    select(ServiceRow.id).where(
                        ServiceRow.project_id == project, ServiceRow.server_id == iid
                    )
                ):
                    server_services.delete(tx, service)
                servers.delete(tx, iid)
            except EdgeplaneError as exc:
                log.warning("scaling group %s: server %s stays: %s", group, iid, exc)
                return
        now = utcnow()
        if inst.state != "failed":
            inst.state, inst.state_at = "deleted", now
        inst.ended_at = now
        row = tx.session.get(ScalingGroupRow, (project, group))
        if row is not None:  # the action that removed it may be over now
            tx.session.flush()
            progress(tx, row, actions.running(tx, group))
