"""Load balancers: an algorithm, a health check, timeouts and backends (servers or addresses).

Backends are stored in ``load_balancers.backends`` (``Backend.model_dump(mode="json")``), the
timeouts, retries and the billing tier in ``load_balancers.options`` (a tier, when chosen,
is one of the cost model's and holds the backends), and ``load_balancers.endpoints`` keeps the
backends' addresses (the operations guide's shape). A backend is named by its key: the address
as given, plus ``:port`` for a server id with an explicit port (``backend_key``); the same key
names it in the edge nodes' health reports (pool ``lb.<project>.<lb id>``).
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import select

from edgeplane.certificates import origin_client
from edgeplane.errors import Conflict, InvalidInput, NotFound
from edgeplane.model.common import Page
from edgeplane.model.enums import Role
from edgeplane.model.operations import (
    Backend,
    BackendHealth,
    BackendUpdate,
    HealthCheck,
    LoadBalancer,
    LoadBalancerCreate,
    NodeBackendHealth,
    classify_endpoint,
)
from edgeplane.model.regions import REGION_CODES_OF
from edgeplane.services import cdn, cost_model, regions, scaling_groups
from edgeplane.services.common import choose_id, get_scoped, merge_patch, paged, validate
from edgeplane.store.db import Tx
from edgeplane.store.tables import (
    BackendHealthRow,
    CDNConfigRow,
    EdgeNodeRow,
    LoadBalancerRow,
    ServerRow,
)

KIND = "load_balancer"
MAX_BACKENDS = 1000
_EDITABLE = {
    "id",
    "name",
    "algorithm",
    "region",
    "backends",
    "health_check",
    "connect_timeout_s",
    "read_timeout_s",
    "retries",
    "tier",
    "environment",
    "tls",
}


def pool_id(project: str, lb_id: str) -> str:
    """The id of the load balancer's pool in edge snapshots and health reports."""
    return f"lb.{project}.{lb_id}"


def _backends_of(row: LoadBalancerRow) -> list[Backend]:
    if row.backends:
        return [Backend.model_validate(b) for b in row.backends]
    return [Backend(address=e) for e in row.endpoints or []]


