"""``LoadBalancerService``: load balancers, their backends, health checks and backend health."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, TypeAdapter

from edgeplane.model.common import Page
from edgeplane.model.enums import LBAlgorithm
from edgeplane.model.operations import Backend, BackendHealth, HealthCheck, LoadBalancer
from edgeplane.model.origin_tls import OriginTls
from edgeplane.sdk.client import Client, body_of
from edgeplane.sdk.service import ProjectService
from edgeplane.settings import Settings

BASE = "/api/v1/infrastructure/loadbalancer"


class LoadBalancerService(ProjectService):
    """Load balancers, embedded or against a control plane (``EDGEPLANE_URL``).

    A load balancer made here is remembered with its project, so the calls that take only
    its id act in the right project; other ids are looked up in ``project_id`` given here
    (default ``default``).
    """

    def __init__(
        self,
        project_id: str | None = None,
        *,
        url: str | None = None,
        token: str | None = None,
        settings: Settings | None = None,
        client: Client | None = None,
    ) -> None:
        super().__init__(project_id, url=url, token=token, settings=settings, client=client)
        self._projects: dict[str, str] = {}

    async def _call_for(
        self, method: str, path: str, lb_id: str | None = None, body: Any = None, **params: Any
    ) -> Any:
        """A request in the project of ``lb_id`` (remembered when it was made here)."""
        project = self._projects.get(lb_id, self.project_id) if lb_id else self.project_id
        params.setdefault("project", project)
        return await self.client.request(method, path, json=body, params=params)

    async def create_load_balancer(
        self,
        project_id: str,
        algorithm: LBAlgorithm | str,
        health_check: HealthCheck | dict[str, Any] | None = None,
        name: str | None = None,
        backends: list[Backend | dict[str, Any] | str] | None = None,
        *,
        tls: OriginTls | dict[str, Any] | None = None,
        **options: Any,
    ) -> LoadBalancer:
        """A load balancer in ``project_id``; options: id, region, endpoints,
        connect_timeout_s, read_timeout_s, retries, environment. ``tls``: the client
        certificate and verification of https backends (``edgeplane.model.origin_tls``)."""
        body: dict[str, Any] = {"algorithm": algorithm, **options}
        if tls is not None:
            body["tls"] = body_of(tls)
        if health_check is not None:
            body["health_check"] = body_of(health_check)
        if name is not None:
            body["name"] = name
        if backends is not None:
            body["backends"] = [b if isinstance(b, str) else body_of(b) for b in backends]
        doc = await self.client.request("POST", BASE, json=body, params={"project": project_id})
        lb = LoadBalancer.model_validate(doc)
        self._projects[lb.id] = project_id
        return lb

    async def get_load_balancer(self, lb_id: str) -> LoadBalancer:
        doc = await self._call_for("GET", f"{BASE}/{quote(lb_id, safe='')}", lb_id)
        return LoadBalancer.model_validate(doc)

    async def list_load_balancers(
        self, project_id: str | None = None, *, cursor: str | None = None, limit: int | None = None
    ) -> Page[LoadBalancer]:
        params = {"project": project_id or self.project_id, "cursor": cursor, "limit": limit}
        doc = await self.client.request("GET", BASE, params=params)
        return Page[LoadBalancer].model_validate(doc)

    async def update_load_balancer(self, lb_id: str, **changes: Any) -> LoadBalancer:
        """A merge patch: the fields given change (``tls=None`` removes the TLS settings)."""
        changes = {k: body_of(v) if isinstance(v, BaseModel) else v for k, v in changes.items()}
        doc = await self._call_for("PATCH", f"{BASE}/{quote(lb_id, safe='')}", lb_id, changes)
        return LoadBalancer.model_validate(doc)

    async def delete_load_balancer(self, lb_id: str) -> None:
        await self._call_for("DELETE", f"{BASE}/{quote(lb_id, safe='')}", lb_id)

    async def add_backend(
        self,
        lb_id: str,
        backend: Backend | dict[str, Any] | str,
        weight: int = 100,
        **fields: Any,
    ) -> Backend:
        """Add a backend: a ``Backend``, a dict, or an address (server id, host:port, URL)."""
        body: dict[str, Any] = (
            {"address": backend} if isinstance(backend, str) else body_of(backend)
        )
        body.setdefault("weight", weight)
        body.update(fields)
        doc = await self._call_for("POST", f"{BASE}/{quote(lb_id, safe='')}/backends", lb_id, body)
        return Backend.model_validate(doc)

    async def list_backends(self, lb_id: str) -> list[Backend]:
        doc = await self._call_for("GET", f"{BASE}/{quote(lb_id, safe='')}/backends", lb_id)
        return TypeAdapter(list[Backend]).validate_python(doc)

    def _backend_path(self, lb_id: str, address: str) -> str:
        return f"{BASE}/{quote(lb_id, safe='')}/backends/{quote(address, safe='')}"

    async def update_backend(self, lb_id: str, address: str, **changes: Any) -> Backend:
        """Change weight, backup or state (active, draining, disabled)."""
        doc = await self._call_for("PATCH", self._backend_path(lb_id, address), lb_id, changes)
        return Backend.model_validate(doc)

    async def drain_backend(self, lb_id: str, address: str) -> Backend:
        """No new requests go to the backend; requests in flight finish."""
        doc = await self._call_for("POST", self._backend_path(lb_id, address) + "/drain", lb_id)
        return Backend.model_validate(doc)

    async def remove_backend(self, lb_id: str, address: str) -> None:
        await self._call_for("DELETE", self._backend_path(lb_id, address), lb_id)

    async def update_health_check(
        self, lb_id: str, health_check: HealthCheck | dict[str, Any]
    ) -> LoadBalancer:
        """Replace the health check (fields not given take their defaults)."""
        path = f"{BASE}/{quote(lb_id, safe='')}/health-check"
        doc = await self._call_for("PUT", path, lb_id, body_of(health_check))
        return LoadBalancer.model_validate(doc)

    async def get_backend_health(self, lb_id: str) -> list[BackendHealth]:
        """Per backend: admin state, weight, backup flag and what each edge node sees."""
        doc = await self._call_for("GET", f"{BASE}/{quote(lb_id, safe='')}/health", lb_id)
        return TypeAdapter(list[BackendHealth]).validate_python(doc)
