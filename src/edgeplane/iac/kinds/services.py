"""``services``: the services on the project's servers (type, typed settings, the resources
they reserve, active or disabled). The server and the type of a service do not change in
place: a new one replaces it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from edgeplane.errors import InvalidInput
from edgeplane.iac.kind import Context, Item, Kind, changed_fields, project_rows
from edgeplane.model.common import ObjectId
from edgeplane.model.inventory import ServiceCreate
from edgeplane.model.service_settings import SERVICE_TYPES, default_resources, validate_settings
from edgeplane.services import scaling_groups, server_services
from edgeplane.store.tables import ServiceRow


class ServiceItem(ServiceCreate):
    id: ObjectId


def _settings(service_type: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Stored settings with the defaults of their type filled (a setting added since they were
    stored is no change); kept as they are if they no longer validate."""
    if service_type not in SERVICE_TYPES:
        return settings
    try:
        return validate_settings(service_type, settings)
    except InvalidInput:
        return settings


class Services(Kind):
    section = "services"
    noun = "service"
    item = ServiceItem
    fixed = frozenset({"server_id", "type"})
    audit_kinds = frozenset({server_services.KIND})

    def read(self, ctx: Context) -> list[Item]:
        tx = ctx.tx
        owned = scaling_groups.owned_servers(tx)  # a scaling group's instances are its own
        rows = [r for r in project_rows(tx, ServiceRow) if r.server_id not in owned]
        return [
            ServiceItem.model_validate(
                {
                    "id": row.id,
                    "server_id": row.server_id,
                    "type": row.type,
                    "settings": _settings(row.type, row.settings or {}),
                    "resources": {"cpu": row.cpu, "memory": row.memory, "storage": row.storage},
                    "status": row.status,
                }
            ).model_dump(mode="json")
            for row in rows
        ]

    def canonical(self, ctx: Context, item: BaseModel) -> Item:
        """The settings with their type's defaults, the resources its default when left out."""
        assert isinstance(item, ServiceItem)
        doc: dict[str, Any] = item.model_dump(mode="json")
        doc["settings"] = validate_settings(item.type, item.settings)
        if item.resources is None:
            doc["resources"] = default_resources(item.type).model_dump(mode="json")
        return doc

    def exported(self, item: Item) -> Item:
        """Without the settings at their type's default, nor the resources when they are the
        type's default reservation (canonical forms fill both in again)."""
        doc = super().exported(item)
        entry = SERVICE_TYPES.get(item["type"])
        if entry is None:
            return doc
        model, resources = entry
        defaults = {
            name: f.get_default(call_default_factory=True)
            for name, f in model.model_fields.items()
            if not f.is_required()
        }
        settings = {
            k: v for k, v in item["settings"].items() if k not in defaults or defaults[k] != v
        }
        if settings:
            doc["settings"] = settings
        else:
            doc.pop("settings", None)
        if item["resources"] == resources.model_dump(mode="json"):
            doc.pop("resources", None)
        return doc

    def create(self, ctx: Context, item: Item) -> None:
        server_services.create(ctx.tx, item)

    def update(self, ctx: Context, before: Item, after: Item) -> None:
        patch = changed_fields(before, after)
        if "settings" in patch:  # a merge patch: a setting left out is kept unless it is null
            patch["settings"] = {
                **{k: None for k in before["settings"] if k not in after["settings"]},
                **after["settings"],
            }
        server_services.update(ctx.tx, after["id"], patch)

    def delete(self, ctx: Context, item: Item) -> None:
        server_services.delete(ctx.tx, item["id"])
        # Written now: a replace creates the service again under its id in the same transaction.
        ctx.tx.session.flush()
