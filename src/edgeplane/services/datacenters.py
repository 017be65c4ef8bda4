"""Data centers: tiered sites with a capacity that their servers draw from."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select

from edgeplane.errors import Conflict
from edgeplane.model.common import Capacity, CapacityReport, Page
from edgeplane.model.enums import RegionCode, Role
from edgeplane.model.inventory import DataCenter, DataCenterCreate
from edgeplane.services import capacity, regions
from edgeplane.services.common import choose_id, get_scoped, merge_patch, paged, validate
from edgeplane.store.db import Tx
from edgeplane.store.tables import DataCenterRow, DRConfigRow, RegionRow, ServerRow

KIND = "data_center"


def to_model(tx: Tx, row: DataCenterRow, allocated: Capacity | None = None) -> DataCenter:
    if allocated is None:
        allocated = capacity.allocated_in_data_center(tx, row.id)
    place = tx.session.get(RegionRow, row.location)
    return DataCenter(
        id=row.id,
        project=row.project_id,
        name=row.name,
        region=row.region,
        location=row.location,
        region_code=place.region_code if place is not None else None,
        region_type=place.area if place is not None else None,
        tier=row.tier,
        capacity=capacity.of_row(row),
        allocated=allocated,
        environment=row.environment,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _place(tx: Tx, spec: DataCenterCreate) -> tuple[str, RegionCode]:
    """The data center's location and region code: from ``location`` or ``region``, in any
    vocabulary, consistent with each other (see ``regions.locate``)."""
    row, _ = regions.locate(tx, region=spec.region, location=spec.location, what="a data center")
    return row.code, RegionCode(row.region_code)


def create(tx: Tx, data: DataCenterCreate | dict[str, Any]) -> DataCenter:
    tx.actor.require(tx.project, Role.EDITOR)
    spec = validate(DataCenterCreate, data) if isinstance(data, dict) else data
    location, region = _place(tx, spec)
    dc_id = choose_id(tx, DataCenterRow, spec.id, "dc", "data center")
    row = DataCenterRow(
        project_id=tx.project,
        id=dc_id,
        name=spec.name,
        region=region.value,
        location=location,
        tier=int(spec.tier),
        cpu=spec.capacity.cpu,
        memory=spec.capacity.memory,
        storage=spec.capacity.storage,
        environment=spec.environment.value,
    )
    tx.session.add(row)
    tx.session.flush()
    out = to_model(tx, row)
    tx.record("create", KIND, dc_id, None, out.model_dump(mode="json"))
    return out


def get(tx: Tx, dc_id: str) -> DataCenter:
    tx.actor.require(tx.project, Role.VIEWER)
    return to_model(tx, get_scoped(tx, DataCenterRow, dc_id, "data center"))


def list_page(
    tx: Tx,
    *,
    region: str | None = None,
    environment: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[DataCenter]:
    tx.actor.require(tx.project, Role.VIEWER)
    q = select(DataCenterRow).where(DataCenterRow.project_id == tx.project)
    within = regions.region_filter(tx, region, "region")
    if within is not None:
        q = q.where(DataCenterRow.location.in_(within))
    if environment:
        q = q.where(DataCenterRow.environment == environment)
    rows, nxt = paged(tx, q, DataCenterRow.id, cursor, limit)
    used = capacity.allocated_by_data_center(tx, [r.id for r in rows])
    items = [to_model(tx, r, used.get(r.id, capacity.ZERO)) for r in rows]
    return Page[DataCenter](items=items, next_cursor=nxt)


def capacity_report(tx: Tx, dc_id: str) -> CapacityReport:
    tx.actor.require(tx.project, Role.VIEWER)
    row = get_scoped(tx, DataCenterRow, dc_id, "data center")
    return capacity.report(capacity.of_row(row), capacity.allocated_in_data_center(tx, dc_id))


def update(tx: Tx, dc_id: str, patch: dict[str, Any]) -> DataCenter:
    tx.actor.require(tx.project, Role.EDITOR)
    row = get_scoped(tx, DataCenterRow, dc_id, "data center")
    before = to_model(tx, row)
    current = before.model_dump(
        mode="json", include={"id", "name", "region", "location", "tier", "capacity", "environment"}
    )
    spec = merge_patch(DataCenterCreate, current, patch, fixed={"id", "region", "location"})
    capacity.require_covers(
        spec.capacity, before.allocated, field="capacity", what=f"the servers of {dc_id}"
    )
    row.name, row.tier, row.environment = spec.name, int(spec.tier), spec.environment.value
    row.cpu, row.memory, row.storage = (
        spec.capacity.cpu,
        spec.capacity.memory,
        spec.capacity.storage,
    )
    tx.session.flush()
    after = to_model(tx, row)
    tx.record("update", KIND, dc_id, before.model_dump(mode="json"), after.model_dump(mode="json"))
    return after


def delete(tx: Tx, dc_id: str) -> None:
    tx.actor.require(tx.project, Role.EDITOR)
    row = get_scoped(tx, DataCenterRow, dc_id, "data center")
    servers = tx.session.scalar(
        select(func.count()).where(
            ServerRow.project_id == tx.project, ServerRow.data_center_id == dc_id
        )
    )
    drs = list(
        tx.session.scalars(
            select(DRConfigRow.id).where(
                DRConfigRow.project_id == tx.project,
                or_(DRConfigRow.primary_dc == dc_id, DRConfigRow.backup_dc == dc_id),
            )
        )
    )
    if servers or drs:
        parts = []
        if servers:
            parts.append(f"{servers} server(s)")
        if drs:
            parts.append("DR config(s) " + ", ".join(drs))
        raise Conflict(f"data center {dc_id!r} is used by {' and '.join(parts)}")
    before = to_model(tx, row)
    tx.session.delete(row)
    tx.record("delete", KIND, dc_id, before.model_dump(mode="json"), None)
