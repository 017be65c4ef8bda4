"""The geoip backend's zones file rendered from the snapshot (pure)."""

from __future__ import annotations

import yaml

from edgeplane.node.powerdns.geozones import EMPTY, render
from edgeplane.snapshot.zones import (
    DnsNode,
    DnsState,
    RecordState,
    RegionPoint,
    ZoneState,
    build_geo,
    build_zones,
)

REGIONS = {
    "eu-central": RegionPoint("eu-central", 50.1, 8.7),
    "us-east": RegionPoint("us-east", 39.0, -77.5),
    "ap-northeast": RegionPoint("ap-northeast", 35.7, 139.7),
}
ALL = ("eu-central", "us-east", "ap-northeast")


def state(*zones: ZoneState, v6: bool = False) -> DnsState:
    nodes = [
        DnsNode(id=r, name=f"edge-{r}", region=r, address=f"192.0.2.{i}", live=True)
        for i, r in enumerate(ALL, 1)
    ]
    if v6:  # only eu-central has an IPv6 node
        nodes.append(DnsNode(id="v6", name="edge-v6", region="eu-central", address="2001:db8::1",
                             live=True))  # fmt: skip
    return DnsState(zones=zones, nodes=tuple(nodes), regions=REGIONS, liveness_revision=1)


def zone(name: str, *records: RecordState, **kw: object) -> ZoneState:
    return ZoneState(name=name, revision=1, token="t", records=records, **kw)  # type: ignore[arg-type]


def proxied(name: str, rtype: str = "A") -> RecordState:
    return RecordState(name, rtype, 30, (), proxied=True)


def rendered(s: DnsState, rankings: set[tuple[str, ...]] | None = None) -> dict:  # type: ignore[type-arg]
    out = render(build_zones(s), build_geo(s), rankings or {ALL})
    doc = yaml.safe_load(out.text)
    assert isinstance(doc, dict)
    return doc


def test_a_proxied_apex_and_www_share_one_record_set_and_keep_the_apex_records() -> None:
    s = state(zone("a.test", proxied("@"), proxied("www"),
                   RecordState("@", "MX", 300, ("10 mx.a.test.",))))  # fmt: skip
    doc = rendered(s)
    (domain,) = doc["domains"]
    assert domain["domain"] == "."
    services = domain["services"]
    assert services["a.test."] == services["www.a.test."]
    assert services["a.test."][0] == "%ci.s1.edgeplane.invalid"
    assert services["a.test."][-1] == "all.s1.edgeplane.invalid"
    records = domain["records"]
    assert records["r-eu-central.s1.edgeplane.invalid"] == [
        {"a": {"content": "192.0.2.1", "ttl": 30}}
    ]
    assert len(records["all.s1.edgeplane.invalid"]) == 3
    apex = records["a.test."]
    kinds = sorted(next(iter(r)) for r in apex)
    assert kinds == ["mx", "ns", "ns", "ns"]  # never the SOA, never the LUA record
    assert {"mx": {"content": "10 mx.a.test.", "ttl": 300}} in apex


def test_deployment_regions_make_their_own_set() -> None:
    s = state(zone("a.test", proxied("@")), zone("b.test", proxied("@"), regions=("us-east",)))
    doc = rendered(s)
    services = doc["domains"][0]["services"]
    assert services["a.test."] != services["b.test."]
    records = doc["domains"][0]["records"]
    only_us = services["b.test."][0].split(".", 1)[1]
    assert f"r-us-east.{only_us}" in records and f"r-eu-central.{only_us}" not in records


def test_names_the_file_cannot_answer_alike_are_left_to_lua() -> None:
    # A and AAAA candidates differ (IPv6 only in eu-central): Lua, and the name under it too
    s = state(zone("a.test", proxied("www"), proxied("www", "AAAA"), proxied("x.www")), v6=True)
    out = render(build_zones(s), build_geo(s), {ALL})
    assert out.services == 0 and out.left_to_lua == 2 and out.text == EMPTY
    # more regions than slots: a deployment to a region no client has among its first
    # five nearest cannot be answered by the slots
    s = state(zone("b.test", proxied("@"), regions=("ap-northeast",)))
    far = {("eu-central", "us-east", "x1", "x2", "x3", "ap-northeast")}
    assert render(build_zones(s), build_geo(s), far).services == 0
    assert render(build_zones(s), build_geo(s), {ALL}).services == 1


def test_nothing_spelled_out_means_an_empty_file() -> None:
    s = state(zone("a.test", RecordState("www", "A", 30, ("192.0.2.9",))))
    assert render(build_zones(s), build_geo(s), {ALL}).text == EMPTY


def test_a_wildcard_name_is_quoted() -> None:
    doc = rendered(state(zone("w.test", proxied("*"), proxied("@"))))
    assert "*.w.test." in doc["domains"][0]["services"]


def test_rendering_the_zones_views_gives_the_text_of_rendering_the_zones() -> None:
    """The node renders from each zone's view (kept by hash, so one new zone is read alone):
    the same text as from the whole zones, whatever they hold, when none lies inside another."""
    from edgeplane.node.powerdns.geozones import geo_view, render_views

    s = state(
        zone(
            "a.test",
            proxied("@"),
            proxied("www"),
            proxied("deep.er.x"),
            RecordState("@", "MX", 300, ("10 mail.a.test.",)),
            RecordState("x", "TXT", 300, ('"above a proxied name"',)),
            RecordState("other", "A", 300, ("198.51.100.1",)),
        ),
        zone("b.test", proxied("www", "AAAA"), RecordState("@", "CAA", 300, ('0 issue "x"',))),
        zone("static.test", RecordState("www", "A", 300, ("198.51.100.2",))),
        zone("c.test", RecordState("@", "LUA", 30, ("A \"return '192.0.2.1'\"",))),  # not spelled
        v6=True,
    )
    zones, geo = build_zones(s), build_geo(s)
    for rankings in ({ALL}, {("us-east", "eu-central", "ap-northeast"), ALL}):
        whole = render(zones, geo, rankings)
        views = render_views((geo_view(z) for z in zones), geo, rankings)
        assert views == whole and whole.services >= 3
    static = next(z for z in zones if z.name == "static.test.")
    assert geo_view(static) == ()  # nothing of it in the file


