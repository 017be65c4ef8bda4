"""``load_balancers``: the project's load balancers with their ``backends`` and
``health_check``.

A backend is named by the service's key (its address, plus ``:port`` for a server id with a
port): the canonical form lists the backends in key order, each with its ``key``, so that a
plan names a backend's change ``backends[<key>].weight``. An update adds, changes and removes
backends one by one through the service, never by recreating the load balancer. What the
service derives (the domains served through it, the backends' health) is not in the file.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator

from edgeplane.iac.kind import Context, Item, Kind, changed_fields, project_rows
from edgeplane.model.common import ObjectId
from edgeplane.model.operations import Backend, LoadBalancerCreate
from edgeplane.model.regions import REGION_CODES_OF
from edgeplane.services import load_balancers, regions, scaling_groups
from edgeplane.store.tables import LoadBalancerRow

PARTS = ("backends", "health_check")  # changed by calls of their own
# what changes in place (the key names it)
BACKEND_FIELDS = ("weight", "backup", "state", "wait_for_check")


class BackendItem(Backend):
    given_key: str | None = Field(
        None,
        alias="key",
        description="how the load balancer names the backend: the address, plus :port for a "
        "server id with a port; derived (export leaves it out), checked when given",
    )

    @model_validator(mode="after")
    def _key_agrees(self) -> BackendItem:
        if self.given_key is not None and self.given_key != self.key:
            raise ValueError(f"key must be {self.key!r}, the key of its address and port")
        return self


class LoadBalancerItem(LoadBalancerCreate):
    id: ObjectId
    backends: list[BackendItem] = Field(  # type: ignore[assignment]
        default_factory=list,
        max_length=1000,
        description="backends with weight, backup flag and state; merged with endpoints",
    )


def _backend(backend: Backend) -> Item:
    """A backend in canonical form: its key, then its fields."""
    fields = {name: getattr(backend, name) for name in Backend.model_fields}
    return {"key": backend.key, **Backend.model_validate(fields).model_dump(mode="json")}


def _plain(backend: Item) -> Item:
    """A canonical backend as the service takes it (without its key)."""
    return {k: v for k, v in backend.items() if k != "key"}


def _canonical(model: LoadBalancerItem, region: str | None) -> Item:
    doc: dict[str, Any] = model.model_dump(mode="json", exclude={"endpoints", "backends"})
    doc["name"] = model.name or model.id
    doc["region"] = region
    doc["backends"] = sorted((_backend(b) for b in model.backends), key=lambda b: b["key"])
    return doc


class LoadBalancers(Kind):
    section = "load_balancers"
    noun = "load balancer"
    item = LoadBalancerItem
    audit_kinds = frozenset({load_balancers.KIND})

    def read(self, ctx: Context) -> list[Item]:
        tx = ctx.tx
        rows = project_rows(tx, LoadBalancerRow)
        owned = scaling_groups.owned_servers(tx)  # a scaling group's instances are its own
        out = []
        for row in rows:
            lb = load_balancers.to_model(row)
            data = lb.model_dump(
                mode="json",
                exclude={"project", "endpoints", "domains", "created_at", "updated_at"},
            )
            data["backends"] = [b for b in data["backends"] if b["address"] not in owned]
            out.append(_canonical(LoadBalancerItem.model_validate(data), data["region"]))
        return out

    def canonical(self, ctx: Context, item: BaseModel) -> Item:
        """The region as the region code it stands for (a location's, or a region type's only
        one; a type with two is left as written: the service refuses it, naming ``region``),
        the name the id when left out, the endpoints shorthand as backends."""
        assert isinstance(item, LoadBalancerItem)
        region = item.region
        if region is not None:
            place = regions.resolve(ctx.tx, region, "region")
            codes = REGION_CODES_OF[place.region_type]
            if place.region_code is not None:
                region = place.region_code.value
            elif len(codes) == 1:
                region = codes[0].value
        return _canonical(item, region)

    def exported(self, item: Item) -> Item:
        """The fields at their default left out, the name when it is the id, and the backends
        without their key."""
        model = LoadBalancerItem.model_validate(item)
        doc = model.model_dump(
            mode="json", exclude_defaults=True, exclude={"id", "endpoints", "backends"}
        )
        if doc.get("name") == item["id"]:
            del doc["name"]
        backends = [
            Backend.model_validate(_plain(b)).model_dump(mode="json", exclude_defaults=True)
            for b in item["backends"]
        ]
        return {"id": item["id"], **doc, **({"backends": backends} if backends else {})}

    def create(self, ctx: Context, item: Item) -> None:
        load_balancers.create(ctx.tx, {**item, "backends": [_plain(b) for b in item["backends"]]})

    def update(self, ctx: Context, before: Item, after: Item) -> None:
        """Backends removed first and added after the load balancer's own fields change (a
        smaller tier holds the backends that stay, a larger one those that come), then the
        changed backends and the health check."""
        tx, lb_id = ctx.tx, after["id"]
        old = {b["key"]: b for b in before["backends"]}
        new = {b["key"]: b for b in after["backends"]}
        for key in sorted(set(old) - set(new)):
            load_balancers.remove_backend(tx, lb_id, key)
        patch = {k: v for k, v in changed_fields(before, after).items() if k not in PARTS}
        if patch:
            load_balancers.update(tx, lb_id, patch)
        for key in sorted(set(new) - set(old)):
            load_balancers.add_backend(tx, lb_id, _plain(new[key]))
        for key in sorted(set(new) & set(old)):
            changes = {f: new[key][f] for f in BACKEND_FIELDS if new[key][f] != old[key][f]}
            if changes:
                load_balancers.update_backend(tx, lb_id, key, changes)
        if before["health_check"] != after["health_check"]:
            load_balancers.update_health_check(tx, lb_id, after["health_check"])

    def delete(self, ctx: Context, item: Item) -> None:
        load_balancers.delete(ctx.tx, item["id"])

    def warnings(
        self, ctx: Context, action: str, before: Item | None, after: Item | None
    ) -> list[str]:
        """Deleting the load balancer the edge serves the project's domains through, or leaving
        it without an active backend."""
        if before is None:
            return []
        tx = ctx.tx
        row = tx.session.get(LoadBalancerRow, (tx.project, before["id"]))
        if row is None:
            return []
        domains = load_balancers.with_domains(tx, [load_balancers.to_model(row)])[0].domains
        if not domains:
            return []
        served = f"the edge serves {len(domains)} domain(s) through it ({', '.join(domains[:5])})"
        if action == "delete":
            return [f"{served}; they lose their origin"]
        if after is not None and not any(
            b["state"] == "active" and not b["backup"] for b in after["backends"]
        ):
            return [f"{served}, and it would have no active primary backend"]
        return []
