"""Services on servers (cdn, web, api, ...): typed settings and reserved resources."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from edgeplane.errors import InvalidInput
from edgeplane.model.common import Page
from edgeplane.model.enums import Role
from edgeplane.model.inventory import Service, ServiceCreate
from edgeplane.model.service_settings import default_resources, validate_settings
from edgeplane.services import capacity
from edgeplane.services.common import choose_id, get_scoped, merge_patch, paged, validate
from edgeplane.store.db import Tx
from edgeplane.store.tables import ServerRow, ServiceRow

KIND = "service"


def to_model(row: ServiceRow) -> Service:
    return Service(
        id=row.id,
        project=row.project_id,
        server_id=row.server_id,
        type=row.type,
        settings=row.settings or {},
        resources=capacity.of_row(row),
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _place(tx: Tx, spec: ServiceCreate, service_id: str) -> tuple[dict[str, Any], Any]:
    settings = validate_settings(spec.type, spec.settings)
    resources = spec.resources if spec.resources is not None else default_resources(spec.type)
    server = tx.session.get(ServerRow, (tx.project, spec.server_id), with_for_update=True)
    if server is None:
        raise InvalidInput.at("server_id", f"no server {spec.server_id!r}")
    capacity.require_fit(
        resources,
        capacity.of_row(server),
        capacity.allocated_on_server(tx, server.id, except_service=service_id),
        field="resources",
        where=f"server {server.id!r}",
    )
    return settings, resources


def create(tx: Tx, data: ServiceCreate | dict[str, Any]) -> Service:
    tx.actor.require(tx.project, Role.EDITOR)
    spec = validate(ServiceCreate, data) if isinstance(data, dict) else data
    service_id = choose_id(tx, ServiceRow, spec.id, "svc", "service")
    settings, resources = _place(tx, spec, service_id)
    row = ServiceRow(
        project_id=tx.project,
        id=service_id,
        server_id=spec.server_id,
        type=spec.type,
        settings=settings,
        status=spec.status.value,
        cpu=resources.cpu,
        memory=resources.memory,
        storage=resources.storage,
    )
    tx.session.add(row)
    tx.session.flush()
    out = to_model(row)
    tx.record("create", KIND, service_id, None, out.model_dump(mode="json"))
    return out


def get(tx: Tx, service_id: str) -> Service:
    tx.actor.require(tx.project, Role.VIEWER)
    return to_model(get_scoped(tx, ServiceRow, service_id, "service"))


def list_page(
    tx: Tx,
    *,
    server_id: str | None = None,
    type: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[Service]:
    tx.actor.require(tx.project, Role.VIEWER)
    q = select(ServiceRow).where(ServiceRow.project_id == tx.project)
    if server_id:
        q = q.where(ServiceRow.server_id == server_id)
    if type:
        q = q.where(ServiceRow.type == type)
    rows, nxt = paged(tx, q, ServiceRow.id, cursor, limit)
    return Page[Service](items=[to_model(r) for r in rows], next_cursor=nxt)


def update(tx: Tx, service_id: str, patch: dict[str, Any]) -> Service:
    tx.actor.require(tx.project, Role.EDITOR)
    row = get_scoped(tx, ServiceRow, service_id, "service")
    before = to_model(row)
    current = before.model_dump(
        mode="json", include={"id", "server_id", "type", "settings", "resources", "status"}
    )
    spec = merge_patch(ServiceCreate, current, patch, fixed={"id", "server_id", "type"})
    settings, resources = _place(tx, spec, service_id)
    row.settings, row.status = settings, spec.status.value
    row.cpu, row.memory, row.storage = resources.cpu, resources.memory, resources.storage
    tx.session.flush()
    after = to_model(row)
    tx.record(
        "update", KIND, service_id, before.model_dump(mode="json"), after.model_dump(mode="json")
    )
    return after


def delete(tx: Tx, service_id: str) -> None:
    tx.actor.require(tx.project, Role.EDITOR)
    row = get_scoped(tx, ServiceRow, service_id, "service")
    before = to_model(row)
    tx.session.delete(row)
    tx.record("delete", KIND, service_id, before.model_dump(mode="json"), None)
