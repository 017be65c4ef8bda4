"""``regions``: the locations of the instance (code, name, coordinates, region code and type).

Regions are platform objects, outside any project: every project's file may list them and a
plan compares them, but only a platform admin can create or change one (the service checks),
and a plan never deletes one (the engine does not prune platform kinds). The locations every
instance ships with are left out of an export unless they were changed here.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func, select

from edgeplane.iac.kind import Context, Item, Kind, changed_fields
from edgeplane.model.enums import RegionType
from edgeplane.model.inventory import RegionCreate
from edgeplane.model.regions import region_code_of, region_type_of
from edgeplane.services import regions
from edgeplane.store.tables import DataCenterRow, RegionRow, ServerRow


class RegionItem(RegionCreate):
    """A location; ``region_code`` and ``region_type`` are inferred from the coordinates when
    left out (the canonical form has both)."""


def _canonical(
    code: str,
    name: str,
    latitude: float,
    longitude: float,
    region_code: Any,
    region_type: Any,
) -> Item:
    return RegionItem.model_validate(
        {
            "code": code,
            "name": name,
            "latitude": latitude,
            "longitude": longitude,
            "region_code": region_code,
            "region_type": region_type,
        }
    ).model_dump(mode="json")


@cache
def shipped() -> dict[str, Item]:
    """The locations every instance starts with (the first migration's catalog), canonical."""
    initial = importlib.import_module("edgeplane.store.migrations.versions.0001_initial_schema")
    out = {}
    for code, name, latitude, longitude, area in initial.CATALOG:
        kind = RegionType(area)
        out[code] = _canonical(
            code, name, latitude, longitude, region_code_of(latitude, longitude, kind), kind
        )
    return out


class Regions(Kind):
    section = "regions"
    noun = "region"
    key = "code"
    item = RegionItem
    platform = True
    audit_kinds = frozenset({regions.KIND})

    def read(self, ctx: Context) -> list[Item]:
        rows = ctx.tx.session.scalars(select(RegionRow).order_by(RegionRow.code))
        return [
            _canonical(r.code, r.name, r.latitude, r.longitude, r.region_code, r.area) for r in rows
        ]

    def canonical(self, ctx: Context, item: BaseModel) -> Item:
        assert isinstance(item, RegionItem)
        # As the service infers them: the region code's type, else the type given or the
        # coordinates' type, and the code of the coordinates within that type.
        if item.region_code is not None:
            code, kind = item.region_code, item.region_code.area
        else:
            kind = item.region_type or region_type_of(item.latitude, item.longitude)
            code = region_code_of(item.latitude, item.longitude, kind)
        return _canonical(item.code, item.name, item.latitude, item.longitude, code, kind)

    def exportable(self, item: Item) -> bool:
        return shipped().get(item["code"]) != item

    def create(self, ctx: Context, item: Item) -> None:
        regions.create(ctx.tx, item)

    def update(self, ctx: Context, before: Item, after: Item) -> None:
        patch = changed_fields(before, after)
        if "region_type" in patch:  # the service keeps the code unless the patch names one
            patch["region_code"] = after["region_code"]
        regions.update(ctx.tx, after["code"], patch)

    def delete(self, ctx: Context, item: Item) -> None:
        regions.delete(ctx.tx, item["code"])

    def warnings(
        self, ctx: Context, action: str, before: Item | None, after: Item | None
    ) -> list[str]:
        if action != "update" or before is None:
            return []
        session = ctx.tx.session
        code = before["code"]
        servers = session.scalar(select(func.count()).where(ServerRow.location == code)) or 0
        dcs = session.scalar(select(func.count()).where(DataCenterRow.location == code)) or 0
        placed = (
            f": {servers} server(s) and {dcs} data center(s) are placed there"
            if servers or dcs
            else ""
        )
        return [
            f"regions are shared by every project of the instance; this changes {code!r} for "
            f"all of them{placed}"
        ]
