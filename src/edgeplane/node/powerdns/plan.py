"""What to change in PowerDNS to serve exactly a snapshot's zones: pure functions, no I/O.

PowerDNS hands contents back in its own canonical form: names lower-case, AAAA compressed
(``2001:db8::1``), TXT and CAA values quoted, and so on. Both sides are compared in a form that
ignores these differences (:func:`canonical_record`), so a zone that did not change plans no
change at all, and records are compared as sets (PowerDNS returns them in any order).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from edgeplane.node.powerdns.api import RRSetChange, RRSetKey, RRSetValue
from edgeplane.protocol.config import DnssecKeySpec, RRSetSpec, ZoneSpec

Rrsets = Mapping[RRSetKey, RRSetValue]
Current = Mapping[str, Rrsets]  # zone -> (name, type) -> (ttl, records), as PowerDNS serves
CurrentKeys = Mapping[str, Mapping[int, str]]  # zone -> PowerDNS key id -> DNSKEY text


@dataclass(frozen=True)
class KeyChanges:
    """A zone's signing keys to import (ours) and to delete (PowerDNS key ids)."""

    import_keys: tuple[DnssecKeySpec, ...] = ()
    delete_keys: tuple[int, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.import_keys or self.delete_keys)


@dataclass(frozen=True)
class ZonePlan:
    create: tuple[ZoneSpec, ...] = ()  # new zones, every RRset in the create call
    delete: tuple[str, ...] = ()  # zones PowerDNS serves that the snapshot no longer has
    patch: Mapping[str, tuple[RRSetChange, ...]] = field(default_factory=dict)
    keys: Mapping[str, KeyChanges] = field(default_factory=dict)  # created zones included
    unchanged: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.create or self.delete or self.patch or self.keys)

    @property
    def changed(self) -> tuple[str, ...]:
        """Every zone this plan touches, sorted."""
        names = {zone_name(z.name) for z in self.create}
        names.update(self.delete, self.patch, self.keys)
        return tuple(sorted(names))


# ---------------------------------------------------------------------- canonical forms


def zone_name(name: str) -> str:
    """A name as PowerDNS spells it: lower-case, absolute (trailing dot). A name already
    so spelled (as the control plane sends zone names) is returned as it is, not copied:
    the node keeps maps of 10,000 zones by this name."""
    if name.endswith(".") and name.islower() and name.strip() is name:
        return name
    name = name.strip().lower()
    return name if name.endswith(".") else f"{name}."


def _squash(text: str) -> str:
    return " ".join(text.split())


# Names inside these types are compared without regard to case (the DNS does, and PowerDNS
# may keep or lower the case we sent); dnspython lower-cases them in its digestable form.
# The cache holds what many zones share (NS names, proxied LUA records); most records are
# one zone's own (SOA, tokens), so it stays small: at 1 << 18 entries it held ~6 MiB of the
# agent's heap after a 10,000-zone load, and could have grown to ~40 MiB.
@functools.lru_cache(maxsize=1 << 12)
def canonical_record(rtype: str, content: str) -> str:
    """A form of ``content`` equal for every spelling PowerDNS treats as the same record."""
    rtype = rtype.upper()
    if rtype == "LUA":
        kind, _, code = content.strip().partition(" ")
        return f"LUA {kind.upper()} {code.strip()}"
    if rtype == "ALIAS":
        return zone_name(content)
    try:
        rdtype = dns.rdatatype.from_text(rtype)
        rdata = dns.rdata.from_text(dns.rdataclass.IN, rdtype, content, origin=dns.name.root)
        return f"{rtype} {rdata.to_digestable(dns.name.root).hex()}"
    except (dns.exception.DNSException, ValueError):
        return f"{rtype} ? {_squash(content)}"  # PowerDNS will judge it


def _canonical_set(rtype: str, records: Iterable[str]) -> frozenset[str]:
    return frozenset(canonical_record(rtype, r) for r in records)


def _unique(rtype: str, records: Iterable[str]) -> tuple[str, ...]:
    """The records without duplicates (PowerDNS refuses an RRset holding one twice)."""
    seen: dict[str, str] = {}
    for record in records:
        seen.setdefault(canonical_record(rtype, record), record)
    return tuple(sorted(seen.values()))


@functools.lru_cache(maxsize=1 << 14)
def _our_dnskey(private_key: str, flags: int) -> str:
    # Imported here: dnspython's DNSSEC module loads the cryptography library, 8 MiB of an
    # agent's memory (its native code) that a node without signed zones never needs.
    from edgeplane.protocol.dnssec import dnskey_text

    return _dnskey_canonical(dnskey_text(private_key, flags))


def _dnskey_canonical(text: str) -> str:
    parts = text.split()
    return " ".join([*parts[:3], "".join(parts[3:])])


