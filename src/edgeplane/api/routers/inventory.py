"""Regions, data centers, servers, services on servers and server metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Response

from edgeplane.api.deps import Ctx, GlobalCtx
from edgeplane.model.common import CapacityReport, DateTime, Page
from edgeplane.model.enums import Environment, ServerStatus, ServerType
from edgeplane.model.inventory import (
    DataCenter,
    DataCenterCreate,
    DataCenterPatch,
    Metrics,
    MetricsSample,
    Region,
    RegionCreate,
    RegionPatch,
    Server,
    ServerCreate,
    ServerPatch,
    Service,
    ServiceCreate,
    ServicePatch,
)
from edgeplane.services import datacenters, regions, server_services, servers

router = APIRouter(prefix="/api/v1/infrastructure", tags=["inventory"])

Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]
Limit = Annotated[int | None, Query(ge=1, le=1000, description="page size, 100 by default")]
Patch = Annotated[dict[str, Any], Body(description="the fields to change")]
RegionFilter = Annotated[
    str | None,
    Query(
        max_length=32,
        pattern=r"^[A-Za-z][A-Za-z0-9_-]{1,31}$",
        description="only those in this location (us-east), region code (na) or region type "
        "(americas); an unknown one is refused (422) naming what exists",
    ),
]


# Regions ----------------------------------------------------------------------------------


@router.get("/regions", response_model=list[Region])
def list_regions(ctx: GlobalCtx, region: RegionFilter = None) -> list[Region]:
    """The locations, each with its region code and region type."""
    with ctx.read(scoped=False) as tx:
        return regions.list_all(tx, region)


@router.post("/regions", response_model=Region, status_code=201)
def create_region(ctx: GlobalCtx, body: RegionCreate) -> Region:
    with ctx.write(scoped=False) as tx:
        return regions.create(tx, body)


@router.get("/regions/{code}", response_model=Region)
def get_region(ctx: GlobalCtx, code: str) -> Region:
    with ctx.read(scoped=False) as tx:
        return regions.get(tx, code)


@router.patch("/regions/{code}", response_model=Region)
def update_region(ctx: GlobalCtx, code: str, body: RegionPatch) -> Region:
    with ctx.write(scoped=False) as tx:
        return regions.update(tx, code, body.model_dump(mode="json", exclude_unset=True))


@router.delete("/regions/{code}", status_code=204)
def delete_region(ctx: GlobalCtx, code: str) -> Response:
    with ctx.write(scoped=False) as tx:
        regions.delete(tx, code)
    return Response(status_code=204)


# Data centers -----------------------------------------------------------------------------


@router.get("/datacenters", response_model=Page[DataCenter])
def list_data_centers(
    ctx: Ctx,
    cursor: Cursor = None,
    limit: Limit = None,
    region: RegionFilter = None,
    environment: Environment | None = None,
) -> Page[DataCenter]:
    with ctx.read() as tx:
        return datacenters.list_page(
            tx,
            region=region,
            environment=environment.value if environment else None,
            cursor=cursor,
            limit=limit,
        )


@router.post("/datacenters", response_model=DataCenter, status_code=201)
def create_data_center(ctx: Ctx, body: DataCenterCreate) -> DataCenter:
    with ctx.write() as tx:
        return datacenters.create(tx, body)


@router.get("/datacenters/{dc_id}", response_model=DataCenter)
def get_data_center(ctx: Ctx, dc_id: str) -> DataCenter:
    with ctx.read() as tx:
        return datacenters.get(tx, dc_id)


@router.get("/datacenters/{dc_id}/capacity", response_model=CapacityReport)
def data_center_capacity(ctx: Ctx, dc_id: str) -> CapacityReport:
    with ctx.read() as tx:
        return datacenters.capacity_report(tx, dc_id)


@router.patch("/datacenters/{dc_id}", response_model=DataCenter)
def update_data_center(ctx: Ctx, dc_id: str, body: DataCenterPatch) -> DataCenter:
    with ctx.write() as tx:
        return datacenters.update(tx, dc_id, body.model_dump(mode="json", exclude_unset=True))


@router.delete("/datacenters/{dc_id}", status_code=204)
def delete_data_center(ctx: Ctx, dc_id: str) -> Response:
    with ctx.write() as tx:
        datacenters.delete(tx, dc_id)
    return Response(status_code=204)


# Servers ----------------------------------------------------------------------------------


@router.get("/servers", response_model=Page[Server])
def list_servers(
    ctx: Ctx,
    cursor: Cursor = None,
    limit: Limit = None,
    type: ServerType | None = None,
    region: RegionFilter = None,
    location: RegionFilter = None,
    status: ServerStatus | None = None,
    data_center_id: str | None = None,
    environment: Environment | None = None,
) -> Page[Server]:
    with ctx.read() as tx:
        return servers.list_page(
            tx,
            type=type.value if type else None,
            region=region,
            location=location,
            status=status.value if status else None,
            data_center_id=data_center_id,
            environment=environment.value if environment else None,
            cursor=cursor,
            limit=limit,
        )


@router.post("/servers", response_model=Server, status_code=201)
def create_server(ctx: Ctx, body: ServerCreate) -> Server:
    with ctx.write() as tx:
        return servers.create(tx, body)


@router.get("/servers/{server_id}", response_model=Server)
def get_server(ctx: Ctx, server_id: str) -> Server:
    with ctx.read() as tx:
        return servers.get(tx, server_id)


@router.patch("/servers/{server_id}", response_model=Server)
def update_server(ctx: Ctx, server_id: str, body: ServerPatch) -> Server:
    with ctx.write() as tx:
        return servers.update(tx, server_id, body.model_dump(mode="json", exclude_unset=True))


@router.delete("/servers/{server_id}", status_code=204)
def delete_server(ctx: Ctx, server_id: str) -> Response:
    with ctx.write() as tx:
        servers.delete(tx, server_id)
    return Response(status_code=204)


@router.get("/servers/{server_id}/capacity", response_model=CapacityReport)
def server_capacity(ctx: Ctx, server_id: str) -> CapacityReport:
    with ctx.read() as tx:
        return servers.capacity_report(tx, server_id)


_SAMPLE_SCHEMA = MetricsSample.model_json_schema()


@router.post("/servers/{server_id}/metrics", response_model=Server)
def ingest_metrics(
    ctx: Ctx,
    server_id: str,
    # Validated by the service, not here: a union of one sample and a list of samples would
    # report each error twice, under the names of the union's members.
    body: Annotated[
        Any,
        Body(
            description="one sample or a list of samples",
            json_schema_extra={
                "anyOf": [_SAMPLE_SCHEMA, {"type": "array", "items": _SAMPLE_SCHEMA}]
            },
        ),
    ],
) -> Server:
    if isinstance(body, bytes):  # FastAPI passes a body that is not JSON on as bytes
        raise HTTPException(415, "the body must be JSON (Content-Type: application/json)")
    with ctx.write() as tx:
        return servers.ingest_metrics(tx, server_id, body)


@router.get("/servers/{server_id}/metrics", response_model=list[Metrics])
def metrics_history(
    ctx: Ctx,
    server_id: str,
    since: DateTime | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 100,
) -> list[Metrics]:
    with ctx.read() as tx:
        return servers.metrics_history(tx, server_id, since=since, limit=limit)


# Services on servers ----------------------------------------------------------------------


@router.get("/services", response_model=Page[Service])
def list_services(
    ctx: Ctx,
    cursor: Cursor = None,
    limit: Limit = None,
    server_id: str | None = None,
    type: str | None = None,
) -> Page[Service]:
    with ctx.read() as tx:
        return server_services.list_page(
            tx, server_id=server_id, type=type, cursor=cursor, limit=limit
        )


@router.post("/services", response_model=Service, status_code=201)
def create_service(ctx: Ctx, body: ServiceCreate) -> Service:
    with ctx.write() as tx:
        return server_services.create(tx, body)


@router.get("/services/{service_id}", response_model=Service)
def get_service(ctx: Ctx, service_id: str) -> Service:
    with ctx.read() as tx:
        return server_services.get(tx, service_id)


@router.patch("/services/{service_id}", response_model=Service)
def update_service(ctx: Ctx, service_id: str, body: ServicePatch) -> Service:
    with ctx.write() as tx:
        return server_services.update(
            tx, service_id, body.model_dump(mode="json", exclude_unset=True)
        )


@router.delete("/services/{service_id}", status_code=204)
def delete_service(ctx: Ctx, service_id: str) -> Response:
    with ctx.write() as tx:
        server_services.delete(tx, service_id)
    return Response(status_code=204)
