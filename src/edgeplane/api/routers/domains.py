"""Domains, their certificates and the internal CA's root."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from edgeplane.api.deps import Context, Ctx
from edgeplane.certificates import custom, internal, overview, renewal, versions
from edgeplane.certificates.acme import progress
from edgeplane.certificates.acme.progress import OrderStatus
from edgeplane.errors import InvalidInput
from edgeplane.model.certificates import (
    Certificate,
    CertificateDetails,
    CertificateIssued,
    CertificateList,
    CertificateRequest,
    CertificateRevoke,
    CertificateSettings,
    CertificateStatus,
    CertificateUpload,
)
from edgeplane.model.dns_records import RecordsPatch, RecordsPut, ZoneRecords
from edgeplane.model.domains import (
    Domain,
    DomainAdded,
    DomainCheck,
    DomainCreate,
    DomainList,
    DomainStatus,
    DomainUpdate,
    VerificationResult,
    VerifyRequest,
)
from edgeplane.model.enums import Role
from edgeplane.services import (
    cert_orders,
    dns_records,
    domain_status,
    domains,
    verification,
)
from edgeplane.store import domains as domain_rows
from edgeplane.store.db import Database

router = APIRouter(prefix="/api/v1/infrastructure", tags=["domains"])


@router.post(
    "/domains",
    response_model=DomainAdded,
    status_code=201,
    responses={
        200: {"model": DomainCheck, "description": "with dry_run=true: valid and free"},
    },
)
def add_domain(ctx: Ctx, body: DomainCreate, dry_run: bool = False) -> DomainAdded | JSONResponse:
    """Add a domain to the project and host its zone. Unless the name is reserved (``.test``,
    ``.localhost``, ...), the edge serves it and it gets a certificate once its ownership is
    verified (``verification_required``). With ``dry_run=true`` nothing is added: the answer
    is 200 with the name as it would be stored, or the refusal ``add`` would give (422 for
    the name, 409 for a clash)."""
    if dry_run:
        with ctx.read() as tx:
            checked = domains.check(tx, body)
        return JSONResponse(checked.model_dump(mode="json"))
    with ctx.write() as tx:
        return domains.add(tx, body, ctx.settings)


@router.get("/domains", response_model=DomainList)
def list_domains(
    ctx: Ctx,
    cursor: str | None = None,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=253,
            description="names containing this text (case-insensitive; Unicode or punycode)",
        ),
    ] = None,
) -> DomainList:
    with ctx.read() as tx:
        return domains.list_page(tx, cursor=cursor, limit=limit, q=q)


@router.get("/domains/{domain}", response_model=Domain)
def get_domain(ctx: Ctx, domain: str) -> Domain:
    with ctx.read() as tx:
        return domains.get(tx, domain)


@router.patch("/domains/{domain}", response_model=Domain)
def update_domain(ctx: Ctx, domain: str, body: DomainUpdate) -> Domain:
    """Lock the domain against deletion, or sign its zone with DNSSEC."""
    with ctx.write() as tx:
        return domains.update(tx, domain, body)


@router.delete("/domains/{domain}", status_code=204)
def delete_domain(ctx: Ctx, domain: str) -> Response:
    """Remove the domain and its zone (refused while the domain is locked)."""
    with ctx.write() as tx:
        domains.delete(tx, domain)
    return Response(status_code=204)


@router.post("/domains/{domain}/verify", response_model=VerificationResult)
def verify_domain(ctx: Ctx, domain: str, body: VerifyRequest | None = None) -> VerificationResult:
    """Prove ownership by ``dns`` (TXT at the domain's name servers), ``file`` (served over
    HTTP by the domain) or ``email`` (a code sent to its admin addresses, then given back)."""
    request = body or VerifyRequest()
    with ctx.read() as tx:
        attempt = verification.begin(tx, domain, request)
    outcome = verification.run(attempt, ctx.settings)
    with ctx.write() as tx:
        return verification.finish(tx, attempt, outcome, ctx.settings)


@router.get("/domains/{domain}/status", response_model=DomainStatus)
def get_domain_status(ctx: Ctx, domain: str, refresh: bool = False) -> DomainStatus:
    """Verification, where the world's DNS points (``refresh=true`` asks it now), the zone
    serial each edge node serves, DNSSEC (DS records for the registrar), the certificate."""
    if refresh:
        with ctx.read() as tx:
            name, ours, addresses = domain_status.world_check_inputs(tx, domain)
        result = domain_status.check_world(name, ours, addresses, ctx.settings)
        with ctx.db.transaction(ctx.actor, ctx.project) as tx:
            domain_status.record_world(tx, name, result)
    with ctx.read() as tx:
        return domain_status.status(tx, domain)


@router.get("/domains/{domain}/records", response_model=ZoneRecords)
def list_records(ctx: Ctx, domain: str) -> ZoneRecords:
    """The zone's records, with those Edgeplane manages (SOA, NS, verification) marked."""
    with ctx.read() as tx:
        return dns_records.list_records(tx, domain)


