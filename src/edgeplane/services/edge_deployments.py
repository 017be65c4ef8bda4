"""Edge deployments: versions of a project's static bundle in chosen regions.

``deploy`` chooses the regions (``edgeplane.routing.placement``: every candidate region, the
ones closest to the project's users, or the fewest that meet a latency target), picks a canary
node and writes a new version as ``canary``; ``edgeplane.services.rollouts`` takes it from
there. ``reactivate`` makes an earlier version current again on every node at once (no canary:
it was checked when it first went out, and nodes keep recent bundles on disk); ``rollback``
reactivates the version before the current one; ``update_config`` is a new version with other
serving options or regions. Reads: versions, one version with its progress per region, the
edge locations, and a version's traffic per region.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from edgeplane.errors import Conflict, InvalidInput, NotFound
from edgeplane.model.common import new_id
from edgeplane.model.edge_deployments import (
    LIVE_STATUSES,
    ConfigUpdate,
    DeployRequest,
    EdgeDeployment,
    EdgeLocation,
    EdgeMetrics,
    LocationNode,
    RegionMetrics,
    RegionProgress,
    ServeOptions,
)
from edgeplane.model.enums import Role
from edgeplane.routing.geoip import country_centroids
from edgeplane.routing.placement import (
    Candidate,
    PlacementError,
    UserLocation,
    parse_location,
    place,
    region_cost_per_month,
)
from edgeplane.services import analytics, liveness, rollouts
from edgeplane.services import regions as places
from edgeplane.services.bundles import get_row as bundle_row
from edgeplane.services.common import validate
from edgeplane.store.db import Tx
from edgeplane.store.tables import (
    DomainRow,
    EdgeAnalyticsRow,
    EdgeDeploymentRow,
    EdgeNodeRow,
    RegionRow,
    utcnow,
)

KIND = rollouts.KIND
TRAFFIC_WINDOW = timedelta(days=7)
LOAD_WINDOW = timedelta(minutes=5)


# Reading ------------------------------------------------------------------------------------


Parents = dict[str, tuple[str, str]]  # location -> (region code, region type)


def parents(tx: Tx) -> Parents:
    return {r.code: (r.region_code, r.area) for r in tx.session.scalars(select(RegionRow))}


def _progress(
    row: EdgeDeploymentRow, nodes: list[rollouts.NodeView], known: Parents
) -> list[RegionProgress]:
    out: list[RegionProgress] = []
    for region in sorted(row.regions or ()):
        code, kind = known.get(region, (None, None))
        here = [n for n in nodes if n.region == region and n.live]
        active, failed, state = rollouts.region_state(row.status, row.id, row.canary_node, here)
        out.append(
            RegionProgress(
                region=region,
                region_code=code,
                region_type=kind,
                nodes=len(here),
                active=active,
                failed=failed,
                pending=len(here) - active - failed,
                state=state,
            )
        )
    return out


def to_model(
    row: EdgeDeploymentRow,
    nodes: list[rollouts.NodeView] | None = None,
    known: Parents | None = None,
) -> EdgeDeployment:
    placement = dict(row.placement or {})
    return EdgeDeployment(
        id=row.id,
        project_id=row.project_id,
        version=row.version,
        bundle=row.bundle_id,
        strategy=row.strategy,
        regions=sorted(row.regions or ()),
        status=row.status,
        options=ServeOptions.model_validate(row.options or {}),
        placement=placement,
        cost_per_month=float(placement.get("cost_per_month", 0.0)),
        canary_node=row.canary_node,
        error=row.error,
        reactivates=row.reactivates,
        created_at=row.created_at,
        created_by=row.created_by,
        activated_at=row.activated_at,
        finished_at=row.finished_at,
        progress=_progress(row, nodes, known or {}) if nodes is not None else [],
    )


def get_row(tx: Tx, deployment_id: str) -> EdgeDeploymentRow:
    row = tx.session.get(EdgeDeploymentRow, deployment_id)
    if row is None or row.project_id != tx.project:
        raise NotFound(f"no edge deployment {deployment_id} in this project")
    return row


def get(tx: Tx, deployment_id: str) -> EdgeDeployment:
    tx.actor.require(tx.project, Role.VIEWER)
    row = get_row(tx, deployment_id)
    return to_model(row, rollouts.node_views(tx, tx.project), parents(tx))


def list_versions(tx: Tx, limit: int = 100) -> list[EdgeDeployment]:
    tx.actor.require(tx.project, Role.VIEWER)
    rows = tx.session.scalars(
        select(EdgeDeploymentRow)
        .where(EdgeDeploymentRow.project_id == tx.project)
        .order_by(EdgeDeploymentRow.version.desc())
        .limit(limit)
    )
    return [to_model(r) for r in rows]


def current_row(tx: Tx) -> EdgeDeploymentRow | None:
    """The version being rolled out, else the active one."""
    rows = list(
        tx.session.scalars(
            select(EdgeDeploymentRow).where(
                EdgeDeploymentRow.project_id == tx.project,
                EdgeDeploymentRow.status.in_(LIVE_STATUSES),
            )
        )
    )
    rows.sort(key=lambda r: (r.status == "active", -r.version))
    return rows[0] if rows else None


def current(tx: Tx) -> EdgeDeployment:
    tx.actor.require(tx.project, Role.VIEWER)
    row = current_row(tx)
    if row is None:
        raise NotFound("the project has no edge deployment")
    return to_model(row, rollouts.node_views(tx, tx.project), parents(tx))


# Placing ------------------------------------------------------------------------------------


def candidates(tx: Tx, wanted: list[str] | None) -> list[Candidate]:
    """Locations with live edge nodes (only ``wanted`` when given: each location must exist
    and have one; a region code or type stands for each of its locations that has one)."""
    live = liveness.live_ids(tx)
    count: dict[str, int] = {}
    for n in tx.session.scalars(select(EdgeNodeRow)):
        if n.id in live:
            count[n.region] = count.get(n.region, 0) + 1
    known = {r.code: r for r in tx.session.scalars(select(RegionRow))}
    if wanted is None:
        codes = sorted(count)
    else:
        codes = []
        for i, text in enumerate(wanted):
            field = f"regions[{i}]"
            where = places.resolve(tx, text, field)
            if where.location is not None:
                if not count.get(where.location.code):
                    raise InvalidInput.at(field, f"{where.location.code} has no live edge node")
                found = [where.location.code]
            else:
                inside = places.locations_in(tx, where)
                found = [r.code for r in inside if count.get(r.code)]
                if not found:
                    raise InvalidInput.at(
                        field,
                        f"{where.kind} {where.text!r} has no location with a live edge node "
                        f"(its locations: {', '.join(r.code for r in inside) or 'none'})",
                    )
            codes.extend(c for c in found if c not in codes)
    return [
        Candidate(
            code=c,
            latitude=known[c].latitude,
            longitude=known[c].longitude,
            nodes=count.get(c, 0),
        )
        for c in codes
        if c in known
    ]


def traffic_locations(tx: Tx, now: datetime) -> list[UserLocation]:
    """Where the project's requests of the last 7 days came from, by country."""
    centroids = country_centroids()
    seen = analytics.countries(tx, tx.project, now - TRAFFIC_WINDOW, now)
    out: list[UserLocation] = []
    for code, requests in sorted(seen.items()):
        point = centroids.get(code)
        if point is None or requests <= 0:
            continue
        out.append(UserLocation(label=code, latitude=point[0], longitude=point[1], weight=requests))
    return out


