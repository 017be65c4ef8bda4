"""Reading the desired state the edge serves from the database.

``load_state`` makes a handful of bulk queries (active domains, CDN configs, load balancers,
server addresses, DR configs and their states, valid certificates, zones, deployments); keys
are decrypted with the box it is given, and certificates already read are taken from the
caller's ``CertCache``. ``load_domain_parts`` reads the same for a few domains only
(``snapshot.parts``), and ``load_dns_env``, ``routing``, ``load_deployments`` and
``load_acme_http`` the small inputs every build reads again.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeAlias

from pydantic import ValidationError
from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from edgeplane.certificates import origin_client
from edgeplane.model.cdn import CacheRule, EdgeSecurity, Origin
from edgeplane.model.dns_records import canonical_value, relative_owner
from edgeplane.secrets import SecretBox
from edgeplane.snapshot.bots import bot_key
from edgeplane.snapshot.build import (
    BackendState,
    CDNState,
    CertState,
    DeploymentState,
    DesiredState,
    LoadBalancerState,
)
from edgeplane.snapshot.dr import DRRule, Placement, index_addresses
from edgeplane.snapshot.functions import load_functions
from edgeplane.snapshot.parts import DomainPart
from edgeplane.snapshot.tickets import TICKET_SECRET, ticket_keys
from edgeplane.snapshot.zones import DnsNode, DnsState, RecordState, RegionPoint, ZoneState
from edgeplane.store.dr_tables import DRStateRow
from edgeplane.store.tables import (
    AcmeChallengeRow,
    BundleRow,
    CDNConfigRow,
    CertificateRow,
    DNSRecordRow,
    DomainRow,
    DRConfigRow,
    EdgeDeploymentRow,
    EdgeLivenessRow,
    EdgeNodeRow,
    LoadBalancerRow,
    OcspStapleRow,
    RegionRow,
    ServerRow,
    utcnow,
)

ACTIVE = "active"


def _backends(
    row_backends: list[dict[str, Any]] | None, endpoints: list[str] | None
) -> tuple[BackendState, ...]:
    out: list[BackendState] = []
    if row_backends:
        for b in row_backends:
            if not isinstance(b, dict) or not b.get("address"):
                continue
            out.append(
                BackendState(
                    address=str(b["address"]),
                    port=int(b["port"]) if b.get("port") else None,
                    weight=int(b.get("weight") or 1),
                    backup=bool(b.get("backup", False)),
                    state=str(b.get("state") or "active"),
                    wait_for_check=b.get("wait_for_check") is True,
                )
            )
    else:
        out = [BackendState(address=e) for e in endpoints or []]
    return tuple(out)


def _cdn(row: CDNConfigRow) -> CDNState | None:
    try:
        return CDNState(
            origins=tuple(Origin.model_validate(o) for o in row.origins or []),
            cache_rules=tuple(CacheRule.model_validate(r) for r in row.cache_rules or []),
            security=EdgeSecurity.model_validate(row.security or {}),
        )
    except ValidationError:
        return None  # stored by a newer version with fields this one does not know


def load_state(
    session: Session,
    box: SecretBox,
    *,
    now: datetime | None = None,
    certs: CertCache | None = None,
    records: RecordsCache | None = None,
    cert_keys: dict[str, tuple[str, str]] | None = None,
    every_project: bool = False,
) -> DesiredState:
    """The desired state the edge serves, in a handful of bulk queries; ``cert_keys`` gets
    each served certificate's (project, certificate id) by domain. The CDN configs, load
    balancers and servers are those of the projects with a served domain, or with
    ``every_project`` of all (the snapshot is the same: ``snapshot.parts`` keeps them for
    the projects that get a domain later)."""
    now = now or utcnow()
    domains: dict[str, list[str]] = {}
    for name, project in session.execute(
        select(DomainRow.name, DomainRow.project_id).where(DomainRow.status == ACTIVE)
    ):
        domains.setdefault(project, []).append(name)
    projects = set(domains)

    def wanted(project: str) -> bool:
        return every_project or project in projects

    cdn: dict[str, CDNState] = {}
    for row in session.scalars(select(CDNConfigRow)):
        if wanted(row.project_id):
            parsed = _cdn(row)
            if parsed is not None and parsed.security.bots.enabled:
                parsed = dataclasses.replace(parsed, bot_key=bot_key(box, row.project_id))
            if parsed is not None:
                cdn[row.project_id] = parsed

    lbs: dict[tuple[str, str], LoadBalancerState] = {}
    for lb in session.scalars(select(LoadBalancerRow)):
        if not wanted(lb.project_id):
            continue
        lbs[(lb.project_id, lb.id)] = LoadBalancerState(
            project=lb.project_id,
            id=lb.id,
            algorithm=lb.algorithm,
            backends=_backends(lb.backends, lb.endpoints),
            health_check=dict(lb.health_check) if lb.health_check else None,
            options=dict(lb.options or {}),
        )

    servers: dict[tuple[str, str], str | None] = {}
    dcs: dict[tuple[str, str], str] = {}
    if lbs:
        for project, server_id, address, dc in session.execute(
            select(ServerRow.project_id, ServerRow.id, ServerRow.address, ServerRow.data_center_id)
        ):
            if wanted(project):
                servers[(project, server_id)] = address
                if dc is not None:
                    dcs[(project, server_id)] = dc

    owner = {d: project for project, names in domains.items() for d in names}
    return DesiredState(
        dns=load_dns(session, box, records=records),
        deployments=load_deployments(session),
        functions=load_functions(session, box),
        acme_http=load_acme_http(session),
        domains={p: tuple(v) for p, v in domains.items()},
        cdn=cdn,
        load_balancers=lbs,
        servers=servers,
        certs=load_certs(session, box, owner, now, {} if certs is None else certs, keys=cert_keys),
        ticket_keys=ticket_keys(box.derive(TICKET_SECRET), now.timestamp()),
        placement=load_placement(session, {p for p, _ in lbs}, servers, dcs),
        client_certs=load_client_certs(session, box, wanted),
    )


def load_client_certs(
    session: Session, box: SecretBox, wanted: Callable[[str], bool]
) -> dict[str, CertState]:
    """The projects' client certificates for private origins (``certificates.origin_client``),
    as certificates of no SNI name."""
    out: dict[str, CertState] = {}
    for project, stored in origin_client.load_all(session, box).items():
        if wanted(project):
            out[project] = CertState(
                cert_pem=stored.cert_pem,
                key_pem=stored.key_pem,
                names=(),
                not_after=stored.not_after.isoformat(),
                id=stored.id,
            )
    return out


def load_placement(
    session: Session,
    projects: set[str],
    servers: Mapping[tuple[str, str], str | None],
    dcs: Mapping[tuple[str, str], str],
) -> Placement:
    """The DR configs of ``projects`` (those with load balancers) with their states, and
    where those projects' servers are (``snapshot.dr``): two small queries, none without a
    load balancer."""
    if not projects:
        return Placement()
    states = {
        (s.project_id, s.dr_id): s
        for s in session.scalars(select(DRStateRow).where(DRStateRow.project_id.in_(projects)))
    }
    rules: dict[str, list[DRRule]] = {}
    for c in session.scalars(
        select(DRConfigRow).where(DRConfigRow.project_id.in_(projects)).order_by(DRConfigRow.id)
    ):
        state = states.get((c.project_id, c.id))
        rules.setdefault(c.project_id, []).append(
            DRRule(
                project=c.project_id,
                id=c.id,
                primary_dc=c.primary_dc,
                backup_dc=c.backup_dc,
                failover_mode=c.failover_mode,
                active=state.active if state is not None else "primary",
                status=state.status if state is not None else "normal",
            )
        )
    if not rules:
        return Placement()
    by_address = index_addresses(
        (project, server_id, address)
        for (project, server_id), address in sorted(servers.items())
        if project in rules
    )
    return Placement(
        data_centers={k: dc for k, dc in dcs.items() if k[0] in rules},
        by_address=by_address,
        rules={p: tuple(r) for p, r in rules.items()},
    )


def load_acme_http(session: Session) -> tuple[tuple[str, str], ...]:
    """(token, key authorization) of the open HTTP-01 challenges."""
    return tuple(
        sorted(
            (c.name, c.value)
            for c in session.scalars(
                select(AcmeChallengeRow).where(AcmeChallengeRow.kind == "http-01")
            )
        )
    )


LIVE_DEPLOYMENTS = ("canary", "rolling", "active")


def load_deployments(session: Session, project: str | None = None) -> tuple[DeploymentState, ...]:
    """The live versions (canary, rolling, active) of every project's edge deployment."""
    query = (
        select(EdgeDeploymentRow, BundleRow.size)
        .join(
            BundleRow,
            (BundleRow.id == EdgeDeploymentRow.bundle_id)
            & (BundleRow.project_id == EdgeDeploymentRow.project_id),
        )
        .where(EdgeDeploymentRow.status.in_(LIVE_DEPLOYMENTS))
    )
    if project is not None:
        query = query.where(EdgeDeploymentRow.project_id == project)
    out: list[DeploymentState] = []
    for d, size in session.execute(query):
        options = d.options or {}
        out.append(
            DeploymentState(
                project=d.project_id,
                id=d.id,
                version=int(d.version),
                bundle=d.bundle_id,
                size=int(size),
                regions=tuple(sorted(d.regions or ())),
                status=d.status,
                canary_node=d.canary_node,
                spa=bool(options.get("spa")),
                origin_paths=tuple(options.get("origin_paths") or ()),
                check_path=options.get("check_path"),
            )
        )
    return tuple(sorted(out, key=lambda d: (d.project, d.id)))


