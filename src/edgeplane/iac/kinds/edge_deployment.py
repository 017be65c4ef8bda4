"""``edge_deployment``: the project's current edge deployment, as the deploy that made it.

One object (a singleton section): the ``bundle`` (its id, the sha256 the upload answers; the
client uploads a directory or archive the file names and puts its id here), how the regions
are chosen (``regions`` the candidates, ``strategy``, ``locations``, ``latency_target_ms``,
``max_regions``: the deploy request, not the regions placement chose, so that a plan does not
depend on which nodes are live or where the traffic came from) and how the edge serves it
(``spa``, ``origin_paths``, ``check_path``). It is read from the current version (rolling
out, else active), following the versions it was made from (a config update, a
reactivation) back to the request that placed it.

A change is a new version through ``services.edge_deployments``: ``update_config`` when only
the serving options change, else ``deploy``; the rollout starts once the apply commits (a
plan's transaction is rolled back: no version, no rollout). There is no undeploy: removing the
section's object is refused.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field, field_validator

from edgeplane.errors import Conflict
from edgeplane.iac.kind import Context, Item, Kind, changed_fields
from edgeplane.model.edge_deployments import DeployRequest, ServeOptions
from edgeplane.model.regions import RegionRef
from edgeplane.services import edge_deployments
from edgeplane.store.tables import EdgeDeploymentRow

SERVE_FIELDS = frozenset(ServeOptions.model_fields)  # spa, origin_paths, check_path
BUNDLE_ID = re.compile(r"^[0-9a-f]{64}$")


def _bundle_id(value: str) -> str:
    if not BUNDLE_ID.match(value):
        raise ValueError(
            f"{value!r} is not a bundle id (64 hex digits): a directory or archive must be "
            "uploaded first (edgeplane plan / apply do it)"
        )
    return value


class EdgeDeploymentItem(ServeOptions, DeployRequest):
    """The deploy request of the current version, with the serving options it has."""

    bundle: Annotated[str, AfterValidator(_bundle_id)] = Field(
        min_length=1,
        description="the bundle: a directory or archive (relative to the file), which the CLI "
        "uploads and replaces with its id, or the id itself (the sha256 its upload answers)",
        examples=["site/", "site.tar.gz"],
    )
    regions: list[RegionRef] | None = Field(
        None,
        max_length=200,
        description="candidate locations (us-east); a region code (eu) or type (europe) "
        "stands for each of its locations with a live edge node; none: every location with one",
    )

    @field_validator("regions")
    @classmethod
    def _set(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else sorted(set(value))


def _by_id(ctx: Context, deployment_id: Any) -> EdgeDeploymentRow | None:
    row = ctx.tx.session.get(EdgeDeploymentRow, str(deployment_id))
    return row if row is not None and row.project_id == ctx.tx.project else None


def _placed_by(ctx: Context, row: EdgeDeploymentRow) -> tuple[dict[str, Any], list[str] | None]:
    """The deploy request ``row`` comes from (through config updates and reactivations), and
    the regions the newest config update asked for, if one did."""
    request, regions, seen = dict(row.request or {}), None, {row.id}
    while "update" in request or "reactivate" in request:
        if regions is None and request.get("regions") is not None:
            regions = list(request["regions"])
        base = _by_id(ctx, request.get("update") or request.get("reactivate"))
        if base is None or base.id in seen:  # gone: what it was placed in stands for it
            return {}, regions if regions is not None else sorted(row.regions or ())
        seen.add(base.id)
        request = dict(base.request or {})
    return request, regions


class EdgeDeployment(Kind):
    section = "edge_deployment"
    noun = "edge deployment"
    item = EdgeDeploymentItem
    singleton = True
    audit_kinds = frozenset({edge_deployments.KIND})

    def read(self, ctx: Context) -> list[Item]:
        row = edge_deployments.current_row(ctx.tx)
        if row is None:
            return []
        request, regions = _placed_by(ctx, row)
        doc = {
            "bundle": row.bundle_id,
            "strategy": row.strategy,
            "regions": regions if regions is not None else request.get("regions"),
            "locations": request.get("locations") or [],
            "latency_target_ms": request.get("latency_target_ms"),
            "max_regions": request.get("max_regions"),
            **ServeOptions.model_validate(row.options or {}).model_dump(mode="json"),
        }
        return [EdgeDeploymentItem.model_validate(doc).model_dump(mode="json")]

    def _deploy(self, ctx: Context, item: Item) -> None:
        body = {k: v for k, v in item.items() if v is not None}
        body["check_path"] = item["check_path"] or ""  # "": none (None keeps the current one)
        edge_deployments.deploy(ctx.tx, body)

    def create(self, ctx: Context, item: Item) -> None:
        self._deploy(ctx, item)

    def update(self, ctx: Context, before: Item, after: Item) -> None:
        changed = changed_fields(before, after)
        current = edge_deployments.current_row(ctx.tx)
        if current is None or not set(changed) <= SERVE_FIELDS:
            self._deploy(ctx, after)
            return
        if "check_path" in changed:
            changed["check_path"] = changed["check_path"] or ""
        edge_deployments.update_config(ctx.tx, current.id, changed)

    def delete(self, ctx: Context, item: Item) -> None:
        raise Conflict(
            "the project's edge deployment cannot be removed: there is no undeploy; deploy "
            "another bundle, or leave the edge_deployment section out of the file to leave "
            "it alone"
        )

    def audit_matches(self, key: str, kind: str, object_id: str) -> bool:
        return kind in self.audit_kinds  # every version is the section's one object

    def warnings(
        self, ctx: Context, action: str, before: Item | None, after: Item | None
    ) -> list[str]:
        if action == "delete":
            return ["there is no undeploy: the apply refuses to remove the edge deployment"]
        if before is not None and after is not None and before["bundle"] == after["bundle"]:
            return ["a new version of the same bundle rolls out (canary node first)"]
        return ["a new version rolls out to the edge: one canary node first, then every region"]
