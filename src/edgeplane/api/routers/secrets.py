"""Secrets at rest over REST: the keyring's status and rotation steps (platform admins), and
the reads of secrets' plain text, each one audited (``edgeplane.services.secret_reads``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from edgeplane.api.deps import Ctx, GlobalCtx
from edgeplane.model.secrets import CertificateKey, KeyAdded, Reencryption, SecretKeyStatus
from edgeplane.services import secret_keys, secret_reads

router = APIRouter(prefix="/api/v1", tags=["secrets"])


@router.get("/secrets/status", response_model=SecretKeyStatus)
async def key_status(ctx: GlobalCtx) -> SecretKeyStatus:
    """The keyring of the replica answering (key ids, never keys), how many stored values each
    key encrypts, and the newest re-encryption."""
    return await run_in_threadpool(secret_keys.status, ctx.db, ctx.actor)


@router.post("/secrets/keys", response_model=KeyAdded, status_code=201)
async def add_key(ctx: GlobalCtx) -> KeyAdded:
    """Step 1 of a rotation: a new key, second in the keyring file (it decrypts; nothing is
    encrypted with it until it is promoted). 409 when the keyring comes from the environment."""
    return await run_in_threadpool(secret_keys.add_key, ctx.db, ctx.actor)


@router.post("/secrets/keys/{key_id}/primary", response_model=SecretKeyStatus)
async def promote_key(ctx: GlobalCtx, key_id: str) -> SecretKeyStatus:
    """Step 2: the key encrypts new values from now on."""
    return await run_in_threadpool(secret_keys.promote_key, ctx.db, ctx.actor, key_id)


@router.post("/secrets/reencrypt", response_model=Reencryption, status_code=202)
async def reencrypt(ctx: GlobalCtx, request: Request) -> Reencryption:
    """Step 3: re-encrypt every stored value under the primary key, in the background (poll
    ``/secrets/status``); embedded (no background work), at once."""
    job = await run_in_threadpool(secret_keys.request_reencryption, ctx.db, ctx.actor)
    if request.app.state.runner is None:
        await run_in_threadpool(secret_keys.Reencryptor(ctx.db))
        job = secret_keys.latest_job(ctx.db) or job
    return job


@router.delete("/secrets/keys/{key_id}", response_model=SecretKeyStatus)
async def retire_key(ctx: GlobalCtx, key_id: str) -> SecretKeyStatus:
    """Step 4: remove a key no stored value uses any more (409 otherwise)."""
    return await run_in_threadpool(secret_keys.retire_key, ctx.db, ctx.actor, key_id)


@router.get(
    "/infrastructure/ssl/{domain}/private-key",
    response_model=CertificateKey,
    tags=["certificates"],
)
def certificate_key(ctx: Ctx, domain: str, certificate_id: str | None = None) -> CertificateKey:
    """The private key of the certificate served for the domain (or of ``certificate_id``):
    the admin role (a token with scopes: ``certificates:reveal``); every read is audited."""
    with ctx.write() as tx:
        return secret_reads.certificate_key(tx, domain, certificate_id)
