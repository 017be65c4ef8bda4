"""Scaling groups: create, read, change and delete them; what they do at run time is
``edgeplane.scaling.controller``.

A group owns the backends of its load balancer that are its instances (inventory servers it
made); other backends of the load balancer are the user's and stay as they are. Setting
``desired`` is a manual scaling action; any change of a group that stopped after failed
launches (and ``resume``) lets it try again. Deleting a group drains and removes its
instances first: the group shows ``deleting`` until they are gone.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from edgeplane.errors import Conflict, InvalidInput
from edgeplane.model.common import Page
from edgeplane.model.enums import Role
from edgeplane.model.scaling import (
    CloudTemplate,
    LocalTemplate,
    ScalingAction,
    ScalingGroup,
    ScalingGroupCreate,
    ScalingInstance,
)
from edgeplane.model.service_settings import SERVICE_TYPES
from edgeplane.scaling import actions, schedule
from edgeplane.services.common import choose_id, get_scoped, merge_patch, paged, validate
from edgeplane.store.db import Tx
from edgeplane.store.scaling_tables import ScalingActionRow, ScalingGroupRow, ScalingInstanceRow
from edgeplane.store.tables import DataCenterRow, LoadBalancerRow, utcnow

KIND = "scaling_group"
LIVE = ("provisioning", "starting", "registered", "serving", "draining", "deleting")


def check_template(driver: str, template: dict[str, Any]) -> dict[str, Any]:
    """The template validated for its driver (errors name ``template.<field>``)."""
    spec: LocalTemplate | CloudTemplate
    if driver == "cloud":
        spec = validate(CloudTemplate, template, prefix="template")
    else:
        spec = validate(LocalTemplate, template, prefix="template")
    if isinstance(spec, CloudTemplate):
        from edgeplane.scaling.drivers.cloud import check_provider

        why = check_provider(spec.provider)
        if why is not None:
            raise InvalidInput.at("template.provider", why)
    return spec.model_dump(mode="json")


def _check(tx: Tx, spec: ScalingGroupCreate, group_id: str) -> ScalingGroupCreate:
    if tx.session.get(LoadBalancerRow, (tx.project, spec.load_balancer)) is None:
        raise InvalidInput.at(
            "load_balancer", f"no load balancer {spec.load_balancer!r} in project {tx.project!r}"
        )
    other = tx.session.scalar(
        select(ScalingGroupRow.id).where(
            ScalingGroupRow.project_id == tx.project,
            ScalingGroupRow.load_balancer_id == spec.load_balancer,
            ScalingGroupRow.id != group_id,
        )
    )
    if other is not None:
        raise Conflict(
            f"load balancer {spec.load_balancer!r} is already scaled by group {other!r}",
            field="load_balancer",
        )
    if tx.session.get(DataCenterRow, (tx.project, spec.data_center)) is None:
        raise InvalidInput.at(
            "data_center", f"no data center {spec.data_center!r} in project {tx.project!r}"
        )
    if spec.min_size > spec.max_size:
        raise InvalidInput.at("min_size", f"is {spec.min_size}, above max_size ({spec.max_size})")
    if spec.desired is not None and not spec.min_size <= spec.desired <= spec.max_size:
        raise InvalidInput.at(
            "desired", f"must be within min_size ({spec.min_size}) and max_size ({spec.max_size})"
        )
    if spec.service_type is not None and spec.service_type not in SERVICE_TYPES:
        known = ", ".join(sorted(SERVICE_TYPES))
        raise InvalidInput.at(
            "service_type", f"unknown service type {spec.service_type!r}; one of {known}"
        )
    for i, entry in enumerate(spec.schedule):
        bad = schedule.check(entry)
        if bad is not None:
            raise InvalidInput.at(f"schedule.{i}.{bad[0]}", bad[1])
        if entry.min_size > spec.max_size:
            raise InvalidInput.at(
                f"schedule.{i}.min_size", f"is above the group's max_size ({spec.max_size})"
            )
    template = check_template(spec.driver, spec.template)
    return spec.model_copy(update={"template": template})


def _stored(spec: ScalingGroupCreate, group_id: str, name: str) -> dict[str, Any]:
    # ``desired`` lives in its column: it is the controller's as much as the user's
    update = {"id": group_id, "name": name, "desired": None}
    return spec.model_copy(update=update).model_dump(mode="json")


def instance_model(row: ScalingInstanceRow) -> ScalingInstance:
    address = f"{row.host}:{row.port}" if row.host and row.port else ""
    return ScalingInstance(
        id=row.id,
        group=row.group_id,
        server=row.id,
        address=address,
        state=row.state,
        detail=row.detail,
        driver_ref=row.driver_ref,
        cpu_percent=row.cpu_percent,
        created_at=row.created_at,
        serving_at=row.serving_at,
        ended_at=row.ended_at,
    )


def live_instances(tx: Tx, group_id: str) -> list[ScalingInstanceRow]:
    return list(
        tx.session.scalars(
            select(ScalingInstanceRow)
            .where(
                ScalingInstanceRow.project_id == tx.project,
                ScalingInstanceRow.group_id == group_id,
                ScalingInstanceRow.state.in_(LIVE),
            )
            .order_by(ScalingInstanceRow.created_at, ScalingInstanceRow.id)
        )
    )


def to_model(tx: Tx, row: ScalingGroupRow) -> ScalingGroup:
    spec = ScalingGroupCreate.model_validate(row.spec)
    live = live_instances(tx, row.id)
    memory = row.memory or {}
    last = actions.last(tx, row.id)
    return ScalingGroup(
        **spec.model_dump(exclude={"id", "name", "desired"}),
        id=row.id,
        project=row.project_id,
        name=spec.name or row.id,
        desired=row.desired,
        status=row.status,
        status_detail=row.status_detail,
        size=sum(1 for i in live if i.state == "serving"),
        floor=int(memory.get("floor", spec.min_size)),
        failures=row.failures,
        metrics={k: float(v) for k, v in (memory.get("metrics") or {}).items() if v is not None},
        instances=[instance_model(i) for i in live],
        last_action=None if last is None else actions.to_model(last),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _audited(group: ScalingGroup) -> dict[str, Any]:
    return group.model_dump(
        mode="json",
        include=set(ScalingGroupCreate.model_fields) | {"desired", "status"},
    )


def create(tx: Tx, data: ScalingGroupCreate | dict[str, Any]) -> ScalingGroup:
    tx.actor.require(tx.project, Role.EDITOR)
    spec = validate(ScalingGroupCreate, data) if isinstance(data, dict) else data
    group_id = choose_id(tx, ScalingGroupRow, spec.id, "sg", "scaling group")
    spec = _check(tx, spec, group_id)
    desired = spec.desired if spec.desired is not None else spec.min_size
    row = ScalingGroupRow(
        project_id=tx.project,
        id=group_id,
        load_balancer_id=spec.load_balancer,
        spec=_stored(spec, group_id, spec.name or group_id),
        desired=desired,
        status="steady",
        status_detail="",
        failures=0,
        memory={},
    )
    tx.session.add(row)
    tx.session.flush()
    if desired > 0:
        actions.start(tx, group_id, "scale_out", f"created with {desired} instance(s)", 0, desired)
    out = to_model(tx, row)
    tx.record("create", KIND, group_id, None, _audited(out))
    return out


def get(tx: Tx, group_id: str) -> ScalingGroup:
    tx.actor.require(tx.project, Role.VIEWER)
    return to_model(tx, get_scoped(tx, ScalingGroupRow, group_id, "scaling group"))


def list_page(tx: Tx, *, cursor: str | None = None, limit: int | None = None) -> Page[ScalingGroup]:
    tx.actor.require(tx.project, Role.VIEWER)
    q = select(ScalingGroupRow).where(ScalingGroupRow.project_id == tx.project)
    rows, nxt = paged(tx, q, ScalingGroupRow.id, cursor, limit)
    return Page[ScalingGroup](items=[to_model(tx, r) for r in rows], next_cursor=nxt)


def update(tx: Tx, group_id: str, patch: dict[str, Any]) -> ScalingGroup:
    """A JSON merge patch; ``desired`` sets the size now (a manual action, within the
    bounds). A group that stopped after failed launches tries again."""
    tx.actor.require(tx.project, Role.EDITOR)
    row = get_scoped(tx, ScalingGroupRow, group_id, "scaling group")
    if row.status == "deleting":
        raise Conflict(f"scaling group {group_id!r} is being deleted")
    before = to_model(tx, row)
    current = dict(row.spec)
    current["desired"] = None
    # a template is replaced whole when the driver changes, else merged
    new_driver = isinstance(patch, dict) and patch.get("driver", current["driver"])
    if new_driver != current["driver"]:
        current["template"] = {}
    spec = merge_patch(ScalingGroupCreate, current, patch, fixed={"id"})
    spec = _check(tx, spec, group_id)
    row.spec = _stored(spec, group_id, spec.name or group_id)
    row.load_balancer_id = spec.load_balancer
    if spec.desired is not None and spec.desired != row.desired:
        kind = "scale_out" if spec.desired > row.desired else "scale_in"
        who = tx.actor.name
        actions.start(
            tx, group_id, kind, f"desired set to {spec.desired} by {who}", row.desired, spec.desired
        )
        row.desired = spec.desired
        row.last_action_at = utcnow()
    row.desired = min(max(row.desired, spec.min_size), spec.max_size)
    if row.status == "stopped":
        row.status, row.status_detail, row.failures = "steady", "", 0
    tx.session.flush()
    after = to_model(tx, row)
    tx.record("update", KIND, group_id, _audited(before), _audited(after))
    return after


def resume(tx: Tx, group_id: str) -> ScalingGroup:
    """A group that stopped after ``max_failures`` failed launches tries again."""
    tx.actor.require(tx.project, Role.EDITOR)
    row = get_scoped(tx, ScalingGroupRow, group_id, "scaling group")
    if row.status != "stopped":
        raise Conflict(f"scaling group {group_id!r} is {row.status}, not stopped")
    before = to_model(tx, row)
    row.status, row.status_detail, row.failures = "steady", "", 0
    tx.session.flush()
    after = to_model(tx, row)
    tx.record("update", KIND, group_id, _audited(before), _audited(after))
    return after


def delete(tx: Tx, group_id: str) -> ScalingGroup:
    """The group drains and removes its instances, then goes (``deleting`` until then)."""
    tx.actor.require(tx.project, Role.EDITOR)
    row = get_scoped(tx, ScalingGroupRow, group_id, "scaling group")
    before = to_model(tx, row)
    if row.status != "deleting":
        if row.desired:
            actions.start(tx, group_id, "scale_in", "group deleted", row.desired, 0)
        row.status, row.status_detail, row.desired = "deleting", "removing its instances", 0
    if not live_instances(tx, group_id):
        tx.session.delete(row)
        tx.record("delete", KIND, group_id, _audited(before), None)
        return before.model_copy(update={"status": "deleting", "desired": 0})
    tx.session.flush()
    after = to_model(tx, row)
    tx.record("update", KIND, group_id, _audited(before), _audited(after))
    return after


def actions_page(
    tx: Tx, group_id: str, *, cursor: str | None = None, limit: int | None = None
) -> Page[ScalingAction]:
    """The group's actions, newest first."""
    tx.actor.require(tx.project, Role.VIEWER)
    get_scoped(tx, ScalingGroupRow, group_id, "scaling group")
    if cursor is not None and not cursor.isdigit():
        raise InvalidInput.at("cursor", "must be the next_cursor of a previous page")
    q = select(ScalingActionRow).where(
        ScalingActionRow.project_id == tx.project, ScalingActionRow.group_id == group_id
    )
    rows, nxt = paged(
        tx, q, ScalingActionRow.id, int(cursor) if cursor else None, limit, newest_first=True
    )
    return Page[ScalingAction](items=[actions.to_model(r) for r in rows], next_cursor=nxt)


