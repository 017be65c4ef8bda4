"""Geo answers from PowerDNS's geoip backend (``edgeplane.node.powerdns.geo``), on a real
PowerDNS driven as a node drives it: the zones and ``EdgeConfig.geo`` of a ``DnsState`` are
applied by a ``GeoDnsEngine``, and every answer is a dnspython query with EDNS Client Subnet.

The ranking database is built once per machine (cached under ``~/.cache/edgeplane``); the
first run of this module waits for it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import dns.dnssec
import dns.name
import dns.rdatatype
import dns.rrset
import pytest
from edge_agents import searchable_tmp
from pdns import query

from edgeplane.node.powerdns.geo import GeoDnsEngine
from edgeplane.node.powerdns.process import PdnsProcess
from edgeplane.protocol.dnssec import dnskey, generate_key
from edgeplane.routing.decide import Site, rank_sites
from edgeplane.routing.geoip import GeoLocator
from edgeplane.snapshot.zones import (
    DnsNode,
    DnsState,
    RecordState,
    RegionPoint,
    ZoneState,
    build_geo,
    build_zones,
)

pytestmark = pytest.mark.integration

# The seeded coordinates (the control plane's regions table): the same ranking database as
# the end-to-end tests.
REGIONS = {
    "eu-central": RegionPoint("eu-central", 50.1109, 8.6821),
    "us-east": RegionPoint("us-east", 39.0438, -77.4874),
    "ap-northeast": RegionPoint("ap-northeast", 35.6762, 139.6503),
}
ADDRESS = {"eu-central": "192.0.2.1", "us-east": "192.0.2.2", "ap-northeast": "192.0.2.3"}
REGION_OF = {a: r for r, a in ADDRESS.items()}
SPREAD = [
    "81.2.69.142", "89.160.20.112", "2.16.0.1", "8.8.8.8", "216.160.83.56", "1.1.1.1",
    "133.242.0.1", "61.213.0.1", "175.45.176.1", "103.1.1.1", "27.121.0.1", "180.76.76.76",
    "58.14.0.1", "41.0.0.1", "200.160.2.3", "5.255.0.1", "77.88.8.8", "62.210.0.1",
    "185.60.216.35", "150.95.0.1",
]  # fmt: skip
# Addresses whose GeoLite2-City record has a (registered) country and no coordinates.
COUNTRY_ONLY = {"157.10.0.1": "JP", "103.89.44.1": "KR", "84.22.67.1": "FR"}
FIRST_BUILD_S = 300.0


def proxied(*names: str, ttl: int = 30) -> tuple[RecordState, ...]:
    return tuple(RecordState(n, "A", ttl, (), proxied=True) for n in names)


def zone(name: str, **kw: object) -> ZoneState:
    records = (
        *proxied("@", "www"),
        RecordState("@", "TXT", 300, ('"apex text"',)),
        RecordState("@", "MX", 300, ("10 mail.example.net.",)),
        RecordState("static", "A", 300, ("198.51.100.7",)),
    )
    return ZoneState(name=name, revision=1, token="t", records=records, **kw)  # type: ignore[arg-type]


def state(zones: tuple[ZoneState, ...], down: tuple[str, ...] = ()) -> DnsState:
    nodes = tuple(
        DnsNode(id=f"n-{r}", name=f"edge-{r}", region=r, address=a, live=r not in down)
        for r, a in ADDRESS.items()
    )
    return DnsState(zones=zones, nodes=nodes, regions=REGIONS, liveness_revision=2)


@pytest.fixture(scope="module")
def engine() -> Iterator[GeoDnsEngine]:
    tmp = searchable_tmp("dns-geo-")
    process = PdnsProcess(tmp / "pdns")
    eng = GeoDnsEngine(process)
    try:
        process.start()
        yield eng
    finally:
        eng.stop()


def serve(engine: GeoDnsEngine, s: DnsState, timeout: float = FIRST_BUILD_S) -> float:
    """Apply the zones and the geo answers as the agent does; seconds until both are served."""
    started = time.monotonic()
    zones = build_zones(s)
    result = engine.apply(zones)
    assert result.ok, result.error
    engine.apply_geo(zones, build_geo(s))
    assert engine.wait_idle(timeout), "the geo answers were not put in place"
    assert engine.status.error is None, engine.status.error
    return time.monotonic() - started


def answer(engine: GeoDnsEngine, name: str, ecs: str | None) -> list[str]:
    msg = query(engine.process, name, "A", ecs=ecs)
    return sorted(r.to_text() for rr in msg.answer if rr.rdtype == dns.rdatatype.A for r in rr)


def nearest(ip: str, among: list[str]) -> str:
    client = GeoLocator().locate(ip)
    sites = [Site(c, c, REGIONS[c].latitude, REGIONS[c].longitude) for c in among]
    return ADDRESS[rank_sites(client, sites)[0].site.code]


def test_every_network_gets_the_region_route_request_ranks_first(engine: GeoDnsEngine) -> None:
    serve(engine, state((zone("geo.test"),)))
    assert engine.status.services >= 2 and engine.status.left_to_lua == 0
    for ip in SPREAD:
        want = nearest(ip, list(REGIONS))
        assert answer(engine, "geo.test", ip) == [want], ip
        assert answer(engine, "www.geo.test", ip) == [want], ip
    # no location (the resolver's loopback address): every node
    assert answer(engine, "geo.test", None) == sorted(ADDRESS.values())
    # the apex's other records are answered as before; the TTL is the record's
    assert query(engine.process, "geo.test", "MX").answer[0].to_text().endswith("mail.example.net.")
    assert '"apex text"' in query(engine.process, "geo.test", "TXT").answer[0].to_text()
    ns = query(engine.process, "geo.test", "NS").answer[0]
    assert {r.to_text() for r in ns} == {f"ns-edge-{r}.geo.test." for r in ADDRESS}
    soa = query(engine.process, "geo.test", "SOA").answer[0]
    assert soa[0].serial == 1  # the zone's revision: liveness is in the geo answers only
    assert answer(engine, "static.geo.test", "8.8.8.8") == ["198.51.100.7"]
    assert query(engine.process, "geo.test", "A", ecs="8.8.8.8").answer[0].ttl == 30


def test_a_country_without_coordinates_gets_its_countrys_region(engine: GeoDnsEngine) -> None:
    serve(engine, state((zone("country.test"),)))
    locator = GeoLocator()
    for ip, country in COUNTRY_ONLY.items():
        client = locator.locate(ip)
        assert (client.country, client.source) == (country, "country"), ip
        assert answer(engine, "www.country.test", ip) == [nearest(ip, list(REGIONS))], ip
    assert answer(engine, "www.country.test", "157.10.0.1") == [ADDRESS["ap-northeast"]]
    assert answer(engine, "www.country.test", "84.22.67.1") == [ADDRESS["eu-central"]]


def test_a_region_going_down_sends_its_clients_to_the_next_nearest(
    engine: GeoDnsEngine,
) -> None:
    zones = (zone("failover.test"),)
    serve(engine, state(zones))
    london = "81.2.69.142"
    assert answer(engine, "failover.test", london) == [ADDRESS["eu-central"]]
    took = serve(engine, state(zones, down=("eu-central",)), timeout=10)
    assert answer(engine, "failover.test", london) == [ADDRESS["us-east"]]
    assert answer(engine, "failover.test", "133.242.0.1") == [ADDRESS["ap-northeast"]]
    print(f"\neu-central down: answers moved {took:.2f} s after the apply started")
    assert took < 10
    serve(engine, state(zones), timeout=10)
    assert answer(engine, "failover.test", london) == [ADDRESS["eu-central"]]


def test_deployment_regions_restrict_the_candidates(engine: GeoDnsEngine) -> None:
    only_ap = zone("deployed.test", regions=("ap-northeast",))
    us_ap = zone("deployed2.test", regions=("ap-northeast", "us-east"))
    serve(engine, state((only_ap, us_ap, zone("open.test"))))
    london = "81.2.69.142"
    assert answer(engine, "deployed.test", london) == [ADDRESS["ap-northeast"]]
    assert answer(engine, "deployed2.test", london) == [ADDRESS["us-east"]]
    assert answer(engine, "open.test", london) == [ADDRESS["eu-central"]]
    for ip in SPREAD:
        assert answer(engine, "deployed2.test", ip) == [nearest(ip, ["ap-northeast", "us-east"])]


def test_signed_geo_answers_and_denials_validate(engine: GeoDnsEngine) -> None:
    key = generate_key()
    signed = replace(zone("signed-geo.test"), dnssec=True, dnssec_key=key)
    serve(engine, state((signed,)))
    name = dns.name.from_text("signed-geo.test")
    keys = {name: dns.rrset.from_rdata(name, 3600, dnskey(key))}
    for ip in ("81.2.69.142", "8.8.8.8", "133.242.0.1"):
        msg = query(engine.process, "www.signed-geo.test", "A", ecs=ip, dnssec=True)
        a = [r for r in msg.answer if r.rdtype == dns.rdatatype.A]
        sig = [r for r in msg.answer if r.rdtype == dns.rdatatype.RRSIG]
        assert a and sig, msg
        dns.dnssec.validate(a[0], sig[0], keys)
        assert [r.to_text() for r in a[0]] == [nearest(ip, list(REGIONS))]
    # AAAA at a proxied name: NODATA, proven by a signed NSEC at the name listing A, not AAAA
    msg = query(engine.process, "www.signed-geo.test", "AAAA", ecs="8.8.8.8", dnssec=True)
    assert not [r for r in msg.answer if r.rdtype == dns.rdatatype.AAAA]
    nsec = [r for r in msg.authority if r.rdtype == dns.rdatatype.NSEC]
    sigs = {r.covers: r for r in msg.authority if r.rdtype == dns.rdatatype.RRSIG}
    at_name = [r for r in nsec if r.name == dns.name.from_text("www.signed-geo.test")]
    assert at_name, msg
    bitmap = at_name[0][0].to_text()
    assert " A " in f" {bitmap} " and "AAAA" not in bitmap, bitmap
    dns.dnssec.validate(at_name[0], sigs[dns.rdatatype.NSEC], keys)
    # The apex's NSEC lists SOA, NS and the rest beside A (its records copied for geoip).
    msg = query(engine.process, "signed-geo.test", "AAAA", ecs="8.8.8.8", dnssec=True)
    apex = [r for r in msg.authority if r.rdtype == dns.rdatatype.NSEC and r.name == name]
    assert apex, msg
    types = apex[0][0].to_text()
    for t in ("A", "NS", "SOA", "MX", "TXT", "DNSKEY"):
        assert f" {t} " in f" {types} ", types


def test_the_zones_file_holds_one_domain_for_any_number_of_zones(tmp_path: Path) -> None:
    from edgeplane.node.powerdns.geozones import render

    s = state(tuple(zone(f"z{i}.test") for i in range(50)))
    out = render(build_zones(s), build_geo(s), {("eu-central", "us-east", "ap-northeast")})
    assert out.text.count("- domain:") == 1 and out.services == 100
    assert out.text.count("r-eu-central.s1.") == 1  # one record set shared by every zone


def test_by_reference_new_zones_wait_for_a_quiet_moment_changes_do_not(
    engine: GeoDnsEngine,
) -> None:
    """As the agent drives it (``apply_geo_refs``): a new zone is read alone and answered by
    its LUA record (the same answers) until a quiet moment; a removal is put in place at once;
    the answers compared with ``route_request``'s ranking throughout."""
    from edgeplane.protocol.config import ZoneSpec, canonical_body, object_hash

    store: dict[str, ZoneSpec] = {}

    def refs_of(s: DnsState) -> dict[str, str]:
        out = {}
        for z in build_zones(s):
            digest = object_hash(canonical_body(z.model_dump(mode="json")))
            store[digest], out[z.name] = z, digest
        return out

    def apply(s: DnsState) -> None:
        zones = build_zones(s)
        assert engine.apply(zones).ok
        engine.apply_geo_refs(refs_of(s), store.__getitem__, build_geo(s))

    def in_file(name: str) -> bool:
        text = (engine.process.directory / "geo.yaml").read_text()
        return f"\n    '{name}.': *" in text

    def check(name: str) -> None:
        for ip in SPREAD[::4]:
            assert answer(engine, name, ip) == [nearest(ip, list(REGIONS))], (name, ip)

    first = state((zone("first.test"),))
    apply(first)
    assert engine.wait_idle(FIRST_BUILD_S)
    assert in_file("www.first.test")
    both = state((zone("first.test"), zone("later.test")))
    generation = engine.status.generation
    apply(both)
    deadline = time.monotonic() + 10
    while engine.status.waiting != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.status.waiting == 1 and engine.status.loaded == 1
    assert engine.status.generation == generation and not in_file("www.later.test")
    check("www.later.test")  # its LUA record answers meanwhile
    check("www.first.test")
    assert engine.wait_idle(30)  # a quiet moment, now
    assert in_file("www.later.test") and engine.status.waiting == 0
    check("www.later.test")
    # a zone the file holds removed: a new file at once, without waiting for quiet
    generation = engine.status.generation
    apply(state((zone("later.test"),)))
    deadline = time.monotonic() + 3
    while engine.status.generation == generation and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.status.generation == generation + 1
    assert not in_file("www.first.test") and in_file("www.later.test")
    check("www.later.test")


