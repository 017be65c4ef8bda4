"""The DNS planner: pure, compares records in PowerDNS's canonical form, plans only differences."""

from __future__ import annotations

from typing import Any

import pytest

from edgeplane.node.powerdns.api import RRSetChange
from edgeplane.node.powerdns.plan import (
    KeyChanges,
    canonical_record,
    desired_rrsets,
    plan,
    revert_changes,
    rrset_changes,
    zone_name,
)
from edgeplane.protocol import dnssec
from edgeplane.protocol.config import DnssecKeySpec, RRSetSpec, ZoneSpec

Z = "example.com."


def zone(serial: int = 1, *extra: RRSetSpec, name: str = Z, **kw: Any) -> ZoneSpec:
    soa = f"ns1.{name} hostmaster.{name} {serial} 3600 600 604800 30"
    rrsets = (
        RRSetSpec(name=name, type="SOA", ttl=300, records=(soa,)),
        RRSetSpec(name=name, type="NS", ttl=300, records=(f"ns1.{name}",)),
        *extra,
    )
    return ZoneSpec(name=name, serial=serial, rrsets=rrsets, **kw)


def served(spec: ZoneSpec) -> dict[tuple[str, str], tuple[int, tuple[str, ...]]]:
    """What PowerDNS would return for ``spec`` (names lower-cased)."""
    return {(r.name.lower(), r.type): (r.ttl, tuple(reversed(r.records))) for r in spec.rrsets}


WWW = RRSetSpec(name=f"www.{Z}", type="A", ttl=60, records=("192.0.2.1", "192.0.2.2"))


def test_zone_names_are_lower_case_and_absolute() -> None:
    assert zone_name("Example.COM") == "example.com."
    assert zone_name("example.com.") == "example.com."


@pytest.mark.parametrize(
    ("rtype", "ours", "theirs"),
    [
        ("AAAA", "2001:DB8:0:0::1", "2001:db8::1"),
        ("CAA", "0 issue letsencrypt.org", '0 issue "letsencrypt.org"'),
        ("MX", "10 Mail.Example.com.", "10 mail.example.com."),
        ("CNAME", "WWW.example.com.", "www.example.com."),
        ("TXT", '"a"   "b"', '"a" "b"'),
        ("LUA", "a \"return '192.0.2.1'\"", "A \"return '192.0.2.1'\""),
        ("ALIAS", "Target.Example.net", "target.example.net."),
        ("SOA", "ns1.x. h.x. 1 3600 600 604800 30", "ns1.x.  h.x. 1 3600 600 604800 30"),
    ],
)
def test_canonical_forms_match(rtype: str, ours: str, theirs: str) -> None:
    assert canonical_record(rtype, ours) == canonical_record(rtype, theirs)


@pytest.mark.parametrize(
    ("rtype", "one", "other"),
    [
        ("TXT", '"Hello"', '"hello"'),  # TXT is case-sensitive
        ("TXT", '"ab"', '"a" "b"'),
        ("A", "192.0.2.1", "192.0.2.2"),
        ("SOA", "ns1.x. h.x. 1 3600 600 604800 30", "ns1.x. h.x. 2 3600 600 604800 30"),
        ("LUA", "A \"return '1'\"", "A \"return '2'\""),
        ("LUA", "A \"return '1'\"", "AAAA \"return '1'\""),
    ],
)
def test_canonical_forms_differ(rtype: str, one: str, other: str) -> None:
    assert canonical_record(rtype, one) != canonical_record(rtype, other)


def test_unparseable_content_is_compared_as_text() -> None:
    assert canonical_record("AAAA", "nope") == canonical_record("AAAA", " nope ")
    assert canonical_record("AAAA", "nope") != canonical_record("AAAA", "nope2")


def test_new_zones_are_created_with_their_keys() -> None:
    key = dnssec.generate_key()
    spec = zone(
        1,
        WWW,
        dnssec=True,
        dnssec_keys=(DnssecKeySpec(id=dnssec.key_id(key), private_key=key),),
    )
    p = plan({}, (spec,))
    assert p.create == (spec,)
    assert p.keys[Z].import_keys == spec.dnssec_keys
    assert p.changed == (Z,)
    assert not p.patch and not p.delete


def test_unchanged_zone_plans_nothing() -> None:
    spec = zone(1, WWW)
    p = plan({Z: served(spec)}, (spec,))
    assert p.empty
    assert p.unchanged == (Z,)
    assert p.changed == ()


def test_only_differing_rrsets_are_replaced() -> None:
    before = zone(1, WWW)
    www2 = RRSetSpec(name=f"www.{Z}", type="A", ttl=60, records=("192.0.2.9",))
    after = zone(2, www2)
    p = plan({Z: served(before)}, (after,))
    changes = p.patch[Z]
    assert [(c.name, c.type, c.changetype) for c in changes] == [
        (Z, "SOA", "REPLACE"),
        (f"www.{Z}", "A", "REPLACE"),
    ]
    assert changes[1].records == ("192.0.2.9",)


