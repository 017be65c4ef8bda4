"""The zones file of PowerDNS's geoip backend: the zones' proxied names answered in C++.

PowerDNS 4.7 runs a fresh Lua state for every query of a LUA record and never caches its
answer; the geoip backend answers a *service* from a list of templated names, the first
that has records, each placeholder filled from the client's record in a GeoIP database. With
the ranking database of ``edgeplane.routing.georank`` (slot i of a client = its i-th
nearest region) a proxied name becomes::

    www.example.com: ['%ci.s1.edgeplane.invalid', '%re.s1…', '%co.s1…', '%cn.s1…',
                      '%na.s1…', 'all.s1.edgeplane.invalid']

where set ``s1`` (one per distinct answer: shared by every name answered alike) holds
``r-<region>.s1…`` for each candidate region and ``all.s1…`` (everyone): the first slot
naming a candidate wins, which is the nearest candidate.

How it sits beside the SQLite zones (``launch=geoip,gsqlite3``, ``consistent-backends=no``):

- one domain, the root ``.``: PowerDNS picks the geoip domain by zone id and, for an id it
  does not have, the first domain the name is part of, which the root always is (so nothing
  depends on SQLite's zone ids and the file has one domain however many zones there are);
- PowerDNS takes the answer of the *first* backend that has anything at a name: at a
  proxied name the geoip backend answers, and the SQLite zone's records there are hidden.
  So the file holds a copy of every other RRset at the proxied names (NS, CAA, MX… at an
  apex; never the SOA, which PowerDNS takes from the zone) and at the names above them in
  served zones (where the backend would otherwise put an empty non-terminal);
- the SQLite zone keeps its LUA record: the answers for a name this file does not hold (yet),
  from the addressed nodes, live or not (liveness is in ``EdgeConfig.geo`` only), and the
  name in the zone's NSEC chain for DNSSEC denial;
- a name is left to its LUA record when its answer is not spelled out in ``EdgeConfig.geo``,
  when its A and AAAA candidates differ, when some client's five nearest regions miss
  every candidate (more than five regions, few candidates), or when a name above it is.

Pure: ``render(zones, geo, rankings) -> text``; names and record contents are quoted. The
node renders from each zone's view (kept by zone hash: a new zone among 10,000 is read
alone): its ``geo_view``, or the ``full_view`` of a zone nested with another (``Nesting``),
which gives the same text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar, cast

from edgeplane.protocol.config import GeoAnswerSpec, GeoDnsSpec, ZoneSpec
from edgeplane.routing.georank import PLACEHOLDERS, SLOTS, slot_value

SET_SUFFIX = "edgeplane.invalid"
NOT_COPIED = frozenset({"SOA", "LUA"})
EMPTY = "domains: []\n"
_T = TypeVar("_T")


@dataclass(frozen=True)
class GeoZones:
    text: str
    services: int  # names answered by the geoip backend
    left_to_lua: int  # proxied names left to their LUA record


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def norm(name: str) -> str:
    """Lower case with one trailing dot; a name already so spelled is returned as it is (the
    views and maps of 10,000 zones keep it: one string each, not a copy per structure)."""
    if name.endswith(".") and not name.endswith("..") and name.islower():
        return name
    return name.lower().rstrip(".") + "."


def _covered(candidates: frozenset[str], rankings: Iterable[tuple[str, ...]]) -> bool:
    """Every located client has a candidate among its SLOTS nearest regions."""
    return all(not r or candidates.intersection(r[:SLOTS]) for r in rankings)


# A zone's RRsets the zones file is made of, see ``geo_view``: the zone's name (as ``norm``
# spells it) and its RRsets as (label, TYPE, ttl, records), the label relative to the zone
# ("" at the apex, "www." below it), so that zones alike share one tuple of RRsets; or ()
# for a zone the file holds nothing of.
RRsets = tuple[tuple[str, str, int, tuple[str, ...]], ...]
View = tuple[()] | tuple[str, RRsets]
Owners = dict[str, dict[str, tuple[int, tuple[str, ...]]]]  # name -> {type: (ttl, records)}


class Shared:
    """One copy of each equal value (a label, a type, a tuple of records, an RRset, a zone's
    RRsets) among the views a node keeps: the zones of a project answer alike, so their LUA
    records (hundreds of bytes each, listing the same nodes) are equal, and so are most of
    their RRsets once named relative to their zone (all but those that name the zone, as its
    NS records do). At 10,000 zones of one project the views took 32 MiB with a copy per
    zone. Values of views no longer kept stay until ``rebuild``."""

    def __init__(self) -> None:
        self.table: dict[object, object] = {}
        self.floor = 0  # the table's size at the last rebuild

    def __call__(self, value: _T) -> _T:
        return cast(_T, self.table.setdefault(value, value))

    def rebuild(self, views: Iterable[View]) -> None:
        """Keep only the values of ``views``."""
        self.table = {}
        for view in views:
            if view:
                for rrset in self(view[1]):
                    label, rtype, _ttl, records = self(rrset)
                    self(label), self(rtype), self(records)
        self.floor = len(self.table)


class Share(Protocol):
    def __call__(self, value: _T, /) -> _T: ...


def _alone(value: _T) -> _T:
    return value


def _view(zone: ZoneSpec, names: frozenset[str], share: Share) -> View:
    """The RRsets of ``zone`` at ``names`` (every name when empty), SOA aside; a name
    outside the zone (which PowerDNS would not serve either) is left out."""
    origin = norm(zone.name)
    cut = len(origin)
    rrsets = tuple(
        share((share(name[: len(name) - cut]), share(rtype), rrset.ttl, share(rrset.records)))
        for rrset in zone.rrsets
        if (rtype := rrset.type.upper()) != "SOA"
        and ((name := norm(rrset.name)) in names or not names)
        and (name == origin or name.endswith("." + origin))
    )
    return (origin, share(rrsets)) if rrsets else ()


def geo_view(zone: ZoneSpec, share: Share = _alone) -> View:
    """What of ``zone`` the zones file can hold, when no served zone lies inside another: the
    RRsets at its LUA names and at the names above them in the zone, SOA aside (never
    copied). Empty for a zone without LUA records: the file holds nothing of it. Rendering
    the views of such zones gives the text of rendering the zones (``render_views``).
    ``share``: one copy of equal values among views (see :class:`Shared`)."""
    lua = {norm(r.name) for r in zone.rrsets if r.type.upper() == "LUA"}
    if not lua:
        return ()
    return _view(zone, frozenset(lua | {a for n in lua for a in ancestors(n)}), share)


def full_view(zone: ZoneSpec, share: Share = _alone) -> View:
    """Every RRset of ``zone`` but its SOA (never copied): the view of a nested zone (see
    :class:`Nesting`)."""
    return _view(zone, frozenset(), share)  # no names: every one


class Nesting:
    """Which served zones are nested: lie inside another zone, or have one inside them.

    A nested zone's view is its :func:`full_view`, others keep their :func:`geo_view`; so
    rendering the views gives the text of rendering the zones whatever lies inside what. (A
    name the file holds takes copies of the RRsets of every zone at it and at the names above
    it: a parent zone's RRsets at a child's apex and above, a child's at its apex under a
    parent's proxied name, and records of one zone below another's apex; only between nested
    zones is any of these not in the zone's own geo view.)

    Kept across updates: a new zone that is not above a zone already known is checked alone
    (10,000 zones checked at every update took tens of ms of the node's CPU)."""

    def __init__(self) -> None:
        self.names: frozenset[str] = frozenset()
        self._above: set[str] = set()  # every ancestor of every zone's name
        self.nested: set[str] = set()

    def update(self, names: frozenset[str]) -> None:
        """The zones served now (names as ``norm`` spells them)."""
        added = names - self.names
        if self.names - names or not self._above.isdisjoint(added):
            self._above = {a for n in names for a in ancestors(n)}
            self.nested = {
                n for n in names if n in self._above or any(a in names for a in ancestors(n))
            }
        else:
            for name in added:
                above = ancestors(name)
                self._above.update(above)
                parents = [a for a in above if a in names]
                if parents:
                    self.nested.add(name)
                    self.nested.update(parents)
        self.names = names


def render_views(
    views: Iterable[View], geo: GeoDnsSpec, rankings: Iterable[tuple[str, ...]]
) -> GeoZones:
    """``render`` from the zones' views: ``geo_view`` of a zone none other lies inside or
    around, ``full_view`` of a nested one (see :class:`Nesting`)."""
    owners: Owners = {}
    for view in views:
        if view:
            origin, rrsets = view
            for label, rtype, ttl, records in rrsets:
                owners.setdefault(label + origin, {})[rtype] = (ttl, records)
    return _render(owners, geo, rankings)


def render(
    zones: Iterable[ZoneSpec],
    geo: GeoDnsSpec,
    rankings: Iterable[tuple[str, ...]],
) -> GeoZones:
    # name -> {type: (ttl, records)} over every served zone
    owners: Owners = {}
    for zone in zones:
        for rrset in zone.rrsets:
            owners.setdefault(norm(rrset.name), {})[rrset.type.upper()] = (
                rrset.ttl,
                rrset.records,
            )
    return _render(owners, geo, rankings)


def _render(owners: Owners, geo: GeoDnsSpec, rankings: Iterable[tuple[str, ...]]) -> GeoZones:
    rankings = frozenset(rankings)
    answers: Mapping[str, GeoAnswerSpec] = {a.record: a for a in geo.answers}
    sets: dict[tuple[int, tuple[str, ...]], str] = {}
    services: dict[str, str] = {}
    fallback: set[str] = set()
    for name, types in owners.items():
        lua = types.get("LUA")
        if lua is None:
            continue
        ttl, records = lua
        spelled = [answers.get(r) for r in records]
        if not all(spelled) or not spelled:
            fallback.add(name)
            continue
        chosen = [a for a in spelled if a is not None]
        regions = {frozenset(c.region for c in a.candidates) for a in chosen}
        if len(regions) != 1 or not _covered(next(iter(regions)), rankings):
            fallback.add(name)
            continue
        key = (ttl, tuple(sorted(a.record for a in chosen)))
        services[name] = sets.setdefault(key, f"s{len(sets) + 1}")
    # A name under a name left to Lua would hide it (an empty non-terminal): Lua it too.
    for name in sorted(services):
        if any(_ancestor in fallback for _ancestor in ancestors(name)):
            del services[name]
            fallback.add(name)

    copies: dict[str, dict[str, tuple[int, tuple[str, ...]]]] = {}
    for name in services:
        for owner in (name, *ancestors(name)):
            if owner in owners and owner not in copies:
                kept = {t: v for t, v in owners[owner].items() if t not in NOT_COPIED}
                if kept or owner not in services:
                    copies[owner] = kept

    lines = ["lists:"]
    for (_ttl, _records), set_id in sets.items():
        target = f"{set_id}.{SET_SUFFIX}"
        formats = [f"{p}.{target}" for p in PLACEHOLDERS[:SLOTS]] + [f"all.{target}"]
        lines.append(f"  {set_id}: &{set_id} [{', '.join(_q(f) for f in formats)}]")
    lines += ["domains:", "- domain: .", "  ttl: 30", "  records:"]
    for (ttl, records), set_id in sets.items():
        parts = [answers[r] for r in records]
        by_region: dict[str, list[str]] = {}
        everyone: list[str] = []
        for a in parts:
            kind = a.type.lower()
            for c in a.candidates:
                by_region.setdefault(c.region, []).extend(
                    f"{{{kind}: {{content: {_q(x)}, ttl: {ttl}}}}}" for x in c.addresses
                )
            everyone += [f"{{{kind}: {{content: {_q(x)}, ttl: {ttl}}}}}" for x in a.everyone]
        for region, entries in sorted(by_region.items()):
            label = _q(f"{slot_value(region)}.{set_id}.{SET_SUFFIX}")
            lines.append(f"    {label}: [{', '.join(entries)}]")
        lines.append(f"    {_q(f'all.{set_id}.{SET_SUFFIX}')}: [{', '.join(everyone)}]")
    for owner, kept in sorted(copies.items()):
        entries = [
            f"{{{t.lower()}: {{content: {_q(c)}, ttl: {ttl}}}}}"
            for t, (ttl, records) in sorted(kept.items())
            for c in records
        ]
        if entries:
            lines.append(f"    {_q(owner)}: [{', '.join(entries)}]")
    lines.append("  services:")
    for name, set_id in sorted(services.items()):
        lines.append(f"    {_q(name)}: *{set_id}")  # quoted: '*.example.com.' is a name
    if not services:
        return GeoZones(EMPTY, 0, len(fallback))
    return GeoZones("\n".join(lines) + "\n", len(services), len(fallback))


def ancestors(name: str) -> list[str]:
    labels = name.rstrip(".").split(".")
    return [".".join(labels[i:]) + "." for i in range(1, len(labels))]
