"""``data_centers``: the project's data centers (location, tier, capacity)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from edgeplane.iac.kind import Context, Item, Kind, changed_fields, project_rows
from edgeplane.model.common import ObjectId
from edgeplane.model.inventory import DataCenterCreate
from edgeplane.services import datacenters, regions
from edgeplane.store.tables import DataCenterRow


class DataCenterItem(DataCenterCreate):
    id: ObjectId


class DataCenters(Kind):
    section = "data_centers"
    noun = "data center"
    item = DataCenterItem
    fixed = frozenset({"region", "location"})
    audit_kinds = frozenset({datacenters.KIND})

    def read(self, ctx: Context) -> list[Item]:
        tx = ctx.tx
        rows = project_rows(tx, DataCenterRow)
        return [
            {
                "id": row.id,
                "name": row.name,
                "region": row.region,
                "location": row.location,
                "tier": row.tier,
                "capacity": {"cpu": row.cpu, "memory": row.memory, "storage": row.storage},
                "environment": row.environment,
            }
            for row in rows
        ]

    def canonical(self, ctx: Context, item: BaseModel) -> Item:
        assert isinstance(item, DataCenterItem)
        place, _ = regions.locate(
            ctx.tx, region=item.region, location=item.location, what="a data center"
        )
        doc: dict[str, Any] = item.model_dump(mode="json")
        doc["region"], doc["location"] = place.region_code, place.code
        doc["tier"] = int(item.tier)
        return doc

    def create(self, ctx: Context, item: Item) -> None:
        datacenters.create(ctx.tx, item)

    def update(self, ctx: Context, before: Item, after: Item) -> None:
        datacenters.update(ctx.tx, after["id"], changed_fields(before, after))

    def delete(self, ctx: Context, item: Item) -> None:
        datacenters.delete(ctx.tx, item["id"])
