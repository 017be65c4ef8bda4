"""Regions: the named locations (with coordinates) that servers and data centers sit in."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from edgeplane.errors import Conflict, InvalidInput, NotFound
from edgeplane.model.inventory import Region, RegionCreate, area_of
from edgeplane.services.common import lock_name, merge_patch, validate
from edgeplane.store.db import Tx
from edgeplane.store.tables import DataCenterRow, RegionRow, ServerRow

KIND = "region"


def to_model(row: RegionRow) -> Region:
    return Region.model_validate(row, from_attributes=True)


def get_row(tx: Tx, code: str, field: str = "code") -> RegionRow:
    row = tx.session.get(RegionRow, code)
    if row is None:
        if field == "code":
            raise NotFound(f"region {code!r} not found")
        raise InvalidInput.at(
            field, f"unknown region {code!r}; list them with `edgeplane region list`"
        )
    return row


def create(tx: Tx, data: RegionCreate | dict[str, Any]) -> Region:
    tx.actor.require_platform_admin()
    spec = validate(RegionCreate, data) if isinstance(data, dict) else data
    lock_name(tx, RegionRow.__tablename__, spec.code)
    if tx.session.get(RegionRow, spec.code) is not None:
        raise Conflict(f"region {spec.code!r} already exists", field="code")
    area = spec.area or area_of(spec.latitude, spec.longitude)
    row = RegionRow(
        code=spec.code,
        name=spec.name,
        latitude=spec.latitude,
        longitude=spec.longitude,
        area=area.value,
    )
    tx.session.add(row)
    tx.session.flush()
    out = to_model(row)
    tx.record("create", KIND, row.code, None, out.model_dump(mode="json"), global_object=True)
    return out


def get(tx: Tx, code: str) -> Region:
    return to_model(get_row(tx, code))


def list_all(tx: Tx) -> list[Region]:
    return [to_model(r) for r in tx.session.scalars(select(RegionRow).order_by(RegionRow.code))]


def update(tx: Tx, code: str, patch: dict[str, Any]) -> Region:
    tx.actor.require_platform_admin()
    row = get_row(tx, code)
    before = to_model(row)
    current = before.model_dump(
        mode="json", include={"code", "name", "latitude", "longitude", "area"}
    )
    spec = merge_patch(RegionCreate, current, patch, fixed={"code"})
    row.name, row.latitude, row.longitude = spec.name, spec.latitude, spec.longitude
    row.area = (spec.area or area_of(spec.latitude, spec.longitude)).value
    tx.session.flush()
    after = to_model(row)
    tx.record(
        "update",
        KIND,
        code,
        before.model_dump(mode="json"),
        after.model_dump(mode="json"),
        global_object=True,
    )
    return after


def delete(tx: Tx, code: str) -> None:
    tx.actor.require_platform_admin()
    row = get_row(tx, code)
    servers = tx.session.scalar(select(func.count()).where(ServerRow.location == code)) or 0
    dcs = tx.session.scalar(select(func.count()).where(DataCenterRow.location == code)) or 0
    if servers or dcs:
        raise Conflict(
            f"region {code!r} is the location of {servers} server(s) and {dcs} data center(s); "
            "move or delete them first"
        )
    before = to_model(row)
    tx.session.delete(row)
    tx.record("delete", KIND, code, before.model_dump(mode="json"), None, global_object=True)
