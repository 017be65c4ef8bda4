"""Load balancer records, disaster-recovery configs and global routing."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Response

from edgeplane.api.deps import Ctx
from edgeplane.api.problems import refuses
from edgeplane.model.common import Page
from edgeplane.model.operations import (
    Backend,
    BackendHealth,
    BackendUpdate,
    DRConfig,
    DRConfigCreate,
    DRConfigPatch,
    HealthCheck,
    LoadBalancer,
    LoadBalancerCreate,
    LoadBalancerPatch,
)
from edgeplane.model.routing import RouteDecision
from edgeplane.model.service_settings import SERVICE_TYPES
from edgeplane.services import dr, load_balancers, routing

router = APIRouter(prefix="/api/v1/infrastructure", tags=["operations"])

Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]
Limit = Annotated[int | None, Query(ge=1, le=1000, description="page size, 100 by default")]
Patch = Annotated[dict[str, Any], Body(description="the fields to change")]


@router.get("/loadbalancer", response_model=Page[LoadBalancer])
def list_load_balancers(ctx: Ctx, cursor: Cursor = None, limit: Limit = None) -> Page[LoadBalancer]:
    with ctx.read() as tx:
        return load_balancers.list_page(tx, cursor=cursor, limit=limit)


@router.post("/loadbalancer", response_model=LoadBalancer, status_code=201)
def create_load_balancer(ctx: Ctx, body: LoadBalancerCreate) -> LoadBalancer:
    with ctx.write() as tx:
        return load_balancers.create(tx, body)


@router.get("/loadbalancer/{lb_id}", response_model=LoadBalancer)
def get_load_balancer(ctx: Ctx, lb_id: str) -> LoadBalancer:
    with ctx.read() as tx:
        return load_balancers.get(tx, lb_id)


@router.patch("/loadbalancer/{lb_id}", response_model=LoadBalancer)
def update_load_balancer(ctx: Ctx, lb_id: str, body: LoadBalancerPatch) -> LoadBalancer:
    with ctx.write() as tx:
        return load_balancers.update(tx, lb_id, body.model_dump(mode="json", exclude_unset=True))


@router.delete("/loadbalancer/{lb_id}", status_code=204)
def delete_load_balancer(ctx: Ctx, lb_id: str) -> Response:
    with ctx.write() as tx:
        load_balancers.delete(tx, lb_id)
    return Response(status_code=204)


@router.get("/loadbalancer/{lb_id}/backends", response_model=list[Backend])
def list_backends(ctx: Ctx, lb_id: str) -> list[Backend]:
    with ctx.read() as tx:
        return load_balancers.list_backends(tx, lb_id)


@router.post("/loadbalancer/{lb_id}/backends", response_model=Backend, status_code=201)
def add_backend(ctx: Ctx, lb_id: str, body: Backend) -> Backend:
    """Add a backend; 409 when its address (and port) is there already."""
    with ctx.write() as tx:
        return load_balancers.add_backend(tx, lb_id, body)


@router.post("/loadbalancer/{lb_id}/backends/{address:path}/drain", response_model=Backend)
def drain_backend(ctx: Ctx, lb_id: str, address: str) -> Backend:
    """Stop sending new requests to the backend; requests in flight finish."""
    with ctx.write() as tx:
        return load_balancers.drain_backend(tx, lb_id, address)


@router.api_route(
    "/loadbalancer/{lb_id}/backends/{address:path}/drain",
    methods=["GET", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
)
@refuses
def _drain_other_methods() -> None:
    """``.../drain`` takes POST alone (an address that itself ends in /drain cannot be
    changed through the path: use its URL without the suffix)."""
    raise HTTPException(405)


@router.patch("/loadbalancer/{lb_id}/backends/{address:path}", response_model=Backend)
def update_backend(ctx: Ctx, lb_id: str, address: str, body: BackendUpdate) -> Backend:
    """Change a backend's weight, backup flag or state (active, draining, disabled)."""
    with ctx.write() as tx:
        return load_balancers.update_backend(tx, lb_id, address, body)


@router.delete("/loadbalancer/{lb_id}/backends/{address:path}", status_code=204)
def remove_backend(ctx: Ctx, lb_id: str, address: str) -> Response:
    with ctx.write() as tx:
        load_balancers.remove_backend(tx, lb_id, address)
    return Response(status_code=204)


@router.get("/loadbalancer/{lb_id}/health", response_model=list[BackendHealth])
def get_backend_health(ctx: Ctx, lb_id: str) -> list[BackendHealth]:
    """Per backend, what each edge node's active checks last saw (up if any node says up)."""
    with ctx.read() as tx:
        return load_balancers.backend_health(tx, lb_id)


@router.put("/loadbalancer/{lb_id}/health-check", response_model=LoadBalancer)
def update_health_check(ctx: Ctx, lb_id: str, body: HealthCheck) -> LoadBalancer:
    """Replace the health check; fields not given take their defaults."""
    with ctx.write() as tx:
        return load_balancers.update_health_check(tx, lb_id, body)


@router.get("/dr-configs", response_model=Page[DRConfig])
def list_dr_configs(ctx: Ctx, cursor: Cursor = None, limit: Limit = None) -> Page[DRConfig]:
    with ctx.read() as tx:
        return dr.list_page(tx, cursor=cursor, limit=limit)


@router.post("/dr-configs", response_model=DRConfig, status_code=201)
def create_dr_config(ctx: Ctx, body: DRConfigCreate) -> DRConfig:
    with ctx.write() as tx:
        return dr.create(tx, body)


@router.get("/dr-configs/{dr_id}", response_model=DRConfig)
def get_dr_config(ctx: Ctx, dr_id: str) -> DRConfig:
    with ctx.read() as tx:
        return dr.get(tx, dr_id)


@router.patch("/dr-configs/{dr_id}", response_model=DRConfig)
def update_dr_config(ctx: Ctx, dr_id: str, body: DRConfigPatch) -> DRConfig:
    with ctx.write() as tx:
        return dr.update(tx, dr_id, body.model_dump(mode="json", exclude_unset=True))


@router.delete("/dr-configs/{dr_id}", status_code=204)
def delete_dr_config(ctx: Ctx, dr_id: str) -> Response:
    with ctx.write() as tx:
        dr.delete(tx, dr_id)
    return Response(status_code=204)


@router.get("/route", response_model=RouteDecision)
def route_request(
    ctx: Ctx,
    client_ip: Annotated[
        str,
        Query(
            description="the client's IPv4 or IPv6 address",
            json_schema_extra={"anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]},
        ),
    ],
    service_type: Annotated[
        str,
        Query(
            description="the service the client wants, e.g. cdn",
            json_schema_extra={"enum": sorted(SERVICE_TYPES)},
        ),
    ],
) -> RouteDecision:
    """The nearest healthy server offering the service with spare capacity, and why."""
    with ctx.read() as tx:
        return routing.route_request(tx, ctx.locator, ctx.settings, client_ip, service_type)
