"""Service accounts: non-human principals that own tokens (platform admins only)."""

from __future__ import annotations

from fastapi import APIRouter

from edgeplane.api.deps import GlobalCtx
from edgeplane.model.access import (
    ServiceAccount,
    ServiceAccountCreate,
    ServiceAccountTokenCreate,
    TokenIssued,
)
from edgeplane.services import service_accounts

router = APIRouter(prefix="/api/v1/service-accounts", tags=["access"])


@router.get("", response_model=list[ServiceAccount])
def list_accounts(ctx: GlobalCtx) -> list[ServiceAccount]:
    with ctx.read(scoped=False) as tx:
        return service_accounts.list_accounts(tx)


@router.post("", response_model=ServiceAccount, status_code=201)
def create_account(ctx: GlobalCtx, body: ServiceAccountCreate) -> ServiceAccount:
    with ctx.write(scoped=False) as tx:
        return service_accounts.create(tx, body)


@router.get("/{account_id}", response_model=ServiceAccount)
def get_account(ctx: GlobalCtx, account_id: str) -> ServiceAccount:
    with ctx.read(scoped=False) as tx:
        return service_accounts.get(tx, account_id)


@router.post("/{account_id}/disable", response_model=ServiceAccount)
def disable_account(ctx: GlobalCtx, account_id: str) -> ServiceAccount:
    """Disable the account: every token it owns stops working at its next request."""
    with ctx.write(scoped=False) as tx:
        return service_accounts.set_disabled(tx, account_id, True)


@router.post("/{account_id}/enable", response_model=ServiceAccount)
def enable_account(ctx: GlobalCtx, account_id: str) -> ServiceAccount:
    with ctx.write(scoped=False) as tx:
        return service_accounts.set_disabled(tx, account_id, False)


@router.post("/{account_id}/tokens", response_model=TokenIssued, status_code=201)
def issue_token(ctx: GlobalCtx, account_id: str, body: ServiceAccountTokenCreate) -> TokenIssued:
    """A token owned by the account (its roles; its scopes and the token's own); the secret
    is shown once."""
    with ctx.write(scoped=False) as tx:
        return service_accounts.issue_token(tx, account_id, body)