def to_model(row: LoadBalancerRow) -> LoadBalancer:
    options = row.options or {}
    backends = _backends_of(row)
    return LoadBalancer(
        id=row.id,
        project=row.project_id,
        name=row.name,
        algorithm=row.algorithm,
        region=row.region,
        endpoints=[b.address for b in backends],
        backends=backends,
        health_check=row.health_check,
        connect_timeout_s=options.get("connect_timeout_s", 2.0),
        read_timeout_s=options.get("read_timeout_s", 30.0),
        retries=options.get("retries", 1),
        tier=options.get("tier"),
        environment=row.environment,
        tls=options.get("tls"),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _serving_id(tx: Tx) -> str | None:
    """The id of the load balancer the edge serves the project's domains through, if any: the
    CDN config's origin, or, with no CDN config, the project's only load balancer (as
    ``snapshot.build.site_pool`` chooses)."""
    config = tx.session.get(CDNConfigRow, tx.project)
    if config is not None:
        named = [o.get("load_balancer") for o in config.origins or [] if o.get("load_balancer")]
        return str(named[0]) if named else None
    ids = list(
        tx.session.scalars(
            select(LoadBalancerRow.id).where(LoadBalancerRow.project_id == tx.project).limit(2)
        )
    )
    return ids[0] if len(ids) == 1 else None


def _audited(lb: LoadBalancer) -> dict[str, Any]:
    """What the audit trail keeps of a load balancer: ``domains`` is derived, not stored."""
    return lb.model_dump(mode="json", exclude={"domains"})


def with_domains(tx: Tx, lbs: list[LoadBalancer]) -> list[LoadBalancer]:
    """The load balancers with ``domains``: what the edge serves through each."""
    serving = _serving_id(tx)
    if serving is None or not any(lb.id == serving for lb in lbs):
        return lbs
    domains = cdn.active_domains(tx)
    return [lb.model_copy(update={"domains": domains}) if lb.id == serving else lb for lb in lbs]


def _check_servers(tx: Tx, spec: LoadBalancerCreate) -> None:
    """Every backend that names a server names one of the project's servers."""
    wanted = [b.address for b in spec.backends if classify_endpoint(b.address) == "server"]
    if not wanted:
        return
    found = set(
        tx.session.scalars(
            select(ServerRow.id).where(ServerRow.project_id == tx.project, ServerRow.id.in_(wanted))
        )
    )
    for i, backend in enumerate(spec.backends):
        if backend.address in wanted and backend.address not in found:
            raise InvalidInput.at(
                spec.backend_field(i),
                f"no server {backend.address!r} in project {tx.project!r} "
                "(an endpoint is a server id, host:port or an http(s) URL)",
            )


def _check_tier(tx: Tx, spec: LoadBalancerCreate) -> None:
    """An explicit tier is one of the cost model's and holds the backends."""
    if spec.tier is None:
        return
    model = cost_model.current(tx)
    tier = model.tier(spec.tier)
    if tier is None:
        names = ", ".join(t.name for t in model.lb_tiers)
        raise InvalidInput.at("tier", f"no tier {spec.tier!r} in the cost model ({names})")
    if tier.max_backends is not None and len(spec.backends) > tier.max_backends:
        raise InvalidInput.at(
            "tier",
            f"the {tier.name} tier holds at most {tier.max_backends} backends and this load "
            f"balancer has {len(spec.backends)}; choose a larger tier (or none)",
        )


def _client_certificate(tx: Tx, spec: LoadBalancerCreate) -> None:
    """The project's client certificate, issued when the backends are to be shown one."""
    if spec.tls is not None and spec.tls.client_certificate:
        origin_client.ensure(tx)


def _region_code(tx: Tx, spec: LoadBalancerCreate) -> str | None:
    """A region code from what ``region`` names: a code, a location's code, or the one code
    of a region type that has only one (americas has two: na and sa)."""
    if spec.region is None:
        return None
    place = regions.resolve(tx, spec.region, "region")
    if place.region_code is not None:
        return place.region_code.value
    codes = REGION_CODES_OF[place.region_type]
    if len(codes) == 1:
        return codes[0].value
    raise InvalidInput.at(
        "region",
        f"{place.text!r} is a region type; a load balancer's region is a region code: "
        f"{' or '.join(c.value for c in codes)} (or a location in one of them)",
    )


def _fill(row: LoadBalancerRow, spec: LoadBalancerCreate, lb_id: str, region: str | None) -> None:
    row.name = spec.name or lb_id
    row.algorithm = spec.algorithm.value
    row.region = region
    row.backends = [b.model_dump(mode="json") for b in spec.backends]
    row.endpoints = [b.address for b in spec.backends]
    row.health_check = spec.health_check.model_dump(mode="json")
    row.options = spec.options()
    row.environment = spec.environment.value


def create(tx: Tx, data: LoadBalancerCreate | dict[str, Any]) -> LoadBalancer:
    tx.actor.require(tx.project, Role.EDITOR)
    spec = validate(LoadBalancerCreate, data) if isinstance(data, dict) else data
    lb_id = choose_id(tx, LoadBalancerRow, spec.id, "lb", "load balancer")
    _check_servers(tx, spec)
    _check_tier(tx, spec)
    _client_certificate(tx, spec)
    row = LoadBalancerRow(project_id=tx.project, id=lb_id)
    _fill(row, spec, lb_id, _region_code(tx, spec))
    tx.session.add(row)
    tx.session.flush()
    out = to_model(row)
    tx.record("create", KIND, lb_id, None, _audited(out))
    return with_domains(tx, [out])[0]


def get(tx: Tx, lb_id: str) -> LoadBalancer:
    tx.actor.require(tx.project, Role.VIEWER)
    return with_domains(tx, [to_model(get_scoped(tx, LoadBalancerRow, lb_id, "load balancer"))])[0]


def list_page(tx: Tx, *, cursor: str | None = None, limit: int | None = None) -> Page[LoadBalancer]:
    tx.actor.require(tx.project, Role.VIEWER)
    q = select(LoadBalancerRow).where(LoadBalancerRow.project_id == tx.project)
    rows, nxt = paged(tx, q, LoadBalancerRow.id, cursor, limit)
    items = with_domains(tx, [to_model(r) for r in rows])
    return Page[LoadBalancer](items=items, next_cursor=nxt)


def _current(lb: LoadBalancer) -> dict[str, Any]:
    return lb.model_dump(mode="json", include=_EDITABLE)


def _save(
    tx: Tx, row: LoadBalancerRow, before: LoadBalancer, spec: LoadBalancerCreate
) -> LoadBalancer:
    _check_servers(tx, spec)
    _check_tier(tx, spec)
    _client_certificate(tx, spec)
    _fill(row, spec, row.id, _region_code(tx, spec))
    tx.session.flush()
    after = to_model(row)
    tx.record(
        "update",
        KIND,
        row.id,
        _audited(before),
        _audited(after),
    )
    return with_domains(tx, [after])[0]


def update(tx: Tx, lb_id: str, patch: dict[str, Any]) -> LoadBalancer:
    """A JSON merge patch. ``endpoints`` alone replaces the backends by that list, keeping the
    weight, backup flag and state of the addresses that stay."""
    tx.actor.require(tx.project, Role.EDITOR)
    row = get_scoped(tx, LoadBalancerRow, lb_id, "load balancer")
    before = to_model(row)
    current = _current(before)
    if isinstance(patch, dict) and "type" in patch and "algorithm" not in patch:
        patch = {k if k != "type" else "algorithm": v for k, v in patch.items()}
    keep: dict[str, Backend] = {}
    if isinstance(patch, dict) and "endpoints" in patch and "backends" not in patch:
        current["backends"] = []
        keep = {b.address: b for b in before.backends if b.port is None}
    spec = merge_patch(LoadBalancerCreate, current, patch, fixed={"id"})
    if keep:
        spec.backends = [
            keep[b.address]
            if spec.backend_field(i).startswith("endpoints.") and b.address in keep
            else b
            for i, b in enumerate(spec.backends)
        ]
    return _save(tx, row, before, spec)


def delete(tx: Tx, lb_id: str) -> None:
    tx.actor.require(tx.project, Role.EDITOR)
    row = get_scoped(tx, LoadBalancerRow, lb_id, "load balancer")
    group = scaling_groups.scaling_load_balancer(tx, lb_id)
    if group is not None:
        raise Conflict(
            f"load balancer {lb_id!r} is scaled by scaling group {group!r}; delete it first"
        )
    if cdn.uses_load_balancer(tx, lb_id):
        raise Conflict(
            f"load balancer {lb_id!r} is the origin of the project's CDN config; "
            "change the CDN origins first"
        )
    before = to_model(row)
    tx.session.delete(row)
    tx.record("delete", KIND, lb_id, _audited(before), None)


# Backends ---------------------------------------------------------------------------------


def _find(lb: LoadBalancer, key: str) -> int:
    """The index of the backend named ``key`` (its key, or its address when that is unique)."""
    for i, backend in enumerate(lb.backends):
        if backend.key == key:
            return i
    by_address = [i for i, b in enumerate(lb.backends) if b.address == key]
    if len(by_address) == 1:
        return by_address[0]
    if by_address:
        raise Conflict(
            f"{key!r} names several backends of load balancer {lb.id!r}; give address:port",
            field="address",
        )
    raise NotFound(f"backend {key!r} not found in load balancer {lb.id!r}")


def _with_backends(
    tx: Tx, row: LoadBalancerRow, before: LoadBalancer, backends: list[dict[str, Any]]
) -> LoadBalancer:
    current = _current(before)
    current["backends"] = backends
    spec = validate(LoadBalancerCreate, current)
    return _save(tx, row, before, spec)


def list_backends(tx: Tx, lb_id: str) -> list[Backend]:
    return get(tx, lb_id).backends


def add_backend(tx: Tx, lb_id: str, data: Backend | dict[str, Any] | str) -> Backend:
    tx.actor.require(tx.project, Role.EDITOR)
    row = get_scoped(tx, LoadBalancerRow, lb_id, "load balancer")
    backend = data if isinstance(data, Backend) else validate(Backend, data)
    before = to_model(row)
    if any(b.key == backend.key for b in before.backends):
        raise Conflict(
            f"backend {backend.key!r} is already in load balancer {lb_id!r}", field="address"
        )
    if len(before.backends) >= MAX_BACKENDS:
        raise Conflict(f"a load balancer has at most {MAX_BACKENDS} backends", field="address")
    stored = [b.model_dump(mode="json") for b in before.backends]
    stored.append(backend.model_dump(mode="json"))
    try:
        after = _with_backends(tx, row, before, stored)
    except InvalidInput as exc:
        if exc.field == "tier":  # one backend more than the chosen tier holds
            raise
        # Only the new backend can be wrong (a server that does not exist).
        raise InvalidInput.at("address", exc.message.split(": ", 1)[-1]) from None
    return after.backends[-1]


def update_backend(tx: Tx, lb_id: str, key: str, patch: BackendUpdate | dict[str, Any]) -> Backend:
    tx.actor.require(tx.project, Role.EDITOR)
    row = get_scoped(tx, LoadBalancerRow, lb_id, "load balancer")
    changes = patch if isinstance(patch, BackendUpdate) else validate(BackendUpdate, patch)
    before = to_model(row)
    index = _find(before, key)
    stored = [b.model_dump(mode="json") for b in before.backends]
    given = changes.model_dump(exclude_unset=True)
    for name, value in given.items():
        if value is None and name != "port":
            raise InvalidInput.at(name, "cannot be null")
    stored[index] = validate(Backend, {**stored[index], **given}).model_dump(mode="json")
    new_key = Backend.model_validate(stored[index]).key
    if any(i != index and Backend.model_validate(b).key == new_key for i, b in enumerate(stored)):
        raise Conflict(f"backend {new_key!r} is already in load balancer {lb_id!r}", field="port")
    return _with_backends(tx, row, before, stored).backends[index]


def drain_backend(tx: Tx, lb_id: str, key: str) -> Backend:
    """No new requests go to the backend; requests in flight finish."""
    return update_backend(tx, lb_id, key, {"state": "draining"})


def remove_backend(tx: Tx, lb_id: str, key: str) -> None:
    tx.actor.require(tx.project, Role.EDITOR)
    row = get_scoped(tx, LoadBalancerRow, lb_id, "load balancer")
    before = to_model(row)
    index = _find(before, key)
    stored = [b.model_dump(mode="json") for i, b in enumerate(before.backends) if i != index]
    _with_backends(tx, row, before, stored)


def update_health_check(tx: Tx, lb_id: str, data: HealthCheck | dict[str, Any]) -> LoadBalancer:
    """Replace the health check (fields not given take their defaults)."""
    tx.actor.require(tx.project, Role.EDITOR)
    row = get_scoped(tx, LoadBalancerRow, lb_id, "load balancer")
    check = data if isinstance(data, HealthCheck) else validate(HealthCheck, data, "health_check")
    before = to_model(row)
    current = _current(before)
    current["health_check"] = check.model_dump(mode="json")
    return _save(tx, row, before, validate(LoadBalancerCreate, current))


# Health -----------------------------------------------------------------------------------


def _overall(states: list[str]) -> Literal["up", "down", "unknown"]:
    if "up" in states:
        return "up"
    if "down" in states:
        return "down"
    return "unknown"


def nodes_health(tx: Tx, pool: str) -> dict[str, list[NodeBackendHealth]]:
    """Backend key -> what each edge node's active checks last saw of it in ``pool``."""
    rows = tx.session.execute(
        select(BackendHealthRow, EdgeNodeRow.name)
        .join(EdgeNodeRow, EdgeNodeRow.id == BackendHealthRow.node_id)
        .where(BackendHealthRow.pool == pool)
        .order_by(EdgeNodeRow.name)
    ).all()
    seen: dict[str, list[NodeBackendHealth]] = {}
    for health, node_name in rows:
        seen.setdefault(health.backend, []).append(
            NodeBackendHealth(
                node=node_name,
                node_id=health.node_id,
                state=health.state if health.state in ("up", "down") else "unknown",
                reason=health.reason or "",
                checked_at=health.checked_at,
                changed_at=health.changed_at,
                latency_ms=health.latency_ms,
            )
        )
    return seen


def overall(nodes: list[NodeBackendHealth]) -> Literal["up", "down", "unknown"]:
    """Up if any node says up, down if all that checked say down."""
    return _overall([n.state for n in nodes])


def backend_health(tx: Tx, lb_id: str) -> list[BackendHealth]:
    """Per backend: its admin state and what each edge node's active checks last saw."""
    lb = get(tx, lb_id)
    seen = nodes_health(tx, pool_id(tx.project, lb_id))
    out = []
    for backend in lb.backends:
        nodes = seen.get(backend.key, [])
        out.append(
            BackendHealth(
                backend=backend.key,
                address=backend.address,
                port=backend.port,
                weight=backend.weight,
                backup=backend.backup,
                admin_state=backend.state,
                wait_for_check=backend.wait_for_check,
                state=overall(nodes),
                nodes=nodes,
            )
        )
    return out
