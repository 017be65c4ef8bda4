"""``GlobalOperations``: data centers, load balancers and disaster-recovery configs, with
their live side (status, timeline, failover, failback, drills)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from edgeplane.model.common import CapacityReport, Page
from edgeplane.model.dr import DREvent, Drill, DRStatus
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
        self,
        name: str,
        primary_dc: str,
        backup_dc: str,
        rpo: float,
        rto: float,
        **fields: Any,
    ) -> DRConfig:
        """A DR config; ``rpo`` and ``rto`` in minutes (fractions allowed). ``fields``:
        ``failover_mode`` / ``failback_mode`` ("automatic" or "confirmed"),
        ``drill_every_days``, ``environment``, ``id``."""
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

    async def dr_status(self, dr_id: str) -> DRStatus:
        """Which data center serves, the primary's health, the open episode, the last drill."""
        return await self.client.get_as(DRStatus, f"{BASE}/dr-configs/{dr_id}/status")

    async def dr_events(
        self, dr_id: str, *, cursor: str | None = None, limit: int | None = None
    ) -> Page[DREvent]:
        """The config's timeline, newest first."""
        return await self.client.get_as(
            Page[DREvent], f"{BASE}/dr-configs/{dr_id}/events", cursor=cursor, limit=limit
        )

    async def failover(self, dr_id: str, reason: str) -> DRStatus:
        """Confirm a pending failover or force one (traffic to the backup data center)."""
        body = {"reason": reason}
        return await self.client.post_as(DRStatus, f"{BASE}/dr-configs/{dr_id}/failover", body)

    async def failback(self, dr_id: str, reason: str) -> DRStatus:
        """Confirm a pending failback or force one (traffic back to the primary)."""
        body = {"reason": reason}
        return await self.client.post_as(DRStatus, f"{BASE}/dr-configs/{dr_id}/failback", body)

    async def run_drill(self, dr_id: str, wait: bool = True, timeout: float = 900.0) -> Drill:
        """Run a drill; with ``wait`` its report once it is over (or as it stands after
        ``timeout`` seconds), else the running drill (``get_drill`` follows it)."""
        path = f"{BASE}/dr-configs/{dr_id}/drills"
        started = time.monotonic()
        answer = min(timeout, 300.0)
        doc = await self.client.request(
            "POST", path, params={"wait": wait, "timeout": answer}, timeout=answer + 30.0
        )
        drill = Drill.model_validate(doc)
        while (
            wait and drill.status in ("queued", "running") and time.monotonic() - started < timeout
        ):
            await asyncio.sleep(1.0)
            drill = await self.get_drill(dr_id, drill.id)
        return drill

    async def list_drills(
        self, dr_id: str, *, cursor: str | None = None, limit: int | None = None
    ) -> Page[Drill]:
        return await self.client.get_as(
            Page[Drill], f"{BASE}/dr-configs/{dr_id}/drills", cursor=cursor, limit=limit
        )

    async def get_drill(self, dr_id: str, drill_id: str) -> Drill:
        return await self.client.get_as(Drill, f"{BASE}/dr-configs/{dr_id}/drills/{drill_id}")
