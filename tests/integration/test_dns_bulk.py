"""Many new zones into a running PowerDNS by SQL (``DnsEngine._create_by_sql``): served at once
(SOA and records, questions asked before they existed included), the rows the API writes,
signed zones through the API, a refused apply leaving nothing behind, and a node whose
PowerDNS comes back empty getting every zone again."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.flags
import pytest
from pdns import answers, query, rcode, running_pdns, zone_spec

from edgeplane.node.powerdns.bulk import sql_safe
from edgeplane.node.powerdns.engine import BULK_MIN, DnsEngine, soa_serial
from edgeplane.node.powerdns.process import PdnsProcess
from edgeplane.protocol import dnssec
from edgeplane.protocol.config import DnssecKeySpec, ZoneSpec

pytestmark = pytest.mark.integration

OLD = "old.example."
N = BULK_MIN + 10


@pytest.fixture
def pdns(tmp_path: Path) -> Iterator[PdnsProcess]:
    with running_pdns(tmp_path) as process:
        yield process


@pytest.fixture
def engine(pdns: PdnsProcess) -> Iterator[DnsEngine]:
    engine = DnsEngine(pdns)
    yield engine
    engine.stop()


def rich(i: int, serial: int = 1) -> ZoneSpec:
    name = f"new{i:03d}.example."
    return zone_spec(
        name,
        serial,
        {
            ("www", "A"): [f"192.0.2.{i % 250 + 1}"],
            ("@", "MX"): [f"10 mail.{name}"],
            ("_acme-challenge.deep", "TXT"): ['"token"'],  # an empty non-terminal
            ("sub", "NS"): ["ns.elsewhere.example."],  # a delegation with glue
            ("ns.sub", "A"): ["192.0.2.53"],
            ("geo", "LUA"): ["A \"'192.0.2.8'\""],
        },
    )


def old(serial: int = 1, www: str = "198.51.100.1") -> ZoneSpec:
    return zone_spec(OLD, serial, {("www", "A"): [www]})


def _key() -> DnssecKeySpec:
    text = dnssec.generate_key()
    return DnssecKeySpec(id=dnssec.key_id(text), private_key=text)


def _domains(process: PdnsProcess) -> set[str]:
    with contextlib.closing(sqlite3.connect(process.database)) as db:
        names = {r[0] for r in db.execute("SELECT name FROM domains")}
        orphans = db.execute(
            "SELECT COUNT(*) FROM records WHERE domain_id NOT IN (SELECT id FROM domains)"
        ).fetchone()[0]
    assert orphans == 0
    return names


def served(process: PdnsProcess, zone: ZoneSpec) -> bool:
    return soa_serial(process.dns_address, process.dns_port, zone.name) == zone.serial


def test_new_zones_in_bulk_are_served_at_once(engine: DnsEngine, pdns: PdnsProcess) -> None:
    assert engine.apply((old(),)).ok
    new = tuple(rich(i) for i in range(N))
    # asked before they exist: REFUSED, in PowerDNS's packet cache and dnsdist's
    for zone in new[::7]:
        assert rcode(pdns, f"www.{zone.name}") == "REFUSED"
    signed = zone_spec("signed.example.", 3, {("www", "A"): ["192.0.2.9"]}, keys=[_key()])
    result = engine.apply((old(), *new, signed))
    assert result.ok, result.error
    assert result.changed == tuple(sorted([*(z.name for z in new), signed.name]))
    assert all(served(pdns, z) for z in new)
    for i, zone in enumerate(new):
        assert answers(pdns, f"www.{zone.name}") == [f"192.0.2.{i % 250 + 1}"]
    z = new[3].name
    assert answers(pdns, z, "MX") == [f"10 mail.{z}"]
    assert answers(pdns, f"geo.{z}") == ["192.0.2.8"]
    assert rcode(pdns, f"deep.{z}", "A") == "NOERROR"  # an empty non-terminal: no data
    assert rcode(pdns, f"nothing.{z}", "A") == "NXDOMAIN"
    referral = query(pdns, f"host.sub.{z}", "A")
    assert not referral.flags & dns.flags.AA and referral.authority
    # the signed zone went through the API: signed at once
    assert answers(pdns, signed.name, "DNSKEY")
    assert answers(pdns, f"www.{OLD}") == ["198.51.100.1"]
    # what SQL wrote is what PowerDNS's API reads back: a fresh engine finds nothing to change
    again = DnsEngine(pdns)
    assert again.apply((old(), *new, signed)).changed == ()
    # and a later change of one of them is written by SQL too, with no API call
    calls: list[str] = []
    for method in ("get_rrsets", "patch_rrsets", "create_zone", "delete_zone"):
        real = getattr(again.api, method)
        setattr(again.api, method, lambda *a, _m=method, _r=real: calls.append(_m) or _r(*a))
    moved = (old(), *new[:-1], rich(N - 1, serial=2), signed)
    result = again.apply(moved)
    assert result.ok and result.changed == (new[-1].name,)
    assert served(pdns, rich(N - 1, serial=2)) and calls == []


def test_one_zone_is_created_changed_and_deleted_by_sql_without_the_api(
    engine: DnsEngine, pdns: PdnsProcess
) -> None:
    """One zone at a time under the running server (a domain added, edited, removed): no API
    call (each costs hundreds of ms beside a big geoip backend), answers cached before each
    step (PowerDNS's packet cache, dnsdist's) never outlive it."""
    assert engine.apply((old(),)).ok
    calls: list[str] = []
    api = engine.api
    for method in ("get_rrsets", "patch_rrsets", "create_zone", "delete_zone", "list_zones"):
        real = getattr(api, method)
        setattr(api, method, lambda *a, _m=method, _r=real: calls.append(_m) or _r(*a))
    one = rich(1)
    assert rcode(pdns, f"www.{one.name}") == "REFUSED"  # asked before it exists: cached
    result = engine.apply((old(), one))
    assert result.ok and result.changed == (one.name,)
    assert answers(pdns, f"www.{one.name}") == ["192.0.2.2"]
    moved = rich(1, serial=2)
    moved = moved.model_copy(
        update={"rrsets": tuple(r for r in moved.rrsets if r.type != "MX")}
    )
    assert answers(pdns, one.name, "MX") == [f"10 mail.{one.name}"]  # cached
    assert engine.apply((old(), moved)).ok
    assert rcode(pdns, one.name, "MX") == "NOERROR" and answers(pdns, one.name, "MX") == []
    assert served(pdns, moved)
    assert engine.apply((old(),)).changed == (one.name,)
    assert rcode(pdns, f"www.{one.name}") == "REFUSED"
    assert _domains(pdns) == {OLD.rstrip(".")}
    assert calls == []
    # what SQL wrote is what the API reads back: a fresh engine finds nothing to change
    assert DnsEngine(pdns).apply((old(), moved)).changed == (moved.name,)
    assert DnsEngine(pdns).apply((old(), moved)).changed == ()


def test_a_refused_bulk_leaves_nothing_behind(engine: DnsEngine, pdns: PdnsProcess) -> None:
    assert engine.apply((old(),)).ok
    new = tuple(rich(i) for i in range(N))
    # a zone PowerDNS refuses among them (SQL would take it: sql_safe sends it to the API)
    broken = zone_spec("broken.example.", 1, {("www", "AAAA"): ["not-an-address"]})
    assert not sql_safe(broken) and all(sql_safe(z) for z in new)
    result = engine.apply((old(), *new, broken))
    assert not result.ok
    assert result.error is not None and "broken.example." in result.error
    assert _domains(pdns) == {OLD.rstrip(".")}
    assert {z.name for z in engine.api.list_zones()} == {OLD}
    assert all(rcode(pdns, f"www.{z.name}") == "REFUSED" for z in new[::5])
    # a refusal after the bulk was written (a change of an existing zone) undoes it too
    bad_old = zone_spec(OLD, 2, {("www", "A"): ["198.51.100.2"], ("www", "CNAME"): ["x."]})
    result = engine.apply((bad_old, *new))
    assert not result.ok and result.error is not None and OLD in result.error
    assert _domains(pdns) == {OLD.rstrip(".")}
    assert all(rcode(pdns, f"www.{z.name}") == "REFUSED" for z in new[::5])
    assert answers(pdns, f"www.{OLD}") == ["198.51.100.1"]
    # the next good apply works from the true state
    result = engine.apply((old(2, "198.51.100.3"), *new))
    assert result.ok, result.error
    assert all(served(pdns, z) for z in new)
    assert answers(pdns, f"www.{OLD}") == ["198.51.100.3"]


def test_a_node_restarted_with_an_empty_powerdns_gets_every_zone(tmp_path: Path) -> None:
    new = tuple(rich(i) for i in range(N))
    signed = zone_spec("signed.example.", 3, {("www", "A"): ["192.0.2.9"]}, keys=[_key()])
    zones: tuple[Any, ...] = (old(), *new, signed)
    with running_pdns(tmp_path) as pdns:
        engine = DnsEngine(pdns)
        assert engine.apply(zones).ok
        # stopped, its database lost, started again by the same engine (an agent restarting
        # its PowerDNS with an empty state directory): every zone comes back
        pdns.stop()
        pdns.database.unlink()
        result = engine.apply(zones)
        assert result.ok, result.error
        assert all(served(pdns, z) for z in zones)
        assert answers(pdns, signed.name, "DNSKEY")
        # emptied under a running server: the engine finds out from its zone list when its
        # trust is gone (a refused apply, a restart) and creates them all again
        pdns.stop()
        pdns.database.unlink()
        pdns.start()
        result = engine.apply(zones)
        assert result.ok, result.error
        assert all(served(pdns, z) for z in zones)
        engine.stop()