@router.put("/domains/{domain}/records", response_model=ZoneRecords)
def replace_records(ctx: Ctx, domain: str, body: RecordsPut) -> ZoneRecords:
    """Replace every record of the zone (all validated first: nothing changes on an error)."""
    with ctx.write() as tx:
        return dns_records.replace_records(tx, domain, body)


@router.patch("/domains/{domain}/records", response_model=ZoneRecords)
def patch_records(ctx: Ctx, domain: str, body: RecordsPatch) -> ZoneRecords:
    """Set some RRsets (replacing those of the same name and type) and delete others."""
    with ctx.write() as tx:
        return dns_records.patch_records(tx, domain, body)


@router.get("/ssl", response_model=CertificateList, tags=["certificates"])
def list_certificates(
    ctx: Ctx,
    cursor: str | None = None,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
) -> CertificateList:
    """The project's domains, by name, each with the certificate the edge serves for it
    (``status`` none: none yet), its renewal state and how many versions are kept."""
    with ctx.read() as tx:
        return overview.list_page(tx, cursor=cursor, limit=limit)


@router.get("/ssl/{domain}", response_model=CertificateStatus, tags=["certificates"])
def certificate_status(ctx: Ctx, domain: str) -> CertificateStatus:
    """The certificate the edge serves for the domain, and every version kept."""
    with ctx.read() as tx:
        return versions.status(tx, domain)


@router.patch("/ssl/{domain}", response_model=Certificate, tags=["certificates"])
def certificate_settings(ctx: Ctx, domain: str, body: CertificateSettings) -> Certificate:
    """Renew the served certificate on its own (``auto_renew``), or not; refused for an
    uploaded certificate, which people renew."""
    with ctx.write() as tx:
        return overview.set_auto_renew(tx, domain, body)


@router.get(
    "/ssl/{domain}/certificates/{certificate_id}",
    response_model=CertificateDetails,
    tags=["certificates"],
)
def certificate_details(ctx: Ctx, domain: str, certificate_id: str) -> CertificateDetails:
    """One kept version: its chain decoded (subjects, issuers, validity, keys, fingerprints)
    and the chain's PEM (never the key)."""
    with ctx.read() as tx:
        return overview.details(tx, domain, certificate_id)


def _orders(request: Request) -> cert_orders.Orders:
    orders: cert_orders.Orders = request.app.state.acme_orders
    return orders


def _acme(ctx: Context, domain: str, body: CertificateRequest) -> CertificateIssued:
    return cert_orders.acme(ctx.db, ctx.settings, ctx.actor, ctx.project, domain, body)


