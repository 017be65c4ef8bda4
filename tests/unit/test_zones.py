"""The zones of the snapshot (pure): managed records, serials, GeoDNS candidates; liveness."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from edgeplane.services.liveness import compute
from edgeplane.snapshot.zones import (
    DnsNode,
    DnsState,
    RecordState,
    RegionPoint,
    ZoneState,
    build_geo,
    build_zone,
    build_zones,
)
from edgeplane.store.tables import EdgeNodeRow

REGIONS = {
    "eu-central": RegionPoint("eu-central", 50.1109, 8.6821),
    "us-east": RegionPoint("us-east", 39.0438, -77.4874),
}
PROXIED = ZoneState(
    name="shop.example",
    revision=7,
    token="t0k",
    records=(RecordState("@", "A", 30, (), proxied=True), RecordState("@", "AAAA", 30, (), True)),
)


def state(*nodes: DnsNode, liveness_revision: int = 3) -> DnsState:
    return DnsState(
        zones=(PROXIED,), nodes=nodes, regions=REGIONS, liveness_revision=liveness_revision
    )


def rrsets(zone: ZoneState, s: DnsState) -> dict[tuple[str, str], tuple[str, ...]]:
    return {(r.name, r.type): r.records for r in build_zone(zone, s).rrsets}


def test_managed_records_and_the_serial() -> None:
    s = state(
        DnsNode("n1", "fra-1", "eu-central", "198.51.100.1", live=True),
        DnsNode("n2", "iad.1", "us-east", "edge.example.net", live=True),
    )
    got = rrsets(PROXIED, s)
    assert got[("shop.example.", "NS")] == ("edge.example.net.", "ns-fra-1.shop.example.")
    assert got[("ns-fra-1.shop.example.", "A")] == ("198.51.100.1",)
    assert got[("shop.example.", "SOA")] == (
        "ns-fra-1.shop.example. hostmaster.shop.example. 7 10800 3600 604800 30",
    )
    assert got[("_edgeplane-challenge.shop.example.", "TXT")] == ('"t0k"',)
    # The serial follows no liveness change (the geo answers do); a proxied zone's follows
    # its deployment's routing changes.
    assert build_zone(PROXIED, state(liveness_revision=12)).serial == 7
    routed = replace(PROXIED, regions=("eu-central",), routing_revision=12)
    assert build_zone(routed, state()).serial == 12
    plain = ZoneState(name="plain.example", revision=7, token="t", routing_revision=12)
    assert build_zone(plain, state(liveness_revision=12)).serial == 7


def test_geo_candidates_are_the_live_nodes_by_region() -> None:
    s = state(
        DnsNode("n1", "fra-1", "eu-central", "198.51.100.1", live=True),
        DnsNode("n2", "fra-2", "eu-central", "198.51.100.2", live=False),
        DnsNode("n3", "iad-1", "us-east", "203.0.113.1", live=True),
        DnsNode("n4", "iad-6", "us-east", "2001:db8::1", live=True),
    )
    # The LUA record (the fallback) holds every addressed node by region, live or not.
    lua = next(x for x in rrsets(PROXIED, s)[("shop.example.", "LUA")] if x.startswith("A "))
    assert lua.startswith("A \";local c={{50.1109,8.6821,{'198.51.100.1','198.51.100.2'}},")
    assert "{39.0438,-77.4874,{'203.0.113.1'}}" in lua
    assert "2*6371.0088*math.asin" in lua and "la==0 and lo==0" in lua
    spec = build_zone(PROXIED, s)
    lua_records = [r for r in spec.rrsets if r.type == "LUA"]
    assert len(lua_records) == 1 and len(lua_records[0].records) == 2  # A and AAAA
    assert any(x.startswith('AAAA ";') and "'2001:db8::1'" in x for x in lua_records[0].records)
    # The geo answers, keyed by that record, hold the live ones.
    geo = {a.record: a for a in build_geo(s).answers}
    a = geo[lua]
    assert [(c.region, c.addresses) for c in a.candidates] == [
        ("eu-central", ("198.51.100.1",)),
        ("us-east", ("203.0.113.1",)),
    ]
    assert a.everyone == ("198.51.100.1", "203.0.113.1") and a.type == "A"
    assert [c.addresses for c in geo[next(r for r in geo if r.startswith("AAAA"))].candidates] == [
        ("2001:db8::1",)
    ]


def test_without_live_nodes_every_node_answers_and_without_regions_plain_records() -> None:
    down = state(
        DnsNode("n1", "fra-1", "eu-central", "198.51.100.1", live=False),
        DnsNode("n3", "iad-1", "us-east", "203.0.113.1", live=False),
    )
    lua = rrsets(PROXIED, down)[("shop.example.", "LUA")][0]
    assert "'198.51.100.1'" in lua and "'203.0.113.1'" in lua
    nowhere = DnsState(
        zones=(PROXIED,),
        nodes=(DnsNode("n1", "x-1", "mars-north", "198.51.100.1", live=True),),
        regions={},
    )
    assert rrsets(PROXIED, nowhere)[("shop.example.", "A")] == ("198.51.100.1",)
    assert ("shop.example.", "LUA") not in rrsets(PROXIED, nowhere)


def test_zones_are_sorted_and_deterministic() -> None:
    s = DnsState(
        zones=(ZoneState("b.example", 1, "t"), ZoneState("a.example", 2, "u")),
        nodes=(DnsNode("n1", "fra-1", "eu-central", "198.51.100.1", live=True),),
        regions=REGIONS,
    )
    zones = build_zones(s)
    assert [z.name for z in zones] == ["a.example.", "b.example."]
    assert build_zones(s) == zones


def test_liveness_needs_a_fresh_heartbeat_and_health() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def node(nid: str, ago: float | None, healthy: bool = True) -> EdgeNodeRow:
        at = None if ago is None else now - timedelta(seconds=ago)
        return EdgeNodeRow(id=nid, name=nid, region="eu-central", heartbeat_at=at, healthy=healthy)

    nodes = [node("c", 1.0), node("a", 4.9), node("b", 5.1), node("d", None), node("e", 0, False)]
    assert compute(nodes, now, 5.0) == ["a", "c"]


def test_a_change_of_zones_alone_keeps_the_http_hash() -> None:
    from edgeplane.protocol.config import EdgeConfig, NodeSpec

    node = NodeSpec(id="n1", name="fra-1", region="eu-central")
    s = state(DnsNode("n1", "fra-1", "eu-central", "198.51.100.1", live=True))
    one = EdgeConfig(revision=1, node=node, zones=build_zones(s))
    later = EdgeConfig(revision=2, node=node, zones=build_zones(replace(s, zones=(PLAIN,))))
    assert one.content_hash() != later.content_hash()
    assert one.http_hash() == later.http_hash()
    assert one.model_copy(update={"sites": ()}).http_hash() == one.http_hash()


PLAIN = ZoneState(name="plain.example", revision=4, token="t")
NODES = (
    DnsNode("n1", "fra-1", "eu-central", "198.51.100.1", live=True),
    DnsNode("n2", "fra-2", "eu-central", "198.51.100.2", live=True),
    DnsNode("n3", "iad-1", "us-east", "203.0.113.1", live=True),
    DnsNode("n4", "iad-6", "us-east", "2001:db8::1", live=True),
)
DEPLOYED = replace(PROXIED, name="deployed.example", regions=("us-east",), routing_revision=5)


def live_state(down: frozenset[str], revision: int) -> DnsState:
    return DnsState(
        zones=(PROXIED, PLAIN, DEPLOYED),
        nodes=tuple(replace(n, live=n.id not in down) for n in NODES),
        regions=REGIONS,
        liveness_revision=revision,
    )


def test_a_change_of_live_nodes_changes_the_geo_answers_and_no_zone() -> None:
    everyone = live_state(frozenset(), 3)
    for down in ({"n1"}, {"n1", "n2"}, {"n3", "n4"}, {"n1", "n2", "n3", "n4"}):
        changed = live_state(frozenset(down), 9)
        assert build_zones(changed) == build_zones(everyone), down
        # (no live node at all answers every node, as when every node is live)
        assert (build_geo(changed) != build_geo(everyone)) == (len(down) < 4), down
        # Every LUA record of the zones is spelled out in the geo answers, either way.
        records = {
            x for z in build_zones(changed) for r in z.rrsets if r.type == "LUA" for x in r.records
        }
        assert records == {a.record for a in build_geo(changed).answers}, down


def test_the_geo_answers_are_the_live_candidates() -> None:
    """Today's semantics: the nearest region with a live node; no live node: every node;
    a deployment's regions restrict the candidates, else every live node."""

    def answers(down: set[str]) -> dict[tuple[str, str], tuple[tuple[str, ...], ...]]:
        s = live_state(frozenset(down), 1)
        by_record = {a.record: a for a in build_geo(s).answers}
        out = {}
        for z in build_zones(s):
            for r in z.rrsets:
                for x in r.records if r.type == "LUA" else ():
                    a = by_record[x]
                    out[(z.name, a.type)] = (
                        *(c.addresses for c in a.candidates),
                        a.everyone,
                    )
        return out

    got = answers({"n1"})
    assert got[("shop.example.", "A")] == (
        ("198.51.100.2",),
        ("203.0.113.1",),
        ("198.51.100.2", "203.0.113.1"),
    )
    assert got[("deployed.example.", "A")] == (("203.0.113.1",), ("203.0.113.1",))
    # The deployment's region has no live node (v4): every live node.
    got = answers({"n3"})
    assert got[("deployed.example.", "A")] == (
        ("198.51.100.1", "198.51.100.2"),
        ("198.51.100.1", "198.51.100.2"),
    )
    assert got[("deployed.example.", "AAAA")] == (("2001:db8::1",), ("2001:db8::1",))
    # No live node at all: every addressed node (of the deployment's regions).
    got = answers({"n1", "n2", "n3", "n4"})
    assert got[("shop.example.", "A")] == (
        ("198.51.100.1", "198.51.100.2"),
        ("203.0.113.1",),
        ("198.51.100.1", "198.51.100.2", "203.0.113.1"),
    )
    assert got[("deployed.example.", "A")] == (("203.0.113.1",), ("203.0.113.1",))