def routing(session: Session) -> dict[str, tuple[tuple[str, ...] | None, int]]:
    """Project -> (the regions GeoDNS answers it from, the revision they last changed): the
    active version's regions, else the rolling-out one's (a first deployment), else None."""
    active: dict[str, tuple[str, ...]] = {}
    rolling: dict[str, tuple[str, ...]] = {}
    changed: dict[str, int] = {}
    rows = session.execute(
        select(
            EdgeDeploymentRow.project_id,
            EdgeDeploymentRow.status,
            EdgeDeploymentRow.regions,
            EdgeDeploymentRow.changed_revision,
        )
    )
    for project, status, regions, revision in rows:
        changed[project] = max(changed.get(project, 0), int(revision or 0))
        if status == "active":
            active[project] = tuple(sorted(regions or ()))
        elif status in LIVE_DEPLOYMENTS:
            rolling[project] = tuple(sorted(regions or ()))
    return {p: (active.get(p) or rolling.get(p), rev) for p, rev in changed.items()}


RecordsCache: TypeAlias = dict[str, tuple[int, tuple[RecordState, ...]]]
"""Zone records already read, by zone: (the zone's revision, its records). Every change of a
zone's records (DNS-01 answers included) bumps its revision, so a zone whose revision did not
change is not read again."""
_ZONE_CHUNK = 500


