"""``DomainService``: a project's domains, each served by the edge with a certificate."""

from __future__ import annotations

from typing import Any

from edgeplane.model.access_logs import AccessLogPage
from edgeplane.model.certificates import CertificateStatus
from edgeplane.model.dns_records import DNSRecord, ZoneRecords
from edgeplane.model.domains import (
    Domain,
    DomainAdded,
    DomainList,
    DomainStatus,
    VerificationMethod,
    VerificationResult,
)
from edgeplane.sdk.client import Client, body_of, client_for
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
        self,
        project_id: str,
        domain: str,
        auto_configure_dns: bool = True,
        *,
        dnssec: bool = False,
        locked: bool = False,
    ) -> Domain:
        """Add ``domain`` to the project and host its zone. ``domain.verification`` says how
        to prove ownership (names under reserved TLDs such as ``.test`` need no proof)."""
        added = await self.client.post_as(
            DomainAdded,
            f"{BASE}/domains",
            {
                "domain": domain,
                "auto_configure": auto_configure_dns,
                "dnssec": dnssec,
                "locked": locked,
            },
            project=project_id,
        )
        return added.domain_config

    async def verify_domain(
        self,
        domain: str,
        verification_method: VerificationMethod = "dns",
        *,
        code: str | None = None,
    ) -> VerificationResult:
        """Check ownership by ``dns``, ``file`` or ``email`` (first without ``code``: a code
        is mailed; then with it)."""
        body: dict[str, Any] = {"method": str(verification_method)}
        if code is not None:
            body["code"] = code
        return await self.client.post_as(
            VerificationResult, f"{BASE}/domains/{domain}/verify", body
        )

    async def update_dns_records(
        self, domain: str, records: list[DNSRecord] | list[dict[str, Any]]
    ) -> None:
        """Set these records (each replaces the record of its name and type)."""
        await self.client.patch_as(
            ZoneRecords,
            f"{BASE}/domains/{domain}/records",
            {"set": [body_of(r) for r in records]},
        )

    async def replace_dns_records(
        self, domain: str, records: list[DNSRecord] | list[dict[str, Any]]
    ) -> ZoneRecords:
        """Replace every record of the zone."""
        doc = await self.client.request(
            "PUT",
            f"{BASE}/domains/{domain}/records",
            json={"records": [body_of(r) for r in records]},
        )
        return ZoneRecords.model_validate(doc)

    async def delete_dns_records(self, domain: str, keys: list[tuple[str, str]]) -> ZoneRecords:
        """Delete the records of these (name, type)."""
        return await self.client.patch_as(
            ZoneRecords,
            f"{BASE}/domains/{domain}/records",
            {"delete": [{"name": n, "type": t} for n, t in keys]},
        )

    async def get_dns_records(self, domain: str) -> ZoneRecords:
        return await self.client.get_as(ZoneRecords, f"{BASE}/domains/{domain}/records")

    async def update_domain(
        self, domain: str, *, locked: bool | None = None, dnssec: bool | None = None
    ) -> Domain:
        body = {k: v for k, v in {"locked": locked, "dnssec": dnssec}.items() if v is not None}
        return await self.client.patch_as(Domain, f"{BASE}/domains/{domain}", body)

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

    async def get_domain(self, domain: str) -> Domain:
        return await self.client.get_as(Domain, f"{BASE}/domains/{domain}")

    async def get_domain_status(self, domain: str, *, refresh: bool = False) -> DomainStatus:
        """Verification, delegation, the serial each edge node serves, DNSSEC (DS records)."""
        return await self.client.get_as(
            DomainStatus, f"{BASE}/domains/{domain}/status", refresh="true" if refresh else None
        )

    async def get_certificate_status(self, domain: str) -> CertificateStatus:
        return await self.client.get_as(CertificateStatus, f"{BASE}/ssl/{domain}")

    async def remove_domain(self, domain: str) -> None:
        await self.client.delete(f"{BASE}/domains/{domain}")

    async def logs(
        self,
        domain: str,
        *,
        status: str | int | None = None,
        path_prefix: str | None = None,
        client: str | None = None,
        cache: str | None = None,
        limit: int = 100,
        after: int | None = None,
    ) -> AccessLogPage:
        """The domain's latest requests at the edge, newest first; with ``after`` (a page's
        ``next_after``) only those that arrived since, oldest first. Filters: ``status`` (404
        or "5xx"), ``path_prefix``, ``client`` (an address or a CIDR network), ``cache``."""
        return await self.client.get_as(
            AccessLogPage,
            f"{BASE}/domains/{domain}/logs",
            status=status,
            path_prefix=path_prefix,
            client=client,
            cache=cache,
            limit=limit,
            after=after,
        )

    async def aclose(self) -> None:
        await self.client.aclose()
