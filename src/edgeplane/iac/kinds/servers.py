"""``servers``: the project's servers as configured (type, placement, capacity, profile,
labels). Their status and metrics are observations of the running server, not configuration:
the file neither holds nor changes them (a server it creates starts ``active``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from edgeplane.errors import InvalidInput
from edgeplane.iac.kind import Context, Item, Kind, changed_fields, project_rows
from edgeplane.model.common import ObjectId
from edgeplane.model.enums import ServerStatus
from edgeplane.model.inventory import ServerCreate
from edgeplane.services import regions, scaling_groups, servers
from edgeplane.store.tables import DataCenterRow, ServerRow

PLACEMENT = ("region", "location", "data_center_id")


class ServerItem(ServerCreate):
    id: ObjectId
    status: SkipJsonSchema[ServerStatus] = Field(ServerStatus.ACTIVE, exclude=True)

    @field_validator("status")
    @classmethod
    def _not_configuration(cls, value: Any) -> Any:
        raise ValueError(
            "a server's status is its observed state, not configuration: the file leaves it "
            "alone (set it with `edgeplane server update --status`)"
        )


def _canonical(doc: dict[str, Any]) -> Item:
    return ServerItem.model_validate(doc).model_dump(mode="json")


class Servers(Kind):
    section = "servers"
    noun = "server"
    item = ServerItem
    audit_kinds = frozenset({servers.KIND})

    def read(self, ctx: Context) -> list[Item]:
        tx = ctx.tx
        owned = scaling_groups.owned_servers(tx)  # a scaling group's instances are its own
        rows = [r for r in project_rows(tx, ServerRow) if r.id not in owned]
        return [
            _canonical(
                {
                    "id": row.id,
                    "name": row.name,
                    "type": row.type,
                    "region": row.region,
                    "location": row.location,
                    "capacity": {"cpu": row.cpu, "memory": row.memory, "storage": row.storage},
                    "profile": row.profile,
                    "data_center_id": row.data_center_id,
                    "address": row.address,
                    "environment": row.environment,
                    "labels": row.labels or {},
                }
            )
            for row in rows
        ]

    def canonical(self, ctx: Context, item: BaseModel) -> Item:
        """The location as the service places the server (``location`` or ``region`` in any
        vocabulary, else its data center's), and its region type."""
        assert isinstance(item, ServerItem)
        tx = ctx.tx
        dc = None
        if item.data_center_id is not None:
            dc = tx.session.get(DataCenterRow, (tx.project, item.data_center_id))
        fallback = None
        if dc is not None:
            fallback = (
                regions.get_row(tx, dc.location, field="data_center_id"),
                f"the location of data center {dc.id!r}",
            )
        try:
            row, _ = regions.locate(
                tx, region=item.region, location=item.location, what="a server", fallback=fallback
            )
        except InvalidInput as exc:
            if dc is None and item.data_center_id is not None and item.location is None:
                raise InvalidInput.at(
                    "location",
                    f"required: data center {item.data_center_id!r} does not exist yet (the "
                    "file creates it), so the server cannot take its location; give it",
                ) from exc
            raise
        doc: dict[str, Any] = item.model_dump(mode="json")
        doc["location"], doc["region"] = row.code, row.area
        return doc

    def create(self, ctx: Context, item: Item) -> None:
        servers.create(ctx.tx, item)

    def update(self, ctx: Context, before: Item, after: Item) -> None:
        patch = changed_fields(before, after)
        if any(f in patch for f in PLACEMENT):
            # The service derives what a placement patch leaves out: give all of it.
            patch.update({f: after[f] for f in PLACEMENT})
        if "labels" in patch:  # a merge patch: a label left out is kept unless it is null
            patch["labels"] = {
                **{k: None for k in before["labels"] if k not in after["labels"]},
                **after["labels"],
            }
        servers.update(ctx.tx, after["id"], patch)

    def delete(self, ctx: Context, item: Item) -> None:
        servers.delete(ctx.tx, item["id"])
