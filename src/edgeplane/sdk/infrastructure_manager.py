"""``InfrastructureManager``: servers, services on servers and global request routing."""

from __future__ import annotations

from typing import Any

from edgeplane.model.common import CapacityReport, Page
from edgeplane.model.enums import RegionCode, RegionType, ServerType
from edgeplane.model.inventory import Metrics, Region, Server, Service
from edgeplane.model.routing import RouteDecision
from edgeplane.sdk.client import Client, client_for
from edgeplane.settings import Settings

BASE = "/api/v1/infrastructure"


class InfrastructureManager:
    """Regional servers, the services they run, their metrics, and global routing.

    Embedded (state under ``$EDGEPLANE_HOME``) unless ``EDGEPLANE_URL`` and
    ``EDGEPLANE_TOKEN`` point it at a control plane, or ``url`` / ``token`` are given.
    """

    def __init__(
        self,
        *,
        url: str | None = None,
        token: str | None = None,
        project: str | None = None,
        settings: Settings | None = None,
        client: Client | None = None,
    ) -> None:
        self.client = client_for(client, url=url, token=token, project=project, settings=settings)

    # Servers ---------------------------------------------------------------------------

    async def create_server(
        self,
        name: str,
        type: ServerType | str,
        region: RegionType | RegionCode | str | None = None,
        location: str | None = None,
        capacity: dict[str, float] | None = None,
        **fields: Any,
    ) -> Server:
        """A server. ``region`` and ``location`` may each be a location (``us-east``), a
        region code (``RegionCode.NA``) or a region type (``RegionType.AMERICAS``): the
        location is taken from whichever names one, else from ``data_center_id``, and the
        region follows it."""
        body = {
            "name": name,
            "type": type,
            "region": region,
            "location": location,
            "capacity": capacity,
            **fields,
        }
        body = {k: v for k, v in body.items() if v is not None or k in fields}
        return await self.client.post_as(Server, f"{BASE}/servers", body)

    async def get_server(self, server_id: str) -> Server:
        return await self.client.get_as(Server, f"{BASE}/servers/{server_id}")

    async def list_servers(
        self, *, cursor: str | None = None, limit: int | None = None, **filters: Any
    ) -> Page[Server]:
        return await self.client.get_as(
            Page[Server], f"{BASE}/servers", cursor=cursor, limit=limit, **filters
        )

    async def update_server(self, server_id: str, **changes: Any) -> Server:
        return await self.client.patch_as(Server, f"{BASE}/servers/{server_id}", changes)

    async def delete_server(self, server_id: str) -> None:
        await self.client.delete(f"{BASE}/servers/{server_id}")

    async def get_server_capacity(self, server_id: str) -> CapacityReport:
        return await self.client.get_as(CapacityReport, f"{BASE}/servers/{server_id}/capacity")

    async def report_metrics(self, server_id: str, **sample: Any) -> Server:
        return await self.client.post_as(Server, f"{BASE}/servers/{server_id}/metrics", sample)

    async def get_metrics(self, server_id: str, *, limit: int = 100) -> list[Metrics]:
        return await self.client.get_as(
            list[Metrics], f"{BASE}/servers/{server_id}/metrics", limit=limit
        )

    # Services --------------------------------------------------------------------------

    async def create_service(
        self, server_id: str, type: str, settings: dict[str, Any] | None = None, **fields: Any
    ) -> Service:
        body = {"server_id": server_id, "type": type, "settings": settings or {}, **fields}
        return await self.client.post_as(Service, f"{BASE}/services", body)

    async def get_service(self, service_id: str) -> Service:
        return await self.client.get_as(Service, f"{BASE}/services/{service_id}")

    async def list_services(
        self,
        *,
        server_id: str | None = None,
        type: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[Service]:
        return await self.client.get_as(
            Page[Service],
            f"{BASE}/services",
            server_id=server_id,
            type=type,
            cursor=cursor,
            limit=limit,
        )

    async def update_service(self, service_id: str, **changes: Any) -> Service:
        return await self.client.patch_as(Service, f"{BASE}/services/{service_id}", changes)

    async def delete_service(self, service_id: str) -> None:
        await self.client.delete(f"{BASE}/services/{service_id}")

    # Regions ---------------------------------------------------------------------------

    async def list_regions(
        self, region: RegionType | RegionCode | str | None = None
    ) -> list[Region]:
        """The locations, each with its region code and region type; only those within
        ``region`` (a region type, a region code or a location) when given."""
        return await self.client.get_as(list[Region], f"{BASE}/regions", region=region)

    async def create_region(
        self, code: str, name: str, latitude: float, longitude: float, **fields: Any
    ) -> Region:
        body = {"code": code, "name": name, "latitude": latitude, "longitude": longitude, **fields}
        return await self.client.post_as(Region, f"{BASE}/regions", body)

    # Routing ---------------------------------------------------------------------------

    async def route_request(self, client_ip: str, service_type: str) -> RouteDecision:
        """The nearest healthy server offering ``service_type`` with spare capacity.

        The answer's ``id`` is the chosen server's; ``server``, ``reason`` and ``skipped``
        explain the choice.
        """
        return await self.client.get_as(
            RouteDecision, f"{BASE}/route", client_ip=client_ip, service_type=service_type
        )
