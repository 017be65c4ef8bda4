"""A domain's status: verification, whether the world's DNS points at Edgeplane, the zone
serial each edge node serves, DNSSEC and the certificate.

The world's view is a network check (``check_world``), run outside transactions by the
periodic checker and on request (``?refresh=true``); its result is kept on the domain.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from edgeplane.certificates import versions
from edgeplane.model.domains import DnssecStatus, DomainStatus, NodeZone, display_name
from edgeplane.model.enums import Role
from edgeplane.services import domains, zone_serials
from edgeplane.settings import Settings
from edgeplane.snapshot.load import load_dns, load_dns_env
from edgeplane.snapshot.zones import DnsNode, build_zone, nameservers
from edgeplane.store import domains as domain_rows
from edgeplane.store.db import Tx
from edgeplane.store.tables import DomainRow, EdgeNodeRow, RegionRow, utcnow


def dnssec_status(tx: Tx, row: DomainRow) -> DnssecStatus:
    if not row.dnssec or not row.dnssec_key_encrypted:
        return DnssecStatus(enabled=False, ds=[], dnskey=[])
    from edgeplane.protocol.dnssec import dnskey_text, ds_records

    key = tx.secrets.decrypt(row.dnssec_key_encrypted)
    return DnssecStatus(enabled=True, ds=ds_records(row.name, key), dnskey=[dnskey_text(key)])


def status(tx: Tx, domain: str) -> DomainStatus:
    tx.actor.require(tx.project, Role.VIEWER)
    row = domain_rows.get_row(tx, domain)
    dns = load_dns(tx.session, tx.secrets, only=row.name)
    zone = next(z for z in dns.zones if z.name == row.name)
    spec = build_zone(zone, dns)
    live = {n.id for n in dns.nodes if n.live}
    nodes: list[NodeZone] = []
    served = zone_serials.of_zone(tx, spec.name)
    for node in tx.session.scalars(select(EdgeNodeRow).order_by(EdgeNodeRow.name)):
        place = tx.session.get(RegionRow, node.region)
        serial = served.get(node.id)
        nodes.append(
            NodeZone(
                node=node.id,
                name=node.name,
                region=node.region,
                region_code=place.region_code if place is not None else None,
                region_type=place.area if place is not None else None,
                live=node.id in live,
                serial=int(serial) if serial is not None else None,
                in_sync=serial is not None and int(serial) == spec.serial,
                error=(node.dns or {}).get("error"),
            )
        )
    checks = row.checks or {}
    cert = versions.status(tx, row.name)
    return DomainStatus(
        domain=row.name,
        display_name=display_name(row.name),
        status=row.status,
        verification=domains.verification_model(row),
        nameservers=[t for t, _ in nameservers(row.name, dns.nodes)],
        delegated_to=checks.get("delegated_to"),
        points_to_edgeplane=checks.get("points_to_edgeplane"),
        dns_checked_at=(
            datetime.fromisoformat(checks["checked_at"]) if checks.get("checked_at") else None
        ),
        dns_check_error=checks.get("error"),
        serial=spec.serial,
        nodes=nodes,
        dnssec=dnssec_status(tx, row),
        locked=bool(row.locked),
        certificate=cert.certificate,
        certificate_status=cert.status,
    )


def world_check_inputs(tx: Tx, domain: str) -> tuple[str, set[str], set[str]]:
    """(domain, our NS names, our node addresses) for ``check_world``."""
    row = domain_rows.get_row(tx, domain)
    return (row.name, *world_targets(row.name, load_dns_env(tx.session).nodes))


def world_targets(domain: str, nodes: tuple[DnsNode, ...]) -> tuple[set[str], set[str]]:
    """(our NS names, our node addresses) for ``check_world`` of ``domain``: they depend on
    the edge nodes alone (a check of every domain reads those once)."""
    ours = {t.rstrip(".") for t, _ in nameservers(domain, nodes)}
    return ours, {n.address for n in nodes if n.address}


def check_world(
    domain: str, ours: set[str], addresses: set[str], settings: Settings
) -> dict[str, Any]:
    """Ask the world's DNS where the domain is delegated and what it answers (network I/O)."""
    from edgeplane.services.verification import resolver_for
    from edgeplane.verification.resolve import ResolutionError

    out: dict[str, Any] = {"checked_at": utcnow().isoformat()}
    try:
        resolver = resolver_for(settings)
        delegated = resolver.delegated_nameservers(domain)
        names = sorted(n.rstrip(".") for n, _ in delegated)
        out["delegated_to"] = names
        pointing = bool(ours & set(names))
        if not pointing:
            try:
                found = set(resolver.addresses(domain))
            except ResolutionError:
                found = set()
            pointing = bool(found & addresses)
        out["points_to_edgeplane"] = pointing
    except (ResolutionError, ValueError) as exc:
        out["error"] = str(exc)
        out["points_to_edgeplane"] = False
    return out


def record_world(tx: Tx, domain: str, result: dict[str, Any]) -> None:
    row = tx.session.get(DomainRow, domain)
    if row is not None:
        row.checks = result