@router.post(
    "/ssl/{domain}",
    response_model=CertificateIssued,
    status_code=201,
    tags=["certificates"],
    responses={
        202: {"model": OrderStatus, "description": "with wait=false: the order runs"},
        502: {"description": "the ACME CA is unreachable or refused the order"},
    },
)
def provision_certificate(
    ctx: Ctx,
    http: Request,
    domain: str,
    body: CertificateRequest | None = None,
    wait: bool = True,
) -> CertificateIssued | JSONResponse:
    """Provision a certificate for a verified domain: ``lets_encrypt`` (the configured ACME CA,
    HTTP-01 answered by every edge node or DNS-01 by Edgeplane's DNS; wildcards need DNS-01),
    ``internal`` (the internal CA) or ``custom`` (``cert_data`` and ``key_data``). With
    ``wait=false`` an ACME or internal order answers 202 at once; follow it at
    ``/ssl/{domain}/orders/{id}``."""
    request = body or CertificateRequest()
    if request.type in ("lets_encrypt", "internal") and not wait:
        with ctx.read() as tx:  # refuse what cannot be ordered before starting
            tx.actor.require(tx.project, Role.EDITOR)
            name = versions.verified_domain(tx, domain).name
        order = _orders(http).start(ctx.actor, ctx.project, name, request)
        return JSONResponse(order.model_dump(mode="json"), status_code=202)
    if request.type == "internal":
        with ctx.write() as tx:
            return internal.provision(tx, domain, auto_renew=request.auto_renew)
    if request.type == "custom":
        for name in ("cert_data", "key_data"):
            if not getattr(request, name):
                raise InvalidInput.at(name, "is required for a custom certificate")
        with ctx.write() as tx:
            return custom.upload(tx, domain, request.cert_data or "", request.key_data or "")
    return _acme(ctx, domain, request)


@router.get("/ssl/{domain}/orders/{order_id}", response_model=OrderStatus, tags=["certificates"])
def get_order(ctx: Ctx, domain: str, order_id: str) -> OrderStatus:
    """The progress of an order started with ``wait=false`` (any replica answers)."""
    with ctx.read() as tx:
        name = domain_rows.get_row(tx, domain).name
        return progress.get(tx.session, ctx.project, name, order_id)


@router.post(
    "/ssl/{domain}/upload",
    response_model=CertificateIssued,
    status_code=201,
    tags=["certificates"],
)
def upload_certificate(ctx: Ctx, domain: str, body: CertificateUpload) -> CertificateIssued:
    """Upload a certificate chain (leaf first) and its private key; each flaw is named."""
    with ctx.write() as tx:
        return custom.upload(tx, domain, body.cert_data, body.key_data)


@router.post(
    "/ssl/{domain}/renew",
    response_model=CertificateIssued,
    status_code=201,
    tags=["certificates"],
    responses={502: {"description": "the ACME CA is unreachable or refused the order"}},
)
def renew_certificate(ctx: Ctx, domain: str) -> CertificateIssued:
    """Renew now: the same kind of certificate for the same names."""
    with ctx.read() as tx:
        request = renewal.renewal_request(tx, domain)
    if request.type == "internal":
        with ctx.write() as tx:
            return internal.provision(tx, domain, auto_renew=request.auto_renew)
    return _acme(ctx, domain, request)


@router.post("/ssl/{domain}/revoke", response_model=Certificate, tags=["certificates"])
def revoke_certificate(ctx: Ctx, domain: str, body: CertificateRevoke | None = None) -> Certificate:
    """Stop serving a certificate (the newest unless named); the edge falls back to the
    previous valid version, if any."""
    with ctx.write() as tx:
        return versions.revoke(tx, domain, body.certificate_id if body else None)


@router.get(
    "/ca.pem",
    tags=["certificates"],
    response_class=Response,
    responses={200: {"content": {"application/x-pem-file": {}}}},
)
def ca_pem(request: Request) -> Response:
    """The internal CA's root certificate (public), for clients to trust."""
    db: Database = request.app.state.db
    return Response(content=internal.public_root(db), media_type="application/x-pem-file")
