"""ACME challenge answers the edge publishes while an order runs.

HTTP-01 answers are served by every edge node at ``/.well-known/acme-challenge/<token>`` for
any host; DNS-01 answers are TXT records in the domain's zone on every node's DNS server. Both
travel in the snapshot: publishing bumps the revision, and removing them (always, also after a
failed order) bumps it again.
"""

from __future__ import annotations

import secrets as pysecrets

from sqlalchemy import select

from edgeplane.store.db import Tx
from edgeplane.store.tables import AcmeChallengeRow, DomainRow, utcnow

KIND = "acme-challenge"
HTTP01 = "http-01"
DNS01 = "dns-01"


def publish(tx: Tx, domain: str, kind: str, name: str, value: str) -> str:
    """Publish one answer for the zone ``domain``; its id."""
    if kind not in (HTTP01, DNS01):
        raise ValueError(f"unknown challenge kind {kind!r}")
    row = AcmeChallengeRow(
        id=f"acme-{pysecrets.token_hex(8)}",
        domain=domain,
        kind=kind,
        name=name,
        value=value,
        created_at=utcnow(),
    )
    tx.session.add(row)
    if kind == DNS01:
        _zone_changed(tx, domain)
    tx.record("create", KIND, row.id, None, {"domain": domain, "kind": kind, "name": name})
    return row.id


def _zone_changed(tx: Tx, domain: str) -> None:
    """A DNS-01 answer changes the zone: its serial must move (the order waits for it)."""
    zone = tx.session.get(DomainRow, domain, with_for_update=True)  # before the revision
    if zone is not None:
        zone.zone_revision = tx.next_revision()


def remove(tx: Tx, ids: list[str]) -> int:
    if not ids:
        return 0
    rows = list(tx.session.scalars(select(AcmeChallengeRow).where(AcmeChallengeRow.id.in_(ids))))
    for row in rows:
        if row.kind == DNS01:
            _zone_changed(tx, row.domain)
        tx.session.delete(row)
        tx.record("delete", KIND, row.id, {"domain": row.domain, "kind": row.kind}, None)
    return len(rows)
