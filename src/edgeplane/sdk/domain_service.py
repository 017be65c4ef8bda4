"""``DomainService``: a project's domains, each served by the edge with a certificate."""

from __future__ import annotations

from edgeplane.model.certificates import CertificateStatus
from edgeplane.model.domains import Domain, DomainAdded, DomainList
from edgeplane.sdk.client import Client, client_for
from edgeplane.settings import Settings

BASE = "/api/v1/infrastructure"


class DomainService:
    """Add, list, inspect and remove domains.

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

    async def add_domain(
        self, project_id: str, domain: str, auto_configure_dns: bool = True
    ) -> Domain:
        """Add ``domain`` to the project; it gets an internal certificate at once."""
        added = await self.client.post_as(
            DomainAdded,
            f"{BASE}/domains",
            {"domain": domain, "auto_configure": auto_configure_dns},
            project=project_id,
        )
        return added.domain_config

    async def list_domains(self, project_id: str | None = None) -> list[Domain]:
        """Every domain of the project (all pages)."""
        out: list[Domain] = []
        cursor: str | None = None
        while True:
            page = await self.client.get_as(
                DomainList, f"{BASE}/domains", project=project_id, cursor=cursor
            )
            out.extend(page.domains)
            if not page.next_cursor:
                return out
            cursor = page.next_cursor

    async def get_domain_status(self, domain: str) -> Domain:
        return await self.client.get_as(Domain, f"{BASE}/domains/{domain}")

    async def get_certificate_status(self, domain: str) -> CertificateStatus:
        return await self.client.get_as(CertificateStatus, f"{BASE}/ssl/{domain}")

    async def remove_domain(self, domain: str) -> None:
        await self.client.delete(f"{BASE}/domains/{domain}")

    async def aclose(self) -> None:
        await self.client.aclose()
