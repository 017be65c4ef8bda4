"""``ProjectService``: projects, each one application with its own domains, CDN config, load
balancers and edge deployments (every other service takes a ``project_id``)."""

from __future__ import annotations

from urllib.parse import quote

from pydantic import TypeAdapter

from edgeplane.errors import Conflict
from edgeplane.model.access import Project
from edgeplane.sdk.client import Client, client_for
from edgeplane.settings import Settings

BASE = "/api/v1/projects"


class ProjectService:
    """Create, list and delete projects, embedded or against a control plane
    (``EDGEPLANE_URL``). Creating one needs an admin of the ``default`` project."""

    def __init__(
        self,
        *,
        url: str | None = None,
        token: str | None = None,
        settings: Settings | None = None,
        client: Client | None = None,
    ) -> None:
        self.client = client_for(client, url=url, token=token, settings=settings)

    async def create_project(
        self, project_id: str, name: str | None = None, *, exist_ok: bool = False
    ) -> Project:
        """A new project ``project_id``; with ``exist_ok`` an existing one is returned as it
        is instead of raising ``Conflict``."""
        body = {"id": project_id, **({"name": name} if name is not None else {})}
        try:
            return await self.client.post_as(Project, BASE, body)
        except Conflict:
            if not exist_ok:
                raise
            return await self.get_project(project_id)

    async def get_project(self, project_id: str) -> Project:
        return await self.client.get_as(Project, f"{BASE}/{quote(project_id, safe='')}")

    async def list_projects(self) -> list[Project]:
        return TypeAdapter(list[Project]).validate_python(await self.client.request("GET", BASE))

    async def delete_project(self, project_id: str) -> None:
        """Delete a project that holds nothing any more."""
        await self.client.delete(f"{BASE}/{quote(project_id, safe='')}")

    async def aclose(self) -> None:
        await self.client.aclose()