def _users(tx: Tx, request: DeployRequest, now: datetime) -> list[UserLocation]:
    users: list[UserLocation] = []
    for i, entry in enumerate(request.locations):
        try:
            users.append(parse_location(entry))
        except PlacementError as exc:
            raise InvalidInput.at(f"locations[{i}]", str(exc)) from None
    if not users and request.strategy != "all":
        users = traffic_locations(tx, now)
    return users


# Writing ------------------------------------------------------------------------------------


def _options(base: dict[str, Any], **changes: Any) -> ServeOptions:
    merged = {**base, **{k: v for k, v in changes.items() if v is not None}}
    if changes.get("check_path") == "":
        merged["check_path"] = None  # "" removes the check path; None keeps it
    return validate(ServeOptions, merged)


def _check_bundle(tx: Tx, bundle: str, options: ServeOptions) -> None:
    row = bundle_row(tx, bundle)
    files = (row.manifest or {}).get("files") or {}
    if options.spa and "index.html" not in files:
        raise InvalidInput.at("spa", "a single-page app needs an index.html in the bundle")


def _require_site(tx: Tx) -> None:
    served = tx.session.scalar(
        select(func.count())
        .select_from(DomainRow)
        .where(DomainRow.project_id == tx.project, DomainRow.status == "active")
    )
    if not served:
        raise Conflict(
            "the project has no verified domain: add and verify one, then deploy",
            field="domains",
        )