def _zone_rows(session: Session, only: str | None, names: list[str] | None = None) -> list[Any]:
    query = select(
        DomainRow.name,
        DomainRow.project_id,
        DomainRow.status,
        DomainRow.zone_revision,
        DomainRow.verification,
        DomainRow.dnssec,
        DomainRow.dnssec_key_encrypted,
    )
    if only is not None:
        query = query.where(DomainRow.name == only)
    if names is None:
        return list(session.execute(query))
    out: list[Any] = []
    for i in range(0, len(names), _ZONE_CHUNK):
        out += session.execute(query.where(DomainRow.name.in_(names[i : i + _ZONE_CHUNK])))
    return out


def load_dns(
    session: Session,
    box: SecretBox,
    *,
    only: str | None = None,
    records: RecordsCache | None = None,
) -> DnsState:
    """Every hosted zone (or the zone ``only``) with its records, the edge nodes and which of
    them are live. With ``records`` (the caller's cache) only the records of zones whose
    revision changed are read."""
    rows = _zone_rows(session, only)
    stale: list[str] | None = None  # None: read every zone's records
    if records is not None and only is None:
        stale = [
            r.name for r in rows if records.get(r.name, (None,))[0] != int(r.zone_revision or 0)
        ]
        if len(stale) > len(rows) // 2:
            stale = None
    fresh = _read_records(session, only, stale)
    if records is not None:
        if stale is None:
            records.clear()
        for r in rows:
            if stale is None or r.name in fresh or r.name not in records:
                records[r.name] = (int(r.zone_revision or 0), fresh.get(r.name, ()))
        if len(records) > len(rows) + 1000:
            names = {r.name for r in rows}
            for gone in [n for n in records if n not in names]:
                del records[gone]
        table = {r.name: records[r.name][1] for r in rows}
    else:
        table = fresh
    return _dns_state(session, box, rows, table)


