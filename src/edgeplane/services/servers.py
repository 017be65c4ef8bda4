"""Servers: capacity, placement (location, data center), status and observed metrics."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from edgeplane.errors import Conflict, InvalidInput
from edgeplane.model.common import Capacity, CapacityReport, Page
from edgeplane.model.enums import Role
from edgeplane.model.inventory import Metrics, MetricsSample, Server, ServerCreate
from edgeplane.services import capacity, regions
from edgeplane.services.common import (
    choose_id,
    get_scoped,
    get_scoped_for_update,
    merge_patch,
    paged,
    validate,
)
from edgeplane.store.db import Tx
from edgeplane.store.tables import (
    DataCenterRow,
    LoadBalancerRow,
    MetricRow,
    RegionRow,
    ServerRow,
    ServiceRow,
    utcnow,
)

KIND = "server"
EDITABLE = {
    "id",
    "name",
    "type",
    "region",
    "location",
    "capacity",
    "profile",
    "status",
    "data_center_id",
    "address",
    "environment",
    "labels",
}


def to_model(tx: Tx, row: ServerRow, allocated: Capacity | None = None) -> Server:
    if allocated is None:
        allocated = capacity.allocated_on_server(tx, row.id)
    metrics = None
    if row.metrics is not None and row.metrics_at is not None:
        metrics = Metrics.model_validate({**row.metrics, "at": row.metrics_at})
    place = tx.session.get(RegionRow, row.location)
    return Server(
        id=row.id,
        project=row.project_id,
        name=row.name,
        type=row.type,
        region=row.region,
        location=row.location,
        region_code=place.region_code if place is not None else None,
        region_type=place.area if place is not None else None,
        capacity=capacity.of_row(row),
        allocated=allocated,
        profile=row.profile,
        status=row.status,
        data_center_id=row.data_center_id,
        address=row.address,
        environment=row.environment,
        labels=row.labels or {},
        metrics=metrics,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _place(tx: Tx, spec: ServerCreate, server_id: str) -> tuple[str, str]:
    """The server's location and region type: from ``location`` or ``region`` in any
    vocabulary, else its data center's location; consistent with each other and with the data
    center (which must have room for the server's capacity)."""
    dc = None
    if spec.data_center_id is not None:
        dc = tx.session.get(DataCenterRow, (tx.project, spec.data_center_id), with_for_update=True)
        if dc is None:
            raise InvalidInput.at("data_center_id", f"no data center {spec.data_center_id!r}")
    fallback = None
    if dc is not None:
        fallback = (
            regions.get_row(tx, dc.location, field="data_center_id"),
            f"the location of data center {dc.id!r}",
        )
    row, _ = regions.locate(
        tx, region=spec.region, location=spec.location, what="a server", fallback=fallback
    )
    if dc is None:
        return row.code, row.area
    if dc.location != row.code:
        raise InvalidInput.at(
            "location",
            f"must be {dc.location!r}, the location of data center {dc.id!r}",
        )
    capacity.require_fit(
        spec.capacity,
        capacity.of_row(dc),
        capacity.allocated_in_data_center(tx, dc.id, except_server=server_id),
        field="capacity",
        where=f"data center {dc.id!r}",
    )
    return row.code, row.area


def _fill(row: ServerRow, spec: ServerCreate, location: str, region_type: str) -> None:
    row.name, row.type, row.region = spec.name, spec.type.value, region_type
    row.location, row.profile, row.status = location, spec.profile, spec.status.value
    row.data_center_id, row.address = spec.data_center_id, spec.address
    row.environment, row.labels = spec.environment.value, dict(spec.labels)
    row.cpu, row.memory, row.storage = (
        spec.capacity.cpu,
        spec.capacity.memory,
        spec.capacity.storage,
    )


def create(tx: Tx, data: ServerCreate | dict[str, Any]) -> Server:
    tx.actor.require(tx.project, Role.EDITOR)
    spec = validate(ServerCreate, data) if isinstance(data, dict) else data
    server_id = choose_id(tx, ServerRow, spec.id, "srv", "server")
    location, region_type = _place(tx, spec, server_id)
    row = ServerRow(project_id=tx.project, id=server_id)
    _fill(row, spec, location, region_type)
    tx.session.add(row)
    tx.session.flush()
    out = to_model(tx, row, capacity.ZERO)
    tx.record("create", KIND, server_id, None, _audit_view(out))
    return out


def _audit_view(server: Server) -> dict[str, Any]:
    return server.model_dump(mode="json", exclude={"metrics", "allocated"})


def get(tx: Tx, server_id: str) -> Server:
    tx.actor.require(tx.project, Role.VIEWER)
    return to_model(tx, get_scoped(tx, ServerRow, server_id, "server"))


def list_page(
    tx: Tx,
    *,
    type: str | None = None,
    region: str | None = None,
    location: str | None = None,
    status: str | None = None,
    data_center_id: str | None = None,
    environment: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[Server]:
    tx.actor.require(tx.project, Role.VIEWER)
    q = select(ServerRow).where(ServerRow.project_id == tx.project)
    for field, value in (("region", region), ("location", location)):
        within = regions.region_filter(tx, value, field)
        if within is not None:
            q = q.where(ServerRow.location.in_(within))
    for column, value in (
        (ServerRow.type, type),
        (ServerRow.status, status),
        (ServerRow.data_center_id, data_center_id),
        (ServerRow.environment, environment),
    ):
        if value:
            q = q.where(column == value)
    rows, nxt = paged(tx, q, ServerRow.id, cursor, limit)
    used = capacity.allocated_by_server(tx, [r.id for r in rows])
    items = [to_model(tx, r, used.get(r.id, capacity.ZERO)) for r in rows]
    return Page[Server](items=items, next_cursor=nxt)


def update(tx: Tx, server_id: str, patch: dict[str, Any]) -> Server:
    tx.actor.require(tx.project, Role.EDITOR)
    row = get_scoped_for_update(tx, ServerRow, server_id, "server")
    before = to_model(tx, row)
    current = before.model_dump(mode="json", include=EDITABLE)
    if isinstance(patch, dict):
        # What the patch places the server by decides what follows: a new data center brings
        # its location, a new location its region (unless the patch names them too).
        if patch.get("data_center_id") is not None and "location" not in patch:
            current["location"] = None
        if ("location" in patch or current["location"] is None) and "region" not in patch:
            current["region"] = None
    spec = merge_patch(ServerCreate, current, patch, fixed={"id"})
    location, region_type = _place(tx, spec, server_id)
    capacity.require_covers(
        spec.capacity, before.allocated, field="capacity", what=f"the services of {server_id}"
    )
    _fill(row, spec, location, region_type)
    tx.session.flush()
    after = to_model(tx, row, before.allocated)
    tx.record("update", KIND, server_id, _audit_view(before), _audit_view(after))
    return after


def delete(tx: Tx, server_id: str) -> None:
    tx.actor.require(tx.project, Role.EDITOR)
    row = get_scoped(tx, ServerRow, server_id, "server")
    services = list(
        tx.session.scalars(
            select(ServiceRow.id).where(
                ServiceRow.project_id == tx.project, ServiceRow.server_id == server_id
            )
        )
    )
    if services:
        raise Conflict(
            f"server {server_id!r} runs service(s) {', '.join(services)}; delete them first"
        )
    lbs = [
        lb.id
        for lb in tx.session.scalars(
            select(LoadBalancerRow).where(LoadBalancerRow.project_id == tx.project)
        )
        if server_id in (lb.endpoints or [])
    ]
    if lbs:
        raise Conflict(f"server {server_id!r} is an endpoint of load balancer(s) {', '.join(lbs)}")
    before = to_model(tx, row)
    tx.session.delete(row)
    tx.record("delete", KIND, server_id, _audit_view(before), None)


def capacity_report(tx: Tx, server_id: str) -> CapacityReport:
    tx.actor.require(tx.project, Role.VIEWER)
    row = get_scoped(tx, ServerRow, server_id, "server")
    return capacity.report(capacity.of_row(row), capacity.allocated_on_server(tx, server_id))


# Metrics are observations, not desired state: ingesting them neither bumps the revision nor
# writes audit events. The latest sample is kept on the server row for routing.
METRICS_FUTURE_SLACK = timedelta(minutes=5)


def ingest_metrics(
    tx: Tx,
    server_id: str,
    samples: MetricsSample | dict[str, Any] | Sequence[MetricsSample | dict[str, Any]],
) -> Server:
    """Record one sample or a list of them; errors name ``cpu_percent`` for a single sample
    and ``samples.<i>.cpu_percent`` for an item of a list."""
    tx.actor.require(tx.project, Role.EDITOR)
    row = get_scoped_for_update(tx, ServerRow, server_id, "server")
    items: list[Any]
    if isinstance(samples, MetricsSample | dict):
        single, items = True, [samples]
    elif isinstance(samples, list | tuple):
        single, items = False, list(samples)
    else:
        raise InvalidInput.at("samples", "must be one sample (an object) or a list of samples")
    if not items:
        raise InvalidInput.at("samples", "at least one sample is needed")
    if len(items) > 1000:
        raise InvalidInput.at("samples", "at most 1000 samples per call")
    now = utcnow()
    parsed = []
    for i, sample in enumerate(items):
        where = "" if single else f"samples.{i}"
        if isinstance(sample, MetricsSample):
            spec = sample
        elif isinstance(sample, dict):
            spec = validate(MetricsSample, sample, prefix=where)
        else:
            raise InvalidInput.at(where or "samples", "must be an object")
        at = spec.at or now
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        if at > now + METRICS_FUTURE_SLACK:
            raise InvalidInput.at(f"{where}.at" if where else "at", "is in the future")
        parsed.append((at, spec.model_dump(mode="json", exclude={"at"})))
    for at, values in parsed:
        tx.session.add(MetricRow(project_id=tx.project, server_id=server_id, at=at, values=values))
    at, values = max(parsed, key=lambda p: p[0])
    if row.metrics_at is None or at >= row.metrics_at:
        row.metrics, row.metrics_at = values, at
        row.cpu_percent = values["cpu_percent"]
        row.memory_percent = values["memory_percent"]
        row.storage_percent = values["storage_percent"]
    tx.session.flush()
    return to_model(tx, row)


def metrics_history(
    tx: Tx, server_id: str, *, since: datetime | None = None, limit: int = 100
) -> list[Metrics]:
    tx.actor.require(tx.project, Role.VIEWER)
    get_scoped(tx, ServerRow, server_id, "server")
    if not 1 <= limit <= 10_000:
        raise InvalidInput.at("limit", "must be between 1 and 10000")
    q = select(MetricRow).where(
        MetricRow.project_id == tx.project, MetricRow.server_id == server_id
    )
    if since is not None:
        q = q.where(MetricRow.at >= since)
    rows = tx.session.scalars(q.order_by(MetricRow.at.desc()).limit(limit))
    return [Metrics.model_validate({**r.values, "at": r.at}) for r in rows]


def count(tx: Tx) -> int:
    return int(
        tx.session.scalar(select(func.count()).where(ServerRow.project_id == tx.project)) or 0
    )
