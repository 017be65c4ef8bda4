"""``SSLService``: certificates of verified domains (ACME, internal CA, uploads)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from edgeplane.model.certificates import Certificate, CertificateIssued, CertificateStatus
from edgeplane.sdk.client import Client, client_for
from edgeplane.settings import Settings

BASE = "/api/v1/infrastructure"


class CertType(StrEnum):
    LETS_ENCRYPT = "lets_encrypt"
    CUSTOM = "custom"
    INTERNAL = "internal"


class SSLService:
    """Provision, upload, renew, revoke and inspect certificates.

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

    async def provision_certificate(
        self,
        domain: str,
        cert_type: CertType | str = CertType.LETS_ENCRYPT,
        *,
        auto_renew: bool = True,
        challenge: str | None = None,
        include_www: bool = True,
        wildcard: bool = False,
        key_type: str = "ec256",
    ) -> Certificate:
        """A certificate for a verified domain from the ACME CA (``lets_encrypt``) or the
        internal CA (``internal``); served by the edge at once."""
        body: dict[str, Any] = {
            "type": str(cert_type),
            "auto_renew": auto_renew,
            "include_www": include_www,
            "wildcard": wildcard,
            "key_type": key_type,
        }
        if challenge is not None:
            body["challenge"] = challenge
        doc = await self.client.post_as(CertificateIssued, f"{BASE}/ssl/{domain}", body)
        return doc.certificate

    async def upload_custom_certificate(
        self, domain: str, cert_data: str, key_data: str
    ) -> Certificate:
        doc = await self.client.post_as(
            CertificateIssued,
            f"{BASE}/ssl/{domain}/upload",
            {"cert_data": cert_data, "key_data": key_data},
        )
        return doc.certificate

    async def renew_certificate(self, domain: str) -> Certificate:
        doc = await self.client.post_as(CertificateIssued, f"{BASE}/ssl/{domain}/renew", {})
        return doc.certificate

    async def revoke_certificate(
        self, domain: str, certificate_id: str | None = None
    ) -> Certificate:
        body = {"certificate_id": certificate_id} if certificate_id else {}
        return await self.client.post_as(Certificate, f"{BASE}/ssl/{domain}/revoke", body)

    async def get_certificate_status(self, domain: str) -> CertificateStatus:
        return await self.client.get_as(CertificateStatus, f"{BASE}/ssl/{domain}")

    async def aclose(self) -> None:
        await self.client.aclose()
