"""Load balancer records: an algorithm, a health check and endpoints (servers or addresses)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from edgeplane.errors import InvalidInput
from edgeplane.model.common import Page
from edgeplane.model.enums import Role
from edgeplane.model.operations import LoadBalancer, LoadBalancerCreate, classify_endpoint
from edgeplane.services.common import choose_id, get_scoped, merge_patch, paged, validate
from edgeplane.store.db import Tx
from edgeplane.store.tables import LoadBalancerRow, ServerRow

KIND = "load_balancer"


def to_model(row: LoadBalancerRow) -> LoadBalancer:
    return LoadBalancer(
        id=row.id,
        project=row.project_id,
        name=row.name,
        algorithm=row.algorithm,
        region=row.region,
        endpoints=list(row.endpoints or []),
        health_check=row.health_check,
        environment=row.environment,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _check_endpoints(tx: Tx, endpoints: list[str]) -> None:
    wanted = [e for e in endpoints if classify_endpoint(e) == "server"]
    if not wanted:
        return
    found = set(
        tx.session.scalars(
            select(ServerRow.id).where(ServerRow.project_id == tx.project, ServerRow.id.in_(wanted))
        )
    )
    for i, endpoint in enumerate(endpoints):
        if endpoint in wanted and endpoint not in found:
            raise InvalidInput.at(
                f"endpoints.{i}",
                f"no server {endpoint!r} in project {tx.project!r} "
                "(an endpoint is a server id, host:port or an http(s) URL)",
            )


def _fill(row: LoadBalancerRow, spec: LoadBalancerCreate, lb_id: str) -> None:
    row.name = spec.name or lb_id
    row.algorithm = spec.algorithm.value
    row.region = spec.region.value if spec.region else None
    row.endpoints = list(spec.endpoints)
    row.health_check = spec.health_check.model_dump(mode="json")
    row.environment = spec.environment.value


def create(tx: Tx, data: LoadBalancerCreate | dict[str, Any]) -> LoadBalancer:
    tx.actor.require(tx.project, Role.EDITOR)
    spec = validate(LoadBalancerCreate, data) if isinstance(data, dict) else data
    lb_id = choose_id(tx, LoadBalancerRow, spec.id, "lb", "load balancer")
    _check_endpoints(tx, spec.endpoints)
    row = LoadBalancerRow(project_id=tx.project, id=lb_id)
    _fill(row, spec, lb_id)
    tx.session.add(row)
    tx.session.flush()
    out = to_model(row)
    tx.record("create", KIND, lb_id, None, out.model_dump(mode="json"))
    return out


def get(tx: Tx, lb_id: str) -> LoadBalancer:
    tx.actor.require(tx.project, Role.VIEWER)
    return to_model(get_scoped(tx, LoadBalancerRow, lb_id, "load balancer"))


def list_page(tx: Tx, *, cursor: str | None = None, limit: int | None = None) -> Page[LoadBalancer]:
    tx.actor.require(tx.project, Role.VIEWER)
    q = select(LoadBalancerRow).where(LoadBalancerRow.project_id == tx.project)
    rows, nxt = paged(tx, q, LoadBalancerRow.id, cursor, limit)
    return Page[LoadBalancer](items=[to_model(r) for r in rows], next_cursor=nxt)


def update(tx: Tx, lb_id: str, patch: dict[str, Any]) -> LoadBalancer:
    tx.actor.require(tx.project, Role.EDITOR)
    row = get_scoped(tx, LoadBalancerRow, lb_id, "load balancer")
    before = to_model(row)
    current = before.model_dump(
        mode="json",
        include={"id", "name", "algorithm", "region", "endpoints", "health_check", "environment"},
    )
    if isinstance(patch, dict) and "type" in patch and "algorithm" not in patch:
        patch = {k if k != "type" else "algorithm": v for k, v in patch.items()}
    spec = merge_patch(LoadBalancerCreate, current, patch, fixed={"id"})
    _check_endpoints(tx, spec.endpoints)
    _fill(row, spec, lb_id)
    tx.session.flush()
    after = to_model(row)
    tx.record("update", KIND, lb_id, before.model_dump(mode="json"), after.model_dump(mode="json"))
    return after


def delete(tx: Tx, lb_id: str) -> None:
    tx.actor.require(tx.project, Role.EDITOR)
    row = get_scoped(tx, LoadBalancerRow, lb_id, "load balancer")
    before = to_model(row)
    tx.session.delete(row)
    tx.record("delete", KIND, lb_id, before.model_dump(mode="json"), None)