def _read_records(
    session: Session, only: str | None, names: list[str] | None
) -> dict[str, tuple[RecordState, ...]]:
    """Records (DNS-01 answers merged in) of the zone ``only``, of ``names``, or of all."""
    records: dict[str, list[RecordState]] = {}
    if names is not None and not names:
        return {}
    record_qs = [select(DNSRecordRow)]
    challenge_base = select(AcmeChallengeRow).where(AcmeChallengeRow.kind == "dns-01")
    challenge_qs = [challenge_base]
    if only is not None:
        record_qs = [record_qs[0].where(DNSRecordRow.domain == only)]
        challenge_qs = [challenge_base.where(AcmeChallengeRow.domain == only)]
    elif names is not None:
        chunks = [names[i : i + _ZONE_CHUNK] for i in range(0, len(names), _ZONE_CHUNK)]
        record_qs = [select(DNSRecordRow).where(DNSRecordRow.domain.in_(c)) for c in chunks]
        challenge_qs = [challenge_base.where(AcmeChallengeRow.domain.in_(c)) for c in chunks]
    for record_q in record_qs:
        _add_records(session, record_q, records)
    answers: dict[tuple[str, str], list[str]] = {}
    for challenge_q in challenge_qs:
        for c in session.scalars(challenge_q):
            try:
                owner = relative_owner(c.domain, c.name)
            except ValueError:
                continue
            answers.setdefault((c.domain, owner), []).append(canonical_value("TXT", c.value))
    for (domain, owner), values in answers.items():
        # DNS-01 answers join any TXT the user keeps at the same name.
        listed = records.setdefault(domain, [])
        mine = next((r for r in listed if (r.name, r.type) == (owner, "TXT")), None)
        if mine is not None:
            listed.remove(mine)
            values = [*mine.values, *values]
        ttl = mine.ttl if mine is not None else 30
        listed.append(RecordState(name=owner, type="TXT", ttl=ttl, values=tuple(sorted(values))))
    return {
        name: tuple(sorted(listed, key=lambda r: (r.name, r.type)))
        for name, listed in records.items()
    }


def _add_records(session: Session, record_q: Any, records: dict[str, list[RecordState]]) -> None:
    for r in session.scalars(record_q):
        records.setdefault(r.domain, []).append(
            RecordState(
                name=r.name,
                type=r.type,
                ttl=r.ttl,
                values=tuple(r.values or ()),
                proxied=bool(r.proxied),
            )
        )


def zone_states(
    box: SecretBox,
    rows: list[Any],
    records: Mapping[str, tuple[RecordState, ...]],
    routing: Mapping[str, tuple[tuple[str, ...] | None, int]],
) -> list[ZoneState]:
    """The zones of domain ``rows`` (``_zone_rows``), with their records and routing."""
    zones: list[ZoneState] = []
    for d in rows:
        key = None
        if d.dnssec and d.dnssec_key_encrypted:
            key = box.decrypt(d.dnssec_key_encrypted)  # cached by the box
        served_from, routed_at = routing.get(d.project_id, (None, 0))
        zones.append(
            ZoneState(
                regions=served_from,
                routing_revision=routed_at,
                name=d.name,
                revision=int(d.zone_revision or 0),
                token=str((d.verification or {}).get("token") or ""),
                records=records.get(d.name, ()),
                dnssec=bool(d.dnssec),
                dnssec_key=key,
            )
        )
    return zones