def test_ttl_change_replaces_and_missing_rrset_is_deleted() -> None:
    before = zone(1, WWW)
    slower = RRSetSpec(name=Z, type="NS", ttl=600, records=(f"ns1.{Z}",))
    after = ZoneSpec(name=Z, serial=1, rrsets=(before.rrsets[0], slower))
    changes = plan({Z: served(before)}, (after,)).patch[Z]
    assert changes == (
        RRSetChange(Z, "NS", "REPLACE", 600, (f"ns1.{Z}",)),
        RRSetChange(f"www.{Z}", "A", "DELETE"),
    )


def test_zones_not_wanted_are_deleted() -> None:
    a, b = zone(1, name="a.example."), zone(1, name="b.example.")
    p = plan({"a.example.": served(a), "b.example.": served(b)}, (a,))
    assert p.delete == ("b.example.",)
    assert p.unchanged == ("a.example.",)


def test_names_in_any_case_match_the_served_zone() -> None:
    spec = zone(1, RRSetSpec(name=f"WWW.{Z}", type="a", ttl=60, records=("192.0.2.1",)))
    current = {Z: {**served(zone(1)), (f"www.{Z}", "A"): (60, ("192.0.2.1",))}}
    upper = ZoneSpec(name="Example.COM.", serial=1, rrsets=spec.rrsets)
    assert plan(current, (upper,)).empty


def test_duplicate_records_are_sent_once() -> None:
    dup = RRSetSpec(name=f"www.{Z}", type="AAAA", ttl=60, records=("2001:db8::1", "2001:DB8::1"))
    assert desired_rrsets(zone(1, dup))[(f"www.{Z}", "AAAA")] == (
        60,
        ("2001:db8::1",),
    )  # the first spelling


def test_twice_the_same_zone_or_rrset_is_an_error() -> None:
    with pytest.raises(ValueError, match="twice"):
        plan({}, (zone(1), zone(2)))
    with pytest.raises(ValueError, match="twice"):
        desired_rrsets(zone(1, WWW, WWW))


def test_revert_changes_restores_previous_rrsets() -> None:
    previous = {(Z, "A"): (60, ("192.0.2.1",)), (f"old.{Z}", "A"): (60, ("192.0.2.5",))}
    forward = rrset_changes(
        previous, {(Z, "A"): (60, ("192.0.2.2",)), (f"new.{Z}", "A"): (60, ("192.0.2.3",))}
    )
    back = revert_changes(forward, previous)
    assert set(back) == {
        RRSetChange(Z, "A", "REPLACE", 60, ("192.0.2.1",)),
        RRSetChange(f"new.{Z}", "A", "DELETE"),
        RRSetChange(f"old.{Z}", "A", "REPLACE", 60, ("192.0.2.5",)),
    }


def _key() -> DnssecKeySpec:
    text = dnssec.generate_key()
    return DnssecKeySpec(id=dnssec.key_id(text), private_key=text)


def test_keys_are_imported_and_removed_to_match() -> None:
    keep, new, old = _key(), _key(), _key()
    spec = zone(1, dnssec=True, dnssec_keys=(keep, new))
    have = {
        1: dnssec.dnskey_text(keep.private_key),
        2: dnssec.dnskey_text(old.private_key),
        3: "257 3 13 " + dnssec.dnskey_text(old.private_key).split()[3][:10],  # a foreign key
    }
    p = plan({Z: served(spec)}, (spec,), {Z: have})
    assert p.keys[Z] == KeyChanges(import_keys=(new,), delete_keys=(2, 3))
    assert Z not in p.patch


def test_dnssec_off_removes_every_key_and_matching_keys_plan_nothing() -> None:
    key = _key()
    signed = zone(1, dnssec=True, dnssec_keys=(key,))
    have = {7: dnssec.dnskey_text(key.private_key)}
    assert plan({Z: served(signed)}, (signed,), {Z: have}).empty
    unsigned = zone(1, dnssec=False, dnssec_keys=(key,))
    assert plan({Z: served(signed)}, (unsigned,), {Z: have}).keys[Z].delete_keys == (7,)


def test_key_helpers_agree() -> None:
    text = dnssec.generate_key()
    assert text.startswith("Private-key-format: v1.2\nAlgorithm: 13 (ECDSAP256SHA256)\n")
    key = dnssec.dnskey(text)
    assert key.flags == 257 and key.algorithm == 13 and len(key.key) == 64
    (ds,) = dnssec.ds_records(Z, text)
    assert ds.split()[1:3] == ["13", "2"] and len(ds.split()[3]) == 64
    assert dnssec.key_id(text) == dnssec.key_id(text) and len(dnssec.key_id(text)) == 16
    with pytest.raises(dnssec.DnssecKeyError):
        dnssec.dnskey("Private-key-format: v1.2\nAlgorithm: 8 (RSASHA256)\n")


def test_a_broken_key_names_its_zone() -> None:
    bad = DnssecKeySpec(id="k1", private_key="Private-key-format: v1.2\nAlgorithm: 13\n")
    with pytest.raises(ValueError, match=r"zone example.com.: key k1: no valid PrivateKey"):
        plan({}, (zone(1, dnssec=True, dnssec_keys=(bad,)),))
