"""Domains, their certificates and the internal CA's root."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from edgeplane.api.deps import Ctx
from edgeplane.certs.internal_ca import InternalCA
from edgeplane.model.certificates import CertificateStatus
from edgeplane.model.domains import Domain, DomainAdded, DomainCreate, DomainList
from edgeplane.services import certificates, domains
from edgeplane.services.actor import LOCAL, PLATFORM_PROJECT
from edgeplane.store.db import Database

router = APIRouter(prefix="/api/v1/infrastructure", tags=["domains"])


@router.post("/domains", response_model=DomainAdded, status_code=201)
def add_domain(ctx: Ctx, body: DomainCreate) -> DomainAdded:
    """Add a domain to the project; it is served by the edge with an internal certificate."""
    with ctx.write() as tx:
        return domains.add(tx, body)


@router.get("/domains", response_model=DomainList)
def list_domains(
    ctx: Ctx,
    cursor: str | None = None,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
) -> DomainList:
    with ctx.read() as tx:
        return domains.list_page(tx, cursor=cursor, limit=limit)


@router.get("/domains/{domain}", response_model=Domain)
def get_domain(ctx: Ctx, domain: str) -> Domain:
    with ctx.read() as tx:
        return domains.get(tx, domain)


@router.delete("/domains/{domain}", status_code=204)
def delete_domain(ctx: Ctx, domain: str) -> Response:
    with ctx.write() as tx:
        domains.delete(tx, domain)
    return Response(status_code=204)


@router.get("/ssl/{domain}", response_model=CertificateStatus, tags=["certificates"])
def certificate_status(ctx: Ctx, domain: str) -> CertificateStatus:
    with ctx.read() as tx:
        return certificates.status(tx, domain)


@router.get(
    "/ca.pem",
    tags=["certificates"],
    response_class=Response,
    responses={200: {"content": {"application/x-pem-file": {}}}},
)
def ca_pem(request: Request) -> Response:
    """The internal CA's root certificate (public), for clients to trust."""
    db: Database = request.app.state.db
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        pem = InternalCA.root_pem(tx.session)
    if pem is None:
        with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
            pem = certificates.root_pem(tx)
    return Response(content=pem, media_type="application/x-pem-file")