def _cancel_in_progress(tx: Tx, version: int, now: datetime) -> None:
    for row in rollouts.in_progress(tx, tx.project):
        rollouts.set_status(tx, row, "cancelled", now, f"replaced by version {version}")


def _next_version(tx: Tx) -> int:
    top = tx.session.scalar(
        select(func.max(EdgeDeploymentRow.version)).where(
            EdgeDeploymentRow.project_id == tx.project
        )
    )
    return int(top or 0) + 1


def _canary(tx: Tx, regions: list[str]) -> str:
    live = liveness.live_ids(tx)
    nodes = [
        n
        for n in tx.session.scalars(select(EdgeNodeRow).order_by(EdgeNodeRow.name))
        if n.id in live and n.region in regions
    ]
    if not nodes:
        raise Conflict("no live edge node in " + ", ".join(regions), field="regions")
    nodes.sort(key=lambda n: (regions.index(n.region), n.name))
    return nodes[0].id


def _create(
    tx: Tx,
    *,
    bundle: str,
    strategy: str,
    regions: list[str],
    placement: dict[str, Any],
    options: ServeOptions,
    request: dict[str, Any],
    at_once: bool = False,
    reactivates: str | None = None,
) -> EdgeDeployment:
    now = utcnow()
    version = _next_version(tx)
    _cancel_in_progress(tx, version, now)
    ordered = sorted(regions)
    placement = {
        **placement,
        "regions": ordered,
        "cost_per_month": region_cost_per_month(len(ordered)),
    }
    row = EdgeDeploymentRow(
        id=new_id("dep"),
        project_id=tx.project,
        version=version,
        bundle_id=bundle,
        strategy=strategy,
        regions=ordered,
        request=request,
        placement=placement,
        options=options.model_dump(mode="json"),
        status="rolling" if at_once else "canary",
        canary_node=None if at_once else _canary(tx, ordered),
        phase_at=now,
        reactivates=reactivates,
        changed_revision=tx.next_revision(),
        created_at=now,
        created_by=tx.actor.name,
    )
    tx.session.add(row)
    tx.session.flush()
    tx.record(
        "create",
        KIND,
        row.id,
        None,
        {
            "version": version,
            "bundle": bundle,
            "regions": ordered,
            "strategy": strategy,
            "status": row.status,
        },
    )
    return to_model(row, rollouts.node_views(tx, tx.project), parents(tx))


def deploy(tx: Tx, data: DeployRequest | dict[str, Any]) -> EdgeDeployment:
    """A new version: the bundle (default: the current one) in the regions the strategy
    chooses among ``regions`` (default: every region with a live node)."""
    tx.actor.require(tx.project, Role.EDITOR)
    request = data if isinstance(data, DeployRequest) else validate(DeployRequest, data)
    now = utcnow()
    base = current_row(tx)
    bundle = request.bundle or (base.bundle_id if base is not None else None)
    if bundle is None:
        raise InvalidInput.at(
            "bundle", "the project has no bundle yet: upload one and name it in `bundle`"
        )
    options = _options(
        dict(base.options or {}) if base is not None else {},
        spa=request.spa,
        origin_paths=request.origin_paths,
        check_path=request.check_path,
    )
    _check_bundle(tx, bundle, options)
    _require_site(tx)
    found = candidates(tx, request.regions)
    users = _users(tx, request, now)
    try:
        placed = place(
            request.strategy,
            found,
            users,
            latency_target_ms=request.latency_target_ms,
            max_regions=request.max_regions,
        )
    except PlacementError as exc:
        raise InvalidInput.at(exc.field, str(exc)) from None
    return _create(
        tx,
        bundle=bundle,
        strategy=request.strategy,
        regions=list(placed.regions),
        placement=placed.to_dict(),
        options=options,
        request=request.model_dump(mode="json", exclude_none=True),
    )