def desired_rrsets(zone: ZoneSpec) -> dict[RRSetKey, RRSetValue]:
    """The zone's RRsets keyed like PowerDNS's (lower-case names, upper-case types)."""
    out: dict[RRSetKey, RRSetValue] = {}
    for rrset in zone.rrsets:
        key = (zone_name(rrset.name), rrset.type.upper())
        if key in out:
            raise ValueError(f"zone {zone.name}: RRset {key[0]} {key[1]} appears twice")
        out[key] = (rrset.ttl, _unique(key[1], rrset.records))
    return out


def rrset_changes(current: Rrsets, desired: Rrsets) -> tuple[RRSetChange, ...]:
    """REPLACE for every RRset that is new or differs, DELETE for every one gone."""
    changes: list[RRSetChange] = []
    for (name, rtype), (ttl, records) in sorted(desired.items()):
        now = current.get((name, rtype))
        if (
            now is not None
            and now[0] == ttl
            and _canonical_set(rtype, now[1]) == _canonical_set(rtype, records)
        ):
            continue
        changes.append(RRSetChange(name, rtype, "REPLACE", ttl, records))
    for name, rtype in sorted(set(current) - set(desired)):
        changes.append(RRSetChange(name, rtype, "DELETE"))
    return tuple(changes)


def revert_changes(changes: Iterable[RRSetChange], previous: Rrsets) -> tuple[RRSetChange, ...]:
    """The PATCH that undoes ``changes`` on a zone whose RRsets were ``previous``."""
    out: list[RRSetChange] = []
    for change in changes:
        before = previous.get((change.name, change.type))
        if before is None:
            if change.changetype == "REPLACE":
                out.append(RRSetChange(change.name, change.type, "DELETE"))
        else:
            out.append(RRSetChange(change.name, change.type, "REPLACE", before[0], before[1]))
    return tuple(out)


def key_changes(zone: ZoneSpec, current: Mapping[int, str]) -> KeyChanges:
    """Import the zone's keys PowerDNS lacks, delete those it has and the zone does not."""
    wanted = zone.dnssec_keys if zone.dnssec else ()
    by_dnskey: dict[str, DnssecKeySpec] = {}
    if wanted:
        from edgeplane.protocol.dnssec import DnssecKeyError  # see _our_dnskey

        for key in wanted:
            try:
                by_dnskey[_our_dnskey(key.private_key, key.flags)] = key
            except DnssecKeyError as exc:
                raise ValueError(f"zone {zone.name}: key {key.id}: {exc}") from exc
    have = {_dnskey_canonical(text): key_id for key_id, text in current.items()}
    return KeyChanges(
        import_keys=tuple(k for text, k in by_dnskey.items() if text not in have),
        delete_keys=tuple(sorted(i for text, i in have.items() if text not in by_dnskey)),
    )


def rrset_specs(zone: ZoneSpec) -> tuple[RRSetSpec, ...]:
    """The zone's RRsets for the create call, names and types normalised."""
    return tuple(
        RRSetSpec(name=key[0], type=key[1], ttl=ttl, records=records)
        for key, (ttl, records) in sorted(desired_rrsets(zone).items())
    )


def plan(
    current: Current,
    desired: tuple[ZoneSpec, ...],
    current_keys: CurrentKeys | None = None,
) -> ZonePlan:
    """The changes that make PowerDNS serve exactly ``desired``.

    ``current`` holds what PowerDNS serves now, zone by zone; ``current_keys`` the DNSKEYs of
    its signing keys (a zone missing there has none)."""
    current_keys = current_keys or {}
    wanted: dict[str, ZoneSpec] = {}
    for zone in desired:
        name = zone_name(zone.name)
        if name in wanted:
            raise ValueError(f"zone {name} appears twice")
        wanted[name] = zone
    current_names = {zone_name(n): n for n in current}

    create: list[ZoneSpec] = []
    patch: dict[str, tuple[RRSetChange, ...]] = {}
    keys: dict[str, KeyChanges] = {}
    unchanged: list[str] = []
    for name, zone in sorted(wanted.items()):
        if name not in current_names:
            create.append(zone)
            changes = key_changes(zone, {})
            if changes:
                keys[name] = changes
            continue
        served = current[current_names[name]]
        rr = rrset_changes(served, desired_rrsets(zone))
        kc = key_changes(zone, current_keys.get(current_names[name], {}))
        if rr:
            patch[name] = rr
        if kc:
            keys[name] = kc
        if not rr and not kc:
            unchanged.append(name)
    delete = tuple(sorted(n for n in current_names if n not in wanted))
    return ZonePlan(
        create=tuple(create),
        delete=delete,
        patch=patch,
        keys=keys,
        unchanged=tuple(unchanged),
    )
