"""``ProjectService``: what the SDK's services share, a client and the project they act in."""

from __future__ import annotations

from typing import Any

from edgeplane.sdk.client import Client, client_for
from edgeplane.settings import Settings


class ProjectService:
    """A service bound to ``project_id`` (default: the client's project, else ``default``),
    embedded or against a control plane (``EDGEPLANE_URL``, or ``url`` and ``token``)."""

    def __init__(
        self,
        project_id: str | None = None,
        *,
        url: str | None = None,
        token: str | None = None,
        settings: Settings | None = None,
        client: Client | None = None,
    ) -> None:
        self.client = client = client_for(
            client, url=url, token=token, project=project_id, settings=settings
        )
        self.project_id = project_id or client.project or "default"

    async def _call(
        self, method: str, path: str, project: str | None = None, body: Any = None, **params: Any
    ) -> Any:
        """The API's answer to a request in ``project`` (default: the service's)."""
        params["project"] = project or self.project_id
        return await self.client.request(method, path, json=body, params=params)