def reactivate(tx: Tx, deployment_id: str) -> EdgeDeployment:
    """Make an earlier version current again, on every node of its regions at once."""
    tx.actor.require(tx.project, Role.EDITOR)
    old = get_row(tx, deployment_id)
    if old.status in ("canary", "rolling"):
        raise Conflict(f"version {old.version} is being rolled out already")
    bundle_row(tx, old.bundle_id)  # still there
    _require_site(tx)
    live_regions = {c.code for c in candidates(tx, None)}
    regions = [r for r in old.regions or () if r in live_regions]
    if not regions:
        raise Conflict(
            f"none of version {old.version}'s regions ({', '.join(old.regions or ())}) "
            "has a live edge node",
            field="regions",
        )
    return _create(
        tx,
        bundle=old.bundle_id,
        strategy=old.strategy,
        regions=regions,
        placement=dict(old.placement or {}),
        options=ServeOptions.model_validate(old.options or {}),
        request={"reactivate": old.id, "version": old.version},
        at_once=True,
        reactivates=old.id,
    )


def rollback(tx: Tx) -> EdgeDeployment:
    """Reactivate the version that was active before the current one."""
    tx.actor.require(tx.project, Role.EDITOR)
    active = tx.session.scalar(
        select(EdgeDeploymentRow).where(
            EdgeDeploymentRow.project_id == tx.project, EdgeDeploymentRow.status == "active"
        )
    )
    if active is None:
        raise Conflict("the project has no active edge deployment to roll back")
    earlier = tx.session.scalar(
        select(EdgeDeploymentRow)
        .where(
            EdgeDeploymentRow.project_id == tx.project,
            EdgeDeploymentRow.status == "superseded",
            EdgeDeploymentRow.activated_at.is_not(None),
            EdgeDeploymentRow.version < active.version,
            EdgeDeploymentRow.bundle_id != active.bundle_id,
        )
        .order_by(EdgeDeploymentRow.version.desc())
        .limit(1)
    )
    if earlier is None:
        raise Conflict(f"version {active.version} is the first one: nothing to roll back to")
    return reactivate(tx, earlier.id)


def update_config(
    tx: Tx, deployment_id: str, data: ConfigUpdate | dict[str, Any]
) -> EdgeDeployment:
    """A new version of ``deployment_id`` with other serving options or regions."""
    tx.actor.require(tx.project, Role.EDITOR)
    change = data if isinstance(data, ConfigUpdate) else validate(ConfigUpdate, data)
    old = get_row(tx, deployment_id)
    options = _options(
        dict(old.options or {}),
        spa=change.spa,
        origin_paths=change.origin_paths,
        check_path=change.check_path,
    )
    _check_bundle(tx, old.bundle_id, options)
    _require_site(tx)
    regions = list(old.regions or ())
    if change.regions is not None:
        regions = [c.code for c in candidates(tx, change.regions)]
        if not regions:
            raise InvalidInput.at("regions", "at least one region")
    return _create(
        tx,
        bundle=old.bundle_id,
        strategy=old.strategy,
        regions=regions,
        placement=dict(old.placement or {}),
        options=options,
        request={"update": old.id, **change.model_dump(mode="json", exclude_none=True)},
    )


# Locations and metrics ----------------------------------------------------------------------


