"""The authoritative zones every edge node's DNS server serves: a pure function of the state.

Each domain is a zone. Besides the user's records it holds what Edgeplane manages:

- **SOA** with the zone's serial: the revision of its newest change, or, when the zone has
  proxied records, of the newest change of its edge deployment's regions if that is newer.
  Which edge nodes are live is *not* in any zone (see below): a node joining or leaving the
  live set changes no zone's content or serial;
- **NS** naming every edge node with an address (``ns-<node>.<zone>``, glue beside it);
- the **verification TXT** at ``_edgeplane-challenge.<zone>`` holding the domain's token;
- **proxied** A / AAAA records as PowerDNS LUA records that answer each client with the
  nodes of its nearest region among the regions with an *addressed* node (live or not): the
  client is located from its EDNS Client Subnet (else the resolver's address) with the same
  GeoIP database as ``route_request``, distances are the same haversine on the same region
  coordinates, and ties go to the lower region code, as in
  ``edgeplane.routing.decide.rank_sites``. A client with no location gets every addressed
  node. A project with an **edge deployment** is answered from the nodes of the deployment's
  regions only (the nearest region that has one), or every node when none has one. The LUA
  record's text depends only on the record type, the deployment's regions and the addressed
  nodes by region (never on liveness), so it stays put while nodes come and go.

Liveness lives in ``EdgeConfig.geo`` (:func:`build_geo`), small and rebuilt at every
revision: per distinct LUA record (its text is the key), the *live* candidates: the live
nodes of the nearest region among the regions with a live node, restricted to the
deployment's regions when one of them has a live node (else every live node); with no live
node at all, every addressed node (better a node that may be down than no answer). Nodes
answer proxied names from PowerDNS's geoip backend fed by it, without Lua
(``edgeplane.node.powerdns.geo``), signed by PowerDNS for DNSSEC zones like any other
answer; the LUA record stays in the zone as the fallback (a fresh node before its geoip
backend is in place, and the names the geoip backend cannot express: see
``edgeplane.node.powerdns.geozones``) and for DNSSEC denial. The fallback answers the
nearest region's addressed nodes, which may include a node that is not live.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from edgeplane.model.dns_records import CHALLENGE_LABEL, DEFAULT_TTL, fqdn
from edgeplane.protocol.config import (
    DnssecKeySpec,
    GeoAnswerSpec,
    GeoCandidateSpec,
    GeoDnsSpec,
    GeoRegionSpec,
    RRSetSpec,
    ZoneSpec,
)
from edgeplane.routing.distance import EARTH_MEAN_RADIUS_KM

NS_TTL = 3600
SOA_TIMERS = "10800 3600 604800 30"  # refresh, retry, expire, negative-answer TTL


@dataclass(frozen=True)
class RecordState:
    name: str  # relative to the zone ("@", "www")
    type: str
    ttl: int
    values: tuple[str, ...]
    proxied: bool = False


@dataclass(frozen=True)
class ZoneState:
    name: str  # A-labels, no trailing dot
    revision: int  # the revision of the zone's newest change
    token: str  # the ownership verification token
    records: tuple[RecordState, ...] = ()
    dnssec: bool = False
    dnssec_key: str | None = None  # ISC private key text
    # The regions of the project's edge deployment (None: none, every region serves it) and
    # the revision at which they last changed.
    regions: tuple[str, ...] | None = None
    routing_revision: int = 0


@dataclass(frozen=True)
class DnsNode:
    id: str
    name: str
    region: str
    address: str | None
    live: bool


@dataclass(frozen=True)
class RegionPoint:
    code: str
    latitude: float
    longitude: float


@dataclass(frozen=True)
class DnsState:
    zones: tuple[ZoneState, ...] = ()
    nodes: tuple[DnsNode, ...] = ()
    regions: Mapping[str, RegionPoint] = field(default_factory=dict)
    # The revision of the newest change of the live set: no zone reads it (``build_geo``
    # reads ``DnsNode.live``), kept for whoever shows it.
    liveness_revision: int = 0


def ns_label(node_name: str) -> str:
    return "ns-" + re.sub(r"[^a-z0-9-]", "-", node_name.lower()).strip("-")[:60]


def _ip(address: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not address:
        return None
    try:
        return ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return None


def _lua_number(value: float) -> str:
    return repr(float(value))


def geo_lua(candidates: list[tuple[RegionPoint, list[str]]], everyone: list[str]) -> str:
    """The LUA record body answering a client with the addresses of its nearest candidate.

    ``candidates`` are (region, addresses) sorted by region code; ``everyone`` answers
    clients without a location."""
    table = ",".join(
        "{"
        + f"{_lua_number(r.latitude)},{_lua_number(r.longitude)},"
        + "{"
        + ",".join(f"'{a}'" for a in addrs)
        + "}}"
        for r, addrs in candidates
    )
    all_addrs = ",".join(f"'{a}'" for a in everyone)
    return (
        f";local c={{{table}}} local a={{{all_addrs}}} "
        "local la,lo=string.match(latlon() or '','^(%-?[%d%.]+)%s+(%-?[%d%.]+)$') "
        "if not la then return a end la=tonumber(la) lo=tonumber(lo) "
        "if la==0 and lo==0 then return a end "
        "local r=math.rad local b,bd=nil,nil "
        "for _,x in ipairs(c) do "
        "local p1=r(la) local p2=r(x[1]) local dp=math.sin((p2-p1)/2) "
        "local dl=math.sin(r(x[2]-lo)/2) local h=dp*dp+math.cos(p1)*math.cos(p2)*dl*dl "
        "if h>1 then h=1 elseif h<0 then h=0 end "
        f"local d=2*{EARTH_MEAN_RADIUS_KM!r}*math.asin(math.sqrt(h)) "
        "if bd==nil or d<bd then b,bd=x,d end end "
        "return b[3]"
    )


@dataclass(frozen=True)
class GeoAnswer:
    """What a proxied record of one IP version answers: the candidates (region, addresses)
    by region code, and everyone (the answer without a client location)."""

    candidates: tuple[tuple[RegionPoint, tuple[str, ...]], ...]
    everyone: tuple[str, ...]


def geo_answer(
    state: DnsState, version: int, regions: tuple[str, ...] | None = None, *, live: bool = False
) -> GeoAnswer | None:
    """The answer of proxied records of IP ``version``; None when no node has one.

    The candidates are the addressed nodes (``live``: the live ones, every addressed node
    when none is live). With ``regions`` (a project's edge deployment) they are restricted
    to those regions' nodes; when none of them has one, every node (which sends what the
    bundle would have served to the origin)."""

    def addr(n: DnsNode) -> str | None:
        ip = _ip(n.address)
        return str(ip) if ip is not None and ip.version == version else None

    addressed = [(n, a) for n in state.nodes if (a := addr(n)) is not None]
    if not addressed:
        return None
    chosen = ([(n, a) for n, a in addressed if n.live] or addressed) if live else addressed
    if regions is not None:
        chosen = [(n, a) for n, a in chosen if n.region in regions] or chosen
    by_region: dict[str, list[str]] = {}
    for n, a in chosen:
        by_region.setdefault(n.region, []).append(a)
    candidates = tuple(
        (state.regions[code], tuple(sorted(set(addrs))))
        for code, addrs in sorted(by_region.items())
        if code in state.regions
    )
    return GeoAnswer(candidates, tuple(sorted({a for _, a in chosen})))


def lua_content(answer: GeoAnswer, version: int) -> str:
    rtype = "A" if version == 4 else "AAAA"
    candidates = [(r, list(addrs)) for r, addrs in answer.candidates]
    return f'{rtype} "{geo_lua(candidates, list(answer.everyone))}"'


def _proxied(
    state: DnsState, version: int, regions: tuple[str, ...] | None = None
) -> tuple[str, ...] | None:
    """The LUA content for proxied records of IP ``version``; None when no node has one
    (plain records when no candidate region has coordinates)."""
    answer = geo_answer(state, version, regions)
    if answer is None:
        return None
    if not answer.candidates:
        return answer.everyone  # no coordinates known: plain records
    return (lua_content(answer, version),)


GeoWant = tuple[tuple[str, ...] | None, str]  # (a project's deployment regions, A / AAAA)


def geo_wants(zone: ZoneState) -> set[GeoWant]:
    """The LUA records ``zone``'s proxied records need spelled out in ``EdgeConfig.geo``."""
    return {(zone.regions, r.type) for r in zone.records if r.proxied}