def load_dns_env(session: Session) -> DnsState:
    """What every zone reads besides its own state: the edge nodes, which of them are live,
    their regions (a ``DnsState`` without zones)."""
    liveness = session.get(EdgeLivenessRow, 1)
    live = set(liveness.live) if liveness is not None else set()
    nodes = tuple(
        DnsNode(id=n.id, name=n.name, region=n.region, address=n.address, live=n.id in live)
        for n in session.scalars(select(EdgeNodeRow).order_by(EdgeNodeRow.name))
    )
    wanted = {n.region for n in nodes}
    regions = (
        {
            r.code: RegionPoint(code=r.code, latitude=r.latitude, longitude=r.longitude)
            for r in session.scalars(select(RegionRow).where(RegionRow.code.in_(wanted)))
        }
        if wanted
        else {}
    )
    return DnsState(
        nodes=nodes,
        regions=regions,
        liveness_revision=int(liveness.revision) if liveness is not None else 0,
    )


def _dns_state(
    session: Session,
    box: SecretBox,
    rows: list[Any],
    records: Mapping[str, tuple[RecordState, ...]],
) -> DnsState:
    env = load_dns_env(session)
    zones = zone_states(box, rows, records, routing(session))
    return dataclasses.replace(env, zones=tuple(zones))


CertCache: TypeAlias = dict[tuple[str, str], CertState]
"""Certificates already read, by (project, certificate id): a certificate row never changes
but for its status, which the choice of the served one reads from the light columns."""
_CHUNK = 400


def _chosen_query(now: datetime) -> Any:
    return (
        select(CertificateRow.project_id, CertificateRow.domain, CertificateRow.id)
        .where(
            CertificateRow.status == ACTIVE,
            CertificateRow.not_after > now,
            CertificateRow.not_before <= now,
        )
        .order_by(
            CertificateRow.domain,
            CertificateRow.created_at.desc(),
            CertificateRow.not_before.desc(),
            CertificateRow.id,
        )
    )


def load_certs(
    session: Session,
    box: SecretBox,
    owner: dict[str, str],
    now: datetime,
    cache: CertCache,
    *,
    only: list[str] | None = None,
    keys: dict[str, tuple[str, str]] | None = None,
) -> dict[str, CertState]:
    """Each served domain's newest valid certificate of its own project (of the domains
    ``only``, else of all); ``keys`` gets each one's (project, certificate id).

    The choice is made on light columns; the certificate and its decrypted key are read once
    per cache (the snapshot cache keeps one for as long as the control plane runs).
    """
    chosen: dict[str, tuple[str, str]] = {}  # domain -> (project, certificate id)
    query = _chosen_query(now)
    queries = (
        [query]
        if only is None
        else [
            query.where(CertificateRow.domain.in_(only[i : i + _CHUNK]))
            for i in range(0, len(only), _CHUNK)
        ]
    )
    for q in queries:
        for project, domain, cert_id in session.execute(q):
            if domain not in chosen and owner.get(domain) == project:
                chosen[domain] = (project, cert_id)
    missing = sorted({k for k in chosen.values() if k not in cache})
    if missing:
        heavy = select(
            CertificateRow.project_id,
            CertificateRow.id,
            CertificateRow.domain,
            CertificateRow.cert_pem,
            CertificateRow.key_encrypted,
            CertificateRow.names,
            CertificateRow.not_after,
        )
        wanted = set(missing)
        queries = (
            [heavy.where(CertificateRow.status == ACTIVE, CertificateRow.not_after > now)]
            if len(missing) > 4 * _CHUNK
            else [
                heavy.where(
                    tuple_(CertificateRow.project_id, CertificateRow.id).in_(
                        missing[i : i + _CHUNK]
                    )
                )
                for i in range(0, len(missing), _CHUNK)
            ]
        )
        fresh: dict[tuple[str, str], CertState] = {}
        for query in queries:
            for c in session.execute(query):
                if (c.project_id, c.id) not in wanted:
                    continue
                fresh[(c.project_id, c.id)] = CertState(
                    cert_pem=c.cert_pem,
                    key_pem=box.decrypt(c.key_encrypted),
                    names=tuple(c.names or [c.domain]),
                    not_after=c.not_after.isoformat(),
                    id=hashlib.sha256(c.cert_pem.encode()).hexdigest(),
                )
        if len(cache) > 200_000:
            cache.clear()
        cache.update(fresh)
    served = {domain: key for domain, key in chosen.items() if key in cache}
    _refresh_staples(session, now, set(served.values()), cache, every=only is None)
    if keys is not None:
        keys.update(served)
    return {domain: cache[key] for domain, key in served.items()}


