"""Private origins: the client certificate the edge presents to the project's origins and the
CA that signs it (what a user configures an origin with: ``certificates.origin_client``), and
what the edge nodes see of the CDN's URL origins (``services.origin_health``)."""

from __future__ import annotations

from fastapi import APIRouter

from edgeplane.api.deps import Ctx
from edgeplane.certificates import origin_client
from edgeplane.model.operations import BackendHealth
from edgeplane.model.origin_client import OriginClientCertificate
from edgeplane.services.origin_health import origin_health

router = APIRouter(prefix="/api/v1/infrastructure/ca/origin-client", tags=["certificates"])
health_router = APIRouter(prefix="/api/v1/infrastructure/cdn/origins", tags=["cdn"])


@router.get("", response_model=OriginClientCertificate)
def get_origin_client_certificate(ctx: Ctx) -> OriginClientCertificate:
    """The project's client certificate (public part: no key) and the internal root CA an
    origin trusts to accept it; issued on first use. An origin accepts the edge's requests for
    this project when the client certificate chains to ``ca_pem`` and its common name is the
    project id."""
    with ctx.read() as tx:
        stored = origin_client.load(tx.session, tx.secrets, tx.project)
        if stored is not None:
            return origin_client.get(tx)
    with ctx.write() as tx:
        return origin_client.get(tx)


@router.post("/renew", response_model=OriginClientCertificate)
def renew_origin_client_certificate(ctx: Ctx) -> OriginClientCertificate:
    """A new client certificate (and key) for the project at once; the edge presents it from
    the next snapshot (the control plane also renews it on its own before it expires)."""
    with ctx.write() as tx:
        return origin_client.renew_now(tx)


@health_router.get("/health", response_model=list[BackendHealth])
def get_origin_health(ctx: Ctx) -> list[BackendHealth]:
    """Per URL origin of the CDN config: what each edge node's checks last saw (origins whose
    TLS settings verify a CA or pins are checked: a refused certificate says why)."""
    with ctx.read() as tx:
        return origin_health(tx)