def build_geo(state: DnsState, wanted: set[GeoWant] | None = None) -> GeoDnsSpec:
    """Per distinct LUA record of the zones (its text, which does not depend on liveness, is
    the key): the live candidates; and the region table. ``wanted``: what the zones of
    ``state`` need (``geo_wants``), when already known.

    A deployment's regions restrict the live candidates exactly when they restrict the
    addressed ones (live nodes are addressed nodes), so records of the same text have the
    same live answer whatever deployment they come from."""
    answers: dict[str, GeoAnswerSpec] = {}
    if wanted is None:
        wanted = {w for z in state.zones for w in geo_wants(z)}
    for regions, rtype in sorted(wanted, key=lambda w: (w[0] or (), w[0] is None, w[1])):
        version = 4 if rtype == "A" else 6
        stable = geo_answer(state, version, regions)
        if stable is None or not stable.candidates:
            continue  # plain records in the zones
        record = lua_content(stable, version)
        if record in answers:
            continue
        answer = geo_answer(state, version, regions, live=True)
        assert answer is not None  # a live node is an addressed node
        answers[record] = GeoAnswerSpec(
            record=record,
            type="A" if version == 4 else "AAAA",
            candidates=tuple(
                GeoCandidateSpec(region=r.code, addresses=addrs) for r, addrs in answer.candidates
            ),
            everyone=answer.everyone,
        )
    addressed = {n.region for n in state.nodes if _ip(n.address) is not None}
    return GeoDnsSpec(
        regions=tuple(
            GeoRegionSpec(code=r.code, latitude=r.latitude, longitude=r.longitude)
            for code, r in sorted(state.regions.items())
            if code in addressed
        ),
        answers=tuple(answers[k] for k in sorted(answers)),
    )