def instances(tx: Tx, group_id: str, *, ended: bool = False) -> list[ScalingInstance]:
    """The group's instances (with ``ended``, those deleted or failed too), oldest first."""
    tx.actor.require(tx.project, Role.VIEWER)
    get_scoped(tx, ScalingGroupRow, group_id, "scaling group")
    q = select(ScalingInstanceRow).where(
        ScalingInstanceRow.project_id == tx.project, ScalingInstanceRow.group_id == group_id
    )
    if not ended:
        q = q.where(ScalingInstanceRow.state.in_(LIVE))
    rows = tx.session.scalars(q.order_by(ScalingInstanceRow.created_at, ScalingInstanceRow.id))
    return [instance_model(r) for r in rows]


def owned_servers(tx: Tx) -> set[str]:
    """The servers the project's scaling groups made and have not removed yet: theirs to
    change (a project's file neither exports nor plans them, like Terraform's
    ``ignore_changes`` on an autoscaled count)."""
    return set(
        tx.session.scalars(
            select(ScalingInstanceRow.id).where(
                ScalingInstanceRow.project_id == tx.project,
                ScalingInstanceRow.ended_at.is_(None),
            )
        )
    )


def scaling_load_balancer(tx: Tx, lb_id: str) -> str | None:
    """The group that scales a load balancer, if any (a load balancer it scales cannot go)."""
    return tx.session.scalar(
        select(ScalingGroupRow.id).where(
            ScalingGroupRow.project_id == tx.project, ScalingGroupRow.load_balancer_id == lb_id
        )
    )