def _views_of(zones: tuple, nested: set[str]) -> list:  # type: ignore[type-arg]
    from edgeplane.node.powerdns.geozones import full_view, geo_view

    return [full_view(z) if z.name in nested else geo_view(z) for z in zones]


def test_nested_zones_rendered_from_their_views_give_the_text_of_the_zones() -> None:
    """Zones inside other zones (a SaaS's customer zones under its own): a nested zone's view
    is the whole zone, so the parent's records at and above a child's apex, a child's apex
    records under a parent's proxied name, and records of one zone below another's apex are
    copied as when rendering the zones whole."""
    from edgeplane.node.powerdns.geozones import Nesting, geo_view, norm, render_views

    s = state(
        zone(
            "app.test",  # the parent: proxied apex, a delegation-like NS at a child's apex,
            proxied("@"),  # and a record below another zone's apex
            RecordState("@", "MX", 300, ("10 mail.app.test.",)),
            RecordState("c2", "NS", 300, ("ns.elsewhere.test.",)),
            RecordState("x.c3", "TXT", 300, ('"below c3"',)),
            RecordState("www.c4", "LUA", 30, ("A \"return '192.0.2.1'\"",)),
        ),
        zone("c1.app.test", proxied("@"), proxied("www")),  # children, proxied
        zone("c2.app.test", proxied("www"), RecordState("@", "TXT", 300, ('"c2 apex"',))),
        zone("c3.app.test", proxied("x"), RecordState("@", "CAA", 300, ('0 issue "x"',))),
        zone("c4.app.test", RecordState("@", "TXT", 300, ('"not proxied"',))),
        zone("deep.c1.app.test", proxied("@")),  # a grandchild
        zone("alone.test", proxied("@"), RecordState("@", "MX", 300, ("10 mx.alone.test.",))),
    )
    zones, geo = build_zones(s), build_geo(s)
    nesting = Nesting()
    nesting.update(frozenset(norm(z.name) for z in zones))
    assert nesting.nested == {norm(z.name) for z in zones} - {"alone.test."}
    for rankings in ({ALL}, {("us-east", "eu-central", "ap-northeast"), ALL}):
        whole = render(zones, geo, rankings)
        views = render_views(_views_of(zones, nesting.nested), geo, rankings)
        assert views == whole and whole.services >= 6
        # geo views alone miss the parent's records (why nested zones take full views)
        assert render_views((geo_view(z) for z in zones), geo, rankings) != whole
    apex = yaml.safe_load(render(zones, geo, {ALL}).text)["domains"][0]["records"]["app.test."]
    assert {"mx": {"content": "10 mail.app.test.", "ttl": 300}} in apex


def test_nesting_kept_across_updates_equals_nesting_found_afresh() -> None:
    from edgeplane.node.powerdns.geozones import Nesting

    steps = [
        {"a.test.", "b.test."},
        {"a.test.", "b.test.", "x.a.test."},  # a child: both nested
        {"a.test.", "b.test.", "x.a.test.", "y.b.test.", "z.y.b.test."},
        {"a.test.", "b.test.", "x.a.test.", "y.b.test.", "z.y.b.test.", "test."},  # a root
        {"b.test.", "x.a.test.", "c.test."},  # removals
        {"b.test.", "x.a.test.", "c.test.", "q.r.c.test.", "r.c.test."},  # child and parent at once
    ]
    kept = Nesting()
    for names in steps:
        kept.update(frozenset(names))
        fresh = Nesting()
        fresh.update(frozenset(names))
        assert kept.nested == fresh.nested, names
    assert kept.nested == {"c.test.", "q.r.c.test.", "r.c.test."}


def test_views_share_one_copy_of_equal_values() -> None:
    """A node keeps a view of each of its 10,000 zones: with a ``Shared`` table the records a
    project's zones have alike (their LUA records list the same nodes) are kept once, the
    rendered text is unchanged, and a rebuild keeps only the values of the views given."""
    from edgeplane.node.powerdns.geozones import Shared, full_view, geo_view, render_views

    s = state(*(zone(f"z{i}.test", proxied("@"), proxied("www")) for i in range(4)))
    zones, geo = build_zones(s), build_geo(s)
    share = Shared()
    shared = [geo_view(z, share) for z in zones]
    assert shared == [geo_view(z) for z in zones]
    assert [full_view(z, share) for z in zones] == [full_view(z) for z in zones]
    assert [view[0] for view in shared] == [f"z{i}.test." for i in range(4)]
    www = [rrset for view in shared for rrset in view[1] if rrset[0] == "www."]
    assert len(www) == 4 and all(r is www[0] for r in www)  # relative names: one RRset
    lua = [records for view in shared for _n, rtype, _t, records in view[1] if rtype == "LUA"]
    assert len(lua) == 8 and all(r is lua[0] for r in lua)  # one tuple of records
    assert render_views(shared, geo, {ALL}) == render(zones, geo, {ALL})
    other = zone("other.test", proxied("@"), RecordState("@", "MX", 300, ("10 mx.other.test.",)))
    (kept,) = build_zones(state(other))
    share.rebuild([geo_view(kept, share)])
    assert ("10 mx.other.test.",) in share.table and www[0] not in share.table
