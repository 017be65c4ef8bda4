"""``AccessService``: API tokens with scopes, expiry and rotation; service accounts; the
keyring of secrets at rest; audited reads of secrets. Embedded or against a control plane
(``EDGEPLANE_URL``), like every service of the SDK."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from pydantic import TypeAdapter

from edgeplane.model.access import ServiceAccount, Token, TokenIssued
from edgeplane.model.secrets import CertificateKey, KeyAdded, Reencryption, SecretKeyStatus
from edgeplane.sdk.client import Client, client_for
from edgeplane.settings import Settings

API = "/api/v1"


def _expiry(expires: datetime | timedelta | int | None) -> dict[str, Any]:
    if expires is None:
        return {}
    if isinstance(expires, datetime):
        return {"expires_at": expires.isoformat()}
    seconds = int(expires.total_seconds()) if isinstance(expires, timedelta) else int(expires)
    return {"ttl_s": seconds}


def _id(value: str) -> str:
    return quote(value, safe="")


class AccessService:
    """Tokens, service accounts and secret keys. ``expires``: a time, a ``timedelta`` or
    seconds from now."""

    def __init__(
        self,
        *,
        url: str | None = None,
        token: str | None = None,
        settings: Settings | None = None,
        client: Client | None = None,
        project: str | None = None,
    ) -> None:
        """``project``: the project of certificate keys (default ``default``)."""
        self.client = client_for(client, url=url, token=token, project=project, settings=settings)

    # tokens
    async def create_token(
        self,
        name: str,
        roles: dict[str, str],
        *,
        scopes: list[str] | None = None,
        expires: datetime | timedelta | int | None = None,
    ) -> TokenIssued:
        """A token with ``roles`` per project and, optionally, ``scopes`` (``KIND:ACTION``);
        its secret (``.token``) is shown once."""
        body: dict[str, Any] = {"name": name, "roles": roles, **_expiry(expires)}
        if scopes is not None:
            body["scopes"] = scopes
        return await self.client.post_as(TokenIssued, f"{API}/tokens", body)

    async def list_tokens(self) -> list[Token]:
        doc = await self.client.request("GET", f"{API}/tokens")
        return TypeAdapter(list[Token]).validate_python(doc)

    async def rotate_token(self, token_id: str, *, grace_s: int = 0) -> TokenIssued:
        """A new secret for the same token; the old one works ``grace_s`` seconds more."""
        return await self.client.post_as(
            TokenIssued, f"{API}/tokens/{_id(token_id)}/rotate", {"grace_s": grace_s}
        )

    async def revoke_token(self, token_id: str) -> Token:
        doc = await self.client.request("DELETE", f"{API}/tokens/{_id(token_id)}")
        return Token.model_validate(doc)

    # service accounts
    async def create_service_account(
        self,
        account_id: str,
        roles: dict[str, str],
        *,
        scopes: list[str] | None = None,
        description: str = "",
    ) -> ServiceAccount:
        body: dict[str, Any] = {"id": account_id, "roles": roles, "description": description}
        if scopes is not None:
            body["scopes"] = scopes
        return await self.client.post_as(ServiceAccount, f"{API}/service-accounts", body)

    async def list_service_accounts(self) -> list[ServiceAccount]:
        doc = await self.client.request("GET", f"{API}/service-accounts")
        return TypeAdapter(list[ServiceAccount]).validate_python(doc)

    async def disable_service_account(self, account_id: str) -> ServiceAccount:
        return await self.client.post_as(
            ServiceAccount, f"{API}/service-accounts/{_id(account_id)}/disable", None
        )

    async def enable_service_account(self, account_id: str) -> ServiceAccount:
        return await self.client.post_as(
            ServiceAccount, f"{API}/service-accounts/{_id(account_id)}/enable", None
        )

    async def create_service_account_token(
        self,
        account_id: str,
        name: str,
        *,
        scopes: list[str] | None = None,
        expires: datetime | timedelta | int | None = None,
    ) -> TokenIssued:
        body: dict[str, Any] = {"name": name, **_expiry(expires)}
        if scopes is not None:
            body["scopes"] = scopes
        return await self.client.post_as(
            TokenIssued, f"{API}/service-accounts/{_id(account_id)}/tokens", body
        )

    # secrets at rest
    async def secret_status(self) -> SecretKeyStatus:
        return await self.client.get_as(SecretKeyStatus, f"{API}/secrets/status")

    async def add_secret_key(self) -> KeyAdded:
        return await self.client.post_as(KeyAdded, f"{API}/secrets/keys", None)

    async def promote_secret_key(self, key_id: str) -> SecretKeyStatus:
        return await self.client.post_as(
            SecretKeyStatus, f"{API}/secrets/keys/{_id(key_id)}/primary", None
        )

    async def reencrypt_secrets(self) -> Reencryption:
        return await self.client.post_as(Reencryption, f"{API}/secrets/reencrypt", None)

    async def retire_secret_key(self, key_id: str) -> SecretKeyStatus:
        doc = await self.client.request("DELETE", f"{API}/secrets/keys/{_id(key_id)}")
        return SecretKeyStatus.model_validate(doc)

    async def certificate_key(
        self, domain: str, certificate_id: str | None = None
    ) -> CertificateKey:
        """The private key of a domain's certificate (admin role; the read is audited)."""
        params = {"certificate_id": certificate_id} if certificate_id else {}
        return await self.client.get_as(
            CertificateKey, f"{API}/infrastructure/ssl/{_id(domain)}/private-key", **params
        )

    async def aclose(self) -> None:
        await self.client.aclose()