def _refresh_staples(
    session: Session,
    now: datetime,
    keys: set[tuple[str, str]],
    cache: CertCache,
    *,
    every: bool = True,
) -> None:
    """Give the cached certificates ``keys`` their fresh OCSP staples. Staples change every
    few days: which one is current is read on light columns (its ``this_update``; of every
    staple, or with ``every=False`` of ``keys``' only), the response itself only when the
    cached certificate does not hold that one yet."""
    light = select(
        OcspStapleRow.project_id, OcspStapleRow.certificate_id, OcspStapleRow.this_update
    ).where(OcspStapleRow.response.is_not(None), OcspStapleRow.next_update > now)
    ordered = sorted(keys)
    queries = (
        [light]
        if every
        else [
            light.where(
                tuple_(OcspStapleRow.project_id, OcspStapleRow.certificate_id).in_(
                    ordered[i : i + _CHUNK]
                )
            )
            for i in range(0, len(ordered), _CHUNK)
        ]
    )
    stamps = {
        (r.project_id, r.certificate_id): r.this_update.isoformat()
        for q in queries
        for r in session.execute(q)
        if r.this_update is not None
    }
    stale = [k for k in keys if cache[k].ocsp_stamp != stamps.get(k)]
    wanted = sorted(k for k in stale if k in stamps)
    responses: dict[tuple[str, str], str] = {}
    for i in range(0, len(wanted), _CHUNK):
        for r in session.execute(
            select(
                OcspStapleRow.project_id, OcspStapleRow.certificate_id, OcspStapleRow.response
            ).where(
                tuple_(OcspStapleRow.project_id, OcspStapleRow.certificate_id).in_(
                    wanted[i : i + _CHUNK]
                )
            )
        ):
            responses[(r.project_id, r.certificate_id)] = r.response
    for key in stale:
        response = responses.get(key)
        cache[key] = dataclasses.replace(
            cache[key],
            ocsp_staple=response,
            ocsp_stamp=stamps.get(key) if response is not None else None,
        )


def load_domain_parts(
    session: Session,
    box: SecretBox,
    names: set[str],
    routing: Mapping[str, tuple[tuple[str, ...] | None, int]],
    now: datetime,
    *,
    certs: CertCache,
    records: RecordsCache | None = None,
) -> dict[str, DomainPart | None]:
    """The parts of the domains ``names`` (None: no such domain), as ``load_state`` reads
    them for every domain; ``routing`` as ``routing`` reads it."""
    ordered = sorted(names)
    rows = _zone_rows(session, None, ordered)
    fresh = _read_records(session, None, [r.name for r in rows])
    if records is not None:
        for r in rows:
            records[r.name] = (int(r.zone_revision or 0), fresh.get(r.name, ()))
    zones = zone_states(box, rows, fresh, routing)
    owner = {r.name: r.project_id for r in rows if r.status == ACTIVE}
    keys: dict[str, tuple[str, str]] = {}
    chosen = load_certs(session, box, owner, now, certs, only=sorted(owner), keys=keys)
    out: dict[str, DomainPart | None] = dict.fromkeys(ordered)
    for row, zone in zip(rows, zones, strict=True):
        out[row.name] = DomainPart(
            name=row.name,
            project=row.project_id,
            active=row.status == ACTIVE,
            zone=zone,
            cert=chosen.get(row.name),
            cert_key=keys.get(row.name),
        )
    return out