def nameservers(zone: str, nodes: tuple[DnsNode, ...]) -> list[tuple[str, str | None]]:
    """(NS target, glue address) per node with an address, sorted by node name."""
    out: list[tuple[str, str | None]] = []
    for n in sorted(nodes, key=lambda n: n.name):
        if not n.address:
            continue
        if _ip(n.address) is not None:
            out.append((f"{ns_label(n.name)}.{zone}.", str(_ip(n.address))))
        else:
            out.append((n.address.rstrip(".") + ".", None))
    return out


def zone_serial(zone: ZoneState, state: DnsState) -> int:
    """The zone's revision, or its deployment's routing revision when it has proxied records
    and that is newer. Not the liveness revision: liveness is in ``EdgeConfig.geo`` only."""
    serial = zone.revision
    if any(r.proxied for r in zone.records):
        serial = max(serial, zone.routing_revision)
    return max(1, serial)


def build_zone(zone: ZoneState, state: DnsState) -> ZoneSpec:
    name = zone.name
    serial = zone_serial(zone, state)
    rrsets: dict[tuple[str, str], RRSetSpec] = {}

    def put(owner: str, rtype: str, ttl: int, records: tuple[str, ...]) -> None:
        # LUA records of several types (A and AAAA) share one LUA RRset.
        old = rrsets.get((owner, rtype))
        merged = (*old.records, *records) if old is not None and rtype == "LUA" else records
        rrsets[(owner, rtype)] = RRSetSpec(
            name=owner, type=rtype, ttl=ttl, records=tuple(sorted(set(merged)))
        )

    for r in zone.records:
        owner = fqdn(name, r.name)
        if r.proxied:
            version = 4 if r.type == "A" else 6
            content = _proxied(state, version, zone.regions)
            if content is None:
                continue
            lua = content[0].startswith(("A ", "AAAA "))
            put(owner, "LUA" if lua else r.type, r.ttl, content)
        else:
            put(owner, r.type, r.ttl, r.values)
    ns = nameservers(name, state.nodes)
    if ns:
        put(f"{name}.", "NS", NS_TTL, tuple(t for t, _ in ns))
        for target, glue in ns:
            if glue is not None:
                gtype = "A" if ":" not in glue else "AAAA"
                put(target, gtype, NS_TTL, (glue,))
    primary = ns[0][0] if ns else f"{name}."
    put(f"{name}.", "SOA", NS_TTL, (f"{primary} hostmaster.{name}. {serial} {SOA_TIMERS}",))
    put(f"{CHALLENGE_LABEL}.{name}.", "TXT", DEFAULT_TTL, (f'"{zone.token}"',))
    keys: tuple[DnssecKeySpec, ...] = ()
    if zone.dnssec and zone.dnssec_key:
        from edgeplane.protocol.dnssec import key_id

        keys = (DnssecKeySpec(id=key_id(zone.dnssec_key), private_key=zone.dnssec_key),)
    return ZoneSpec(
        name=f"{name}.",
        serial=serial,
        dnssec=bool(keys),
        dnssec_keys=keys,
        rrsets=tuple(rrsets[k] for k in sorted(rrsets)),
    )


def build_zones(state: DnsState) -> tuple[ZoneSpec, ...]:
    return tuple(build_zone(z, state) for z in sorted(state.zones, key=lambda z: z.name))