def locations(tx: Tx) -> list[EdgeLocation]:
    """Every region with edge nodes: where it is, its nodes, status, load and revisions."""
    tx.actor.require(tx.project, Role.VIEWER)
    now = utcnow()
    live = liveness.live_ids(tx)
    nodes = list(tx.session.scalars(select(EdgeNodeRow).order_by(EdgeNodeRow.name)))
    if not nodes:
        return []
    regions = {
        r.code: r
        for r in tx.session.scalars(
            select(RegionRow).where(RegionRow.code.in_({n.region for n in nodes}))
        )
    }
    load: dict[str, float] = {}
    rows = tx.session.execute(
        select(EdgeAnalyticsRow.node_id, func.sum(EdgeAnalyticsRow.requests))
        .where(EdgeAnalyticsRow.minute >= now - LOAD_WINDOW)
        .group_by(EdgeAnalyticsRow.node_id)
    )
    for node_id, requests in rows:
        load[node_id] = float(requests or 0) / (LOAD_WINDOW.total_seconds() / 60)
    desired = tx.current_revision()
    serving: dict[str, list[str]] = {}
    for d in tx.session.scalars(
        select(EdgeDeploymentRow).where(
            EdgeDeploymentRow.project_id == tx.project,
            EdgeDeploymentRow.status.in_(LIVE_STATUSES),
        )
    ):
        for r in d.regions or ():
            serving.setdefault(r, []).append(d.id)
    out: list[EdgeLocation] = []
    for code in sorted({n.region for n in nodes}):
        here = [n for n in nodes if n.region == code]
        region = regions.get(code)
        up = [n for n in here if n.id in live]
        status = "up" if len(up) == len(here) else "degraded" if up else "down"
        out.append(
            EdgeLocation(
                region=code,
                region_code=region.region_code if region is not None else None,
                region_type=region.area if region is not None else None,
                name=region.name if region is not None else code,
                latitude=region.latitude if region is not None else 0.0,
                longitude=region.longitude if region is not None else 0.0,
                status=status,
                nodes=[
                    LocationNode(
                        id=n.id,
                        name=n.name,
                        address=n.address,
                        live=n.id in live,
                        applied_revision=n.applied_revision,
                        in_sync=n.applied_revision is not None and n.applied_revision >= desired,
                        requests_per_min=round(load.get(n.id, 0.0), 2),
                    )
                    for n in here
                ],
                load=round(sum(load.get(n.id, 0.0) for n in here), 2),
                revisions=sorted({n.applied_revision for n in here if n.applied_revision}),
                deployments=sorted(serving.get(code, [])),
            )
        )
    return out


def metrics(
    tx: Tx,
    deployment_id: str,
    region: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> EdgeMetrics:
    """The version's traffic per region while it served (or over [start, end) within that)."""
    tx.actor.require(tx.project, Role.VIEWER)
    row = get_row(tx, deployment_id)
    deployed = sorted(row.regions or ())
    if region is not None:
        where = places.resolve(tx, region, "region")
        inside = [r for r in places.locations_in(tx, where) if r.code in deployed]
        if not inside:
            raise InvalidInput.at(
                "region",
                f"version {row.version} is not deployed in {region!r} "
                f"(it is in {', '.join(deployed) or 'no location'})",
            )
        deployed = [r.code for r in inside]
    known = parents(tx)
    now = utcnow()
    # Traffic is counted per minute: the minute the version started in counts.
    since = max(start or row.created_at, row.created_at).replace(second=0, microsecond=0)
    until = min(end or now, row.finished_at or now)
    if until < since:
        until = since
    traffic = analytics.regional(tx, tx.project, since, until, deployed)
    out: list[RegionMetrics] = []
    for code in deployed:
        t = traffic.get(code)
        fields = t.to_dict() if t is not None else {}
        parent_code, parent_type = known.get(code, (None, None))
        out.append(
            RegionMetrics(
                region=code,
                region_code=parent_code,
                region_type=parent_type,
                requests=int(fields.get("requests", 0)),
                bytes_out=int(fields.get("bytes_out", 0)),
                errors_4xx=int(fields.get("errors_4xx", 0)),
                errors_5xx=int(fields.get("errors_5xx", 0)),
                hits=int(fields.get("hits", 0)),
                misses=int(fields.get("misses", 0)),
                static=int(fields.get("static", 0)),
                hit_ratio=fields.get("hit_ratio"),
                p50_ms=fields.get("p50_ms"),
                p95_ms=fields.get("p95_ms"),
                countries=dict(fields.get("countries") or {}),
            )
        )
    return EdgeMetrics(deployment_id=row.id, start=since, end=until, regions=out)