def test_nested_zones_by_reference_read_a_new_child_alone_and_keep_the_parents_records(
    engine: GeoDnsEngine,
) -> None:
    """A parent zone and zones inside it (a SaaS's customers under its own domain), as the
    agent drives it: a new child zone is read alone (not every zone again), and the file
    keeps the parent's records at the names above the children's proxied names (else the
    geoip backend's empty non-terminal there hides them)."""
    from edgeplane.protocol.config import ZoneSpec, canonical_body, object_hash

    store: dict[str, ZoneSpec] = {}

    def apply(s: DnsState) -> None:
        zones = build_zones(s)
        assert engine.apply(zones).ok
        refs = {}
        for z in zones:
            digest = object_hash(canonical_body(z.model_dump(mode="json")))
            store[digest], refs[z.name] = z, digest
        engine.apply_geo_refs(refs, store.__getitem__, build_geo(s))

    def records(name: str, rtype: str) -> list[str]:
        msg = query(engine.process, name, rtype)
        return sorted(r.to_text() for rr in msg.answer for r in rr)

    children = [zone(f"c{i}.app.test") for i in range(3)]
    apply(state((zone("app.test"), *children)))
    assert engine.wait_idle(FIRST_BUILD_S) and engine.status.error is None
    generation = engine.status.generation
    apply(state((zone("app.test"), *children, zone("c9.app.test"))))
    # a new child waits for a quiet moment like any new zone (its LUA records answer)
    deadline = time.monotonic() + 10
    while engine.status.waiting != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.status.waiting == 1 and engine.status.generation == generation
    assert engine.status.loaded == 1  # the new child alone
    assert engine.wait_idle(30) and engine.status.error is None
    text = (engine.process.directory / "geo.yaml").read_text()
    assert "\n    'www.c9.app.test.': *" in text and "\n    'app.test.': *" in text
    for name in ("app.test", "c9.app.test"):
        assert records(name, "MX") == ["10 mail.example.net."]
        assert records(name, "TXT") == ['"apex text"']
        for ip in SPREAD[::5]:
            assert answer(engine, f"www.{name}", ip) == [nearest(ip, list(REGIONS))], (name, ip)
