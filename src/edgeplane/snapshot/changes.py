"""What the revisions after a snapshot changed: the domains to read again, or "everything".

Every change of the desired state commits with its revision and one audit event per object
changed (``store.db.Tx``); a zone's change also stamps the domain's ``zone_revision``. So the
events of the revisions ``(after, upto]`` name the domains whose part of the snapshot may
differ (``edgeplane.snapshot.parts``). An event of a kind not listed here, a project that
is deleted (its domains and certificates go with it) or too many revisions at once make the
answer "everything" (``Changes.full``): the caller then builds the revision in full.

The small, shared inputs (edge nodes, liveness, regions, deployments, HTTP-01 answers) are
not derived from events: the caller reads them again and compares. Nor is time: a
certificate that starts or stops being valid, or an OCSP staple that expires, changes what a
build serves without an event (``next_expiry``: the caller builds in full once it passes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edgeplane.store.tables import AuditRow, CertificateRow, DomainRow, OcspStapleRow

FOREVER = datetime.max.replace(tzinfo=UTC)
MAX_REVISIONS = 64  # more revisions at once: a full build (their events would be as costly)
MAX_DOMAINS = 2000  # more domains changed: a full build

# Kinds whose object is a domain (its name), or whose events name it in "domain".
DOMAIN_KINDS = frozenset({"domain", "dns-records", "domain-verification"})
CHALLENGE_KIND = "acme-challenge"
# Kinds whose object is a certificate (its id within its project).
CERT_KINDS = frozenset({"certificate", "ocsp_staple"})
# Kinds that change nothing a domain's part reads: either nothing the edge serves, or the
# small inputs read again for every build (compared by the caller).
NEUTRAL_KINDS = frozenset(
    {
        "purge",
        "token",
        "service_account",
        "secret_key",
        "data_center",
        "dr_event",
        "service",
        "tls_ticket_keys",
        "edge-liveness",
        "edge-deployment",
        "bundle",
        "region",
        "scaling_group",  # what the edge serves of it are its load balancer's backends
        # per-node data, like edge deployments: every build reads the live function versions
        # again (``snapshot.functions.load_functions``)
        "function",
    }
)
# DR configs and their states ("dr_config", "dr_state": which data center serves a load
# balancer's backends, ``snapshot.dr``) are not listed: a full build. Their timeline
# ("dr_event": detections, confirmations, drills) changes nothing served.
# Servers matter to the snapshot only as load balancers' backends (``Changes.servers``).
SERVER_KIND = "server"


@dataclass
class Changes:
    """The domains whose part may have changed (``full``: assume everything did)."""

    full: bool = False
    reason: str = ""
    domains: set[str] = field(default_factory=set)
    certs: set[str] = field(default_factory=set)  # ids (CertificateRow.id) of no domain named
    servers: bool = False  # a server changed: a full build if any load balancer may use it


def _named_domain(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> str | None:
    for doc in (after, before):
        if isinstance(doc, Mapping) and isinstance(doc.get("domain"), str):
            return str(doc["domain"])
    return None


def classify(events: Iterable[tuple[str, str, str, Any, Any]]) -> Changes:
    """Events (kind, action, object id, before, after) -> the domains they touch (pure)."""
    out = Changes()
    for kind, action, object_id, before, after in events:
        if action == "reveal":  # a user read a secret: nothing changed (services.secret_reads)
            continue
        if kind in DOMAIN_KINDS:
            out.domains.add(object_id)
        elif kind == CHALLENGE_KIND:
            named = _named_domain(before, after)
            if named is None:
                return Changes(full=True, reason=f"{kind} {object_id} names no domain")
            out.domains.add(named)
        elif kind in CERT_KINDS:
            named = _named_domain(before, after)
            if named is not None:
                out.domains.add(named)
            else:
                out.certs.add(object_id)  # its domain looked up (OCSP staples name none)
        elif kind == "project" and action == "create":
            continue  # an empty project serves nothing
        elif kind == SERVER_KIND:
            out.servers = True
        elif kind not in NEUTRAL_KINDS:
            return Changes(full=True, reason=f"a change of kind {kind!r} ({action})")
    return out


def changes_since(session: Session, after: int, upto: int) -> Changes:
    """What the revisions ``(after, upto]`` changed, from their audit events and zone stamps."""
    if upto - after > MAX_REVISIONS:
        return Changes(full=True, reason=f"{upto - after} revisions at once")
    events = session.execute(
        select(AuditRow.kind, AuditRow.action, AuditRow.object_id, AuditRow.before, AuditRow.after)
        .where(AuditRow.revision > after, AuditRow.revision <= upto)
        .order_by(AuditRow.id)
    )
    out = classify(tuple(e) for e in events)
    if out.full:
        return out
    # A zone stamped with a revision changed, whatever its events say.
    out.domains.update(
        session.scalars(select(DomainRow.name).where(DomainRow.zone_revision > after))
    )
    if out.certs:
        ids = sorted(out.certs)
        for i in range(0, len(ids), 400):
            out.domains.update(
                session.scalars(
                    select(CertificateRow.domain).where(CertificateRow.id.in_(ids[i : i + 400]))
                )
            )
    if len(out.domains) > MAX_DOMAINS:
        return Changes(full=True, reason=f"{len(out.domains)} domains changed")
    return out


def next_expiry(session: Session, now: datetime, domains: list[str] | None = None) -> datetime:
    """The first time after ``now`` at which a certificate starts or stops being valid, or
    an OCSP staple expires (of the certificates of ``domains``, else of all): what a build
    chooses by the time changes then, without any event. ``FOREVER`` when never."""

    def certs(q: Any) -> Any:
        return q.where(CertificateRow.domain.in_(domains)) if domains is not None else q

    active = CertificateRow.status == "active"
    firsts = [
        session.scalar(certs(select(func.min(col)).where(active, col > now)))
        for col in (CertificateRow.not_after, CertificateRow.not_before)
    ]
    staples = select(func.min(OcspStapleRow.next_update)).where(
        OcspStapleRow.response.is_not(None), OcspStapleRow.next_update > now
    )
    if domains is not None:
        staples = staples.join(
            CertificateRow,
            (CertificateRow.project_id == OcspStapleRow.project_id)
            & (CertificateRow.id == OcspStapleRow.certificate_id),
        ).where(CertificateRow.domain.in_(domains))
    firsts.append(session.scalar(staples))
    return min([t for t in firsts if t is not None], default=FOREVER)
