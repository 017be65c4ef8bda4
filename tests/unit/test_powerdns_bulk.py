"""The rows a zone becomes when written straight into PowerDNS's database (pure)."""

from __future__ import annotations

from edgeplane.node.powerdns.bulk import zone_rows
from edgeplane.protocol.config import RRSetSpec, ZoneSpec


def _zone() -> ZoneSpec:
    def rr(name: str, rtype: str, *records: str) -> RRSetSpec:
        return RRSetSpec(name=name, type=rtype, ttl=60, records=records)

    return ZoneSpec(
        name="Example.COM.",
        serial=7,
        rrsets=(
            rr("example.com.", "SOA", "ns1.example.com. hostmaster.example.com. 7 1 2 3 4"),
            rr("example.com.", "NS", "ns1.example.com."),
            rr("example.com.", "MX", "10 mail.example.com."),
            rr("_sip._tcp.example.com.", "SRV", "5 10 5060 sip.example.com."),
            rr("_acme-challenge.a.b.example.com.", "TXT", '"t"'),
            rr("sub.example.com.", "NS", "ns.other.net."),
            rr("ns.sub.example.com.", "A", "192.0.2.1"),
            rr("WWW.example.com.", "A", "192.0.2.2"),
        ),
    )


def test_rows_split_priorities_mark_delegations_and_add_empty_non_terminals() -> None:
    rows = set(zone_rows(_zone()))
    assert ("example.com", "MX", "mail.example.com.", 60, 10, 1) in rows
    assert ("_sip._tcp.example.com", "SRV", "10 5060 sip.example.com.", 60, 5, 1) in rows
    assert ("www.example.com", "A", "192.0.2.2", 60, 0, 1) in rows  # names lower-case
    # a delegation and its glue are not authoritative
    assert ("sub.example.com", "NS", "ns.other.net.", 60, 0, 0) in rows
    assert ("ns.sub.example.com", "A", "192.0.2.1", 60, 0, 0) in rows
    ents = {r[0] for r in rows if r[1] is None}
    assert ents == {"_tcp.example.com", "a.b.example.com", "b.example.com"}
    assert all(r[5] == 1 for r in rows if r[1] is None)
