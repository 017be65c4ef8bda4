"""A domain's DNS records: read (with what Edgeplane manages), replaced, patched.

Every change is validated whole before anything is written (``edgeplane.model.dns_records``):
a bad record leaves the zone as it was. A change bumps the zone's serial basis and the
revision, so every edge node's DNS server serves it a moment later.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from edgeplane.errors import InvalidInput
from edgeplane.model.dns_records import (
    CanonicalRecord,
    DNSRecordOut,
    RecordsPatch,
    RecordsPut,
    ZoneRecords,
    canonical_record,
    check_rrsets,
    fqdn,
    relative_owner,
)
from edgeplane.model.enums import Role
from edgeplane.services.common import validate
from edgeplane.snapshot.load import load_dns
from edgeplane.snapshot.zones import build_zone
from edgeplane.store.db import Tx
from edgeplane.store.domains import get_row
from edgeplane.store.tables import DNSRecordRow, DomainRow, utcnow

KIND = "dns-records"


def _rows(tx: Tx, domain: str) -> list[DNSRecordRow]:
    q = select(DNSRecordRow).where(DNSRecordRow.domain == domain)
    return list(tx.session.scalars(q.order_by(DNSRecordRow.name, DNSRecordRow.type)))


def _canonical(row: DNSRecordRow) -> CanonicalRecord:
    return CanonicalRecord(row.name, row.type, row.ttl, tuple(row.values or ()), row.proxied)


def _out(zone: str, r: CanonicalRecord) -> DNSRecordOut:
    return DNSRecordOut(
        name=r.name,
        fqdn=fqdn(zone, r.name),
        type=r.type,
        ttl=r.ttl,
        values=list(r.values),
        proxied=r.proxied,
    )


def _view(records: list[CanonicalRecord]) -> list[dict[str, Any]]:
    return [
        {
            "name": r.name,
            "type": r.type,
            "ttl": r.ttl,
            "values": list(r.values),
            "proxied": r.proxied,
        }
        for r in sorted(records, key=lambda r: r.key)
    ]


def zone_records(tx: Tx, row: DomainRow) -> ZoneRecords:
    """The user's records and, marked ``managed``, what Edgeplane adds (SOA, NS, glue, the
    verification TXT), exactly as the edge serves them."""
    user = [_canonical(r) for r in _rows(tx, row.name)]
    dns = load_dns(tx.session, tx.secrets, only=row.name)
    zone_state = next((z for z in dns.zones if z.name == row.name), None)
    out = [_out(row.name, r) for r in user]
    serial = 0
    if zone_state is not None:
        spec = build_zone(zone_state, dns)
        serial = spec.serial
        mine = {(fqdn(row.name, r.name), r.type) for r in user}
        mine |= {(fqdn(row.name, r.name), "LUA") for r in user if r.proxied}
        for rr in spec.rrsets:
            if (rr.name, rr.type) in mine:
                continue
            rel = relative_owner(row.name, rr.name)
            out.append(
                DNSRecordOut(
                    name=rel,
                    fqdn=rr.name,
                    type=rr.type,
                    ttl=rr.ttl,
                    values=list(rr.records),
                    proxied=False,
                    managed=True,
                )
            )
    out.sort(key=lambda r: (r.name != "@", r.name, r.type))
    return ZoneRecords(domain=row.name, serial=serial, records=out)


def list_records(tx: Tx, domain: str) -> ZoneRecords:
    tx.actor.require(tx.project, Role.VIEWER)
    return zone_records(tx, get_row(tx, domain))


def _store(tx: Tx, row: DomainRow, records: list[CanonicalRecord]) -> None:
    before = [_canonical(r) for r in _rows(tx, row.name)]
    if _view(before) == _view(records):
        return
    wanted = {r.key: r for r in records}
    now = utcnow()
    for existing in _rows(tx, row.name):
        key = (existing.name, existing.type)
        new = wanted.pop(key, None)
        if new is None:
            tx.session.delete(existing)
            continue
        existing.ttl, existing.values, existing.proxied = new.ttl, list(new.values), new.proxied
        existing.updated_at = now
    for r in wanted.values():
        tx.session.add(
            DNSRecordRow(
                domain=row.name,
                name=r.name,
                type=r.type,
                ttl=r.ttl,
                values=list(r.values),
                proxied=r.proxied,
                created_at=now,
                updated_at=now,
            )
        )
    row.zone_revision = tx.next_revision()
    row.updated_at = now
    tx.record("update", KIND, row.name, {"records": _view(before)}, {"records": _view(records)})


def store_records(tx: Tx, domain: str, data: RecordsPut | dict[str, Any]) -> DomainRow:
    """Replace every record of the zone with ``data``'s (nothing written when it holds
    exactly these); the domain's row. ``replace_records`` also reads the zone back."""
    tx.actor.require(tx.project, Role.EDITOR)
    spec = validate(RecordsPut, data) if isinstance(data, dict) else data
    row = get_row(tx, domain, lock=True)
    records = [canonical_record(row.name, r, f"records[{i}]") for i, r in enumerate(spec.records)]
    check_rrsets(records, "records")
    _store(tx, row, records)
    tx.session.flush()
    return row


def replace_records(tx: Tx, domain: str, data: RecordsPut | dict[str, Any]) -> ZoneRecords:
    return zone_records(tx, store_records(tx, domain, data))


def patch_records(tx: Tx, domain: str, data: RecordsPatch | dict[str, Any]) -> ZoneRecords:
    tx.actor.require(tx.project, Role.EDITOR)
    spec = validate(RecordsPatch, data) if isinstance(data, dict) else data
    row = get_row(tx, domain, lock=True)
    current = {r.key: r for r in (_canonical(x) for x in _rows(tx, row.name))}
    for i, key in enumerate(spec.delete):
        try:
            rel = relative_owner(row.name, key.name)
        except ValueError as exc:
            raise InvalidInput.at(f"delete[{i}].name", str(exc)) from None
        if (rel, key.type) not in current:
            raise InvalidInput.at(f"delete[{i}]", f"there is no {key.type} record at {rel}")
        current.pop((rel, key.type))
    changed = [canonical_record(row.name, r, f"set[{i}]") for i, r in enumerate(spec.set)]
    check_rrsets(changed, "set")
    for r in changed:
        current[r.key] = r
    merged = sorted(current.values(), key=lambda r: r.key)
    index = {r.key: i for i, r in enumerate(changed)}
    try:
        check_rrsets(merged, "records")
    except InvalidInput as exc:
        # Name the entry of ``set`` that conflicts, not a position in the merged list.
        cnames = [index[r.key] for r in merged if r.type == "CNAME" and r.key in index]
        culprit = cnames[0] if cnames else next(iter(index.values()), 0)
        detail = str(exc).split(": ", 1)[-1]
        raise InvalidInput.at(f"set[{culprit}]", detail) from None
    _store(tx, row, merged)
    tx.session.flush()
    return zone_records(tx, row)
