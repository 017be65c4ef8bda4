"""``GlobalOperations``: data centers, load balancers and disaster-recovery configs."""

from __future__ import annotations

from typing import Any

from edgeplane.model.common import CapacityReport, Page
from edgeplane.model.enums import DataCenterTier, LBAlgorithm, RegionCode, RegionType
from edgeplane.model.inventory import DataCenter
from edgeplane.model.operations import DRConfig, LoadBalancer
from edgeplane.sdk.client import Client, client_for
from edgeplane.settings import Settings

BASE = "/api/v1/infrastructure"


class GlobalOperations:
    """Data centers, load balancers and disaster recovery, embedded or remote."""

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

    # Data centers ----------------------------------------------------------------------

    async def create_data_center(
        self,
        name: str,
        region: RegionCode | RegionType | str | None = None,
        location: str | None = None,
        tier: DataCenterTier | int | None = None,
        capacity: dict[str, float] | None = None,
        **fields: Any,
    ) -> DataCenter:
        """A data center. ``region`` and ``location`` may each be a location (``us-east``), a
        region code (``RegionCode.NA``) or a region type: the location is taken from whichever
        names one and the region code follows it."""
        body = {
            "name": name,
            "region": region,
            "location": location,
            "tier": tier,
            "capacity": capacity,
            **fields,
        }
        body = {k: v for k, v in body.items() if v is not None or k in fields}
        return await self.client.post_as(DataCenter, f"{BASE}/datacenters", body)

    async def get_data_center(self, dc_id: str) -> DataCenter:
        return await self.client.get_as(DataCenter, f"{BASE}/datacenters/{dc_id}")

    async def list_data_centers(
        self, *, cursor: str | None = None, limit: int | None = None, **filters: Any
    ) -> Page[DataCenter]:
        return await self.client.get_as(
            Page[DataCenter], f"{BASE}/datacenters", cursor=cursor, limit=limit, **filters
        )

    async def update_data_center(self, dc_id: str, **changes: Any) -> DataCenter:
        return await self.client.patch_as(DataCenter, f"{BASE}/datacenters/{dc_id}", changes)

    async def delete_data_center(self, dc_id: str) -> None:
        await self.client.delete(f"{BASE}/datacenters/{dc_id}")

    async def get_data_center_capacity(self, dc_id: str) -> CapacityReport:
        return await self.client.get_as(CapacityReport, f"{BASE}/datacenters/{dc_id}/capacity")

    # Load balancers --------------------------------------------------------------------

    async def create_load_balancer(
        self,
        name: str | None = None,
        type: LBAlgorithm | str = LBAlgorithm.ROUND_ROBIN,
        region: RegionCode | str | None = None,
        endpoints: list[str] | None = None,
        **fields: Any,
    ) -> LoadBalancer:
        body = {
            "name": name,
            "algorithm": type,
            "region": region,
            "endpoints": endpoints or [],
            **fields,
        }
        return await self.client.post_as(LoadBalancer, f"{BASE}/loadbalancer", body)

    async def get_load_balancer(self, lb_id: str) -> LoadBalancer:
        return await self.client.get_as(LoadBalancer, f"{BASE}/loadbalancer/{lb_id}")

    async def list_load_balancers(
        self, *, cursor: str | None = None, limit: int | None = None
    ) -> Page[LoadBalancer]:
        return await self.client.get_as(
            Page[LoadBalancer], f"{BASE}/loadbalancer", cursor=cursor, limit=limit
        )

    async def update_load_balancer(self, lb_id: str, **changes: Any) -> LoadBalancer:
        return await self.client.patch_as(LoadBalancer, f"{BASE}/loadbalancer/{lb_id}", changes)

    async def delete_load_balancer(self, lb_id: str) -> None:
        await self.client.delete(f"{BASE}/loadbalancer/{lb_id}")

    # Disaster recovery -----------------------------------------------------------------

    async def create_dr_config(
        self, name: str, primary_dc: str, backup_dc: str, rpo: int, rto: int, **fields: Any
    ) -> DRConfig:
        body = {
            "name": name,
            "primary_dc": primary_dc,
            "backup_dc": backup_dc,
            "rpo": rpo,
            "rto": rto,
            **fields,
        }
        return await self.client.post_as(DRConfig, f"{BASE}/dr-configs", body)

    async def get_dr_config(self, dr_id: str) -> DRConfig:
        return await self.client.get_as(DRConfig, f"{BASE}/dr-configs/{dr_id}")

    async def list_dr_configs(
        self, *, cursor: str | None = None, limit: int | None = None
    ) -> Page[DRConfig]:
        return await self.client.get_as(
            Page[DRConfig], f"{BASE}/dr-configs", cursor=cursor, limit=limit
        )

    async def update_dr_config(self, dr_id: str, **changes: Any) -> DRConfig:
        return await self.client.patch_as(DRConfig, f"{BASE}/dr-configs/{dr_id}", changes)

    async def delete_dr_config(self, dr_id: str) -> None:
        await self.client.delete(f"{BASE}/dr-configs/{dr_id}")
