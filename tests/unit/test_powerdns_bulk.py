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


def test_sql_takes_only_zones_the_api_would_take() -> None:
    """What SQL writes PowerDNS does not check: anything its API would refuse goes to it."""
    from edgeplane.node.powerdns.bulk import sql_safe

    good = _zone()
    assert sql_safe(good)

    def but(*rrsets: RRSetSpec, dnssec: bool = False, keep: bool = True) -> ZoneSpec:
        base = good.rrsets if keep else ()
        return good.model_copy(update={"rrsets": (*base, *rrsets), "dnssec": dnssec})

    def rr(name: str, rtype: str, *records: str) -> RRSetSpec:
        return RRSetSpec(name=name, type=rtype, ttl=60, records=records)

    assert not sql_safe(but(dnssec=True))  # keys and rectify: the API's
    assert not sql_safe(but(rr("x.example.com.", "AAAA", "not-an-address")))
    assert not sql_safe(but(rr("x.example.com.", "BOGUS", "1")))
    assert not sql_safe(but(rr("www.other.net.", "A", "192.0.2.1")))  # outside the zone
    assert not sql_safe(but(rr("www.example.com.", "CNAME", "x.example.net.")))  # beside an A
    assert not sql_safe(but(rr("example.com.", "CNAME", "x.example.net.")))  # at the apex
    assert not sql_safe(but(rr("x.example.com.", "A")))  # no records
    assert not sql_safe(but(rr("example.com.", "NS", "ns1.example.com."), keep=False))  # no SOA
    assert sql_safe(but(rr("alias.example.com.", "CNAME", "www.example.com.")))
    assert sql_safe(but(rr("geo.example.com.", "LUA", "A \"'192.0.2.8'\"")))
