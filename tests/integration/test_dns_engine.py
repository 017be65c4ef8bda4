"""The DNS engine against a real PowerDNS: zones served over UDP and TCP, changes, rollback,
deletion, GeoDNS through LUA and ECS, DNSSEC validated with dnspython, restarts."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.dnssec
import dns.flags
import dns.name
import dns.rdatatype
import dns.rrset
import pytest
from pdns import answers, query, rcode, rrset_of, running_pdns, zone_spec

from edgeplane.node.powerdns.api import PdnsApi, PdnsApiError
from edgeplane.node.powerdns.engine import DnsEngine, soa_serial
from edgeplane.node.powerdns.process import PdnsError, PdnsProcess
from edgeplane.protocol import dnssec
from edgeplane.protocol.config import DnssecKeySpec

pytestmark = pytest.mark.integration

A = "a.example."
B = "b.example."


@pytest.fixture
def pdns(tmp_path: Path) -> Iterator[PdnsProcess]:
    with running_pdns(tmp_path) as process:
        yield process


@pytest.fixture
def engine(pdns: PdnsProcess) -> Iterator[DnsEngine]:
    engine = DnsEngine(pdns)
    yield engine
    engine.stop()


def zone_a(serial: int = 1, www: str = "192.0.2.1") -> Any:
    return zone_spec(
        A,
        serial,
        {
            ("www", "A"): [www],
            ("www", "AAAA"): ["2001:DB8:0:0::1"],  # PowerDNS serves 2001:db8::1
            ("@", "TXT"): ['"v=spf1 -all"', '"hello" "world"'],
            ("@", "MX"): ["10 Mail.A.Example."],
            ("@", "CAA"): ['0 issue "letsencrypt.org"'],
            ("Mail", "A"): ["192.0.2.25"],
            ("alias", "CNAME"): [f"www.{A}"],
        },
    )


def zone_b(serial: int = 7) -> Any:
    return zone_spec(B, serial, {("www", "A"): ["198.51.100.1"]})


class Calls:
    """Counts the calls the engine makes on its API client, by method."""

    def __init__(self, api: PdnsApi) -> None:
        self.counts: dict[str, int] = {}
        for name in dir(PdnsApi):
            if not name.startswith("_") and callable(getattr(api, name)) and name != "close":
                setattr(api, name, self._wrap(name, getattr(api, name)))

    def _wrap(self, name: str, fn: Any) -> Any:
        def counted(*args: Any, **kw: Any) -> Any:
            self.counts[name] = self.counts.get(name, 0) + 1
            return fn(*args, **kw)

        return counted

    def writes(self) -> dict[str, int]:
        reads = {"list_zones", "get_zone", "get_rrsets", "list_cryptokeys", "get_cryptokey"}
        return {k: v for k, v in self.counts.items() if k not in reads}


def test_apply_serves_zones_over_udp_and_tcp(engine: DnsEngine, pdns: PdnsProcess) -> None:
    result = engine.apply((zone_a(), zone_b()))
    assert result.ok, result.error
    assert result.serials == {A: 1, B: 7}
    assert set(result.changed) == {A, B}
    for tcp in (False, True):
        assert answers(pdns, f"www.{A}", "A", tcp=tcp) == ["192.0.2.1"]
        assert answers(pdns, f"www.{A}", "AAAA", tcp=tcp) == ["2001:db8::1"]
        assert answers(pdns, A, "TXT", tcp=tcp) == ['"hello" "world"', '"v=spf1 -all"']
        assert answers(pdns, A, "CAA", tcp=tcp) == ['0 issue "letsencrypt.org"']
        assert answers(pdns, f"www.{B}", "A", tcp=tcp) == ["198.51.100.1"]
    assert soa_serial(pdns.dns_address, pdns.dns_port, A) == 1
    assert engine.served_serials() == {A: 1, B: 7}
    assert engine.stats()["dns_zones"] == 2
    assert rcode(pdns, "www.elsewhere.example.") == "REFUSED"


def test_unchanged_zones_plan_nothing_even_read_afresh(
    engine: DnsEngine, pdns: PdnsProcess
) -> None:
    """PowerDNS's canonical forms (AAAA, CAA, name case) compare equal to what we sent."""
    assert engine.apply((zone_a(), zone_b())).ok
    fresh = DnsEngine(pdns)  # no memory of the previous apply: reads and compares every zone
    calls = Calls(fresh.api)
    result = fresh.apply((zone_a(), zone_b()))
    assert result.ok, result.error
    assert result.changed == ()
    assert calls.writes() == {}
    assert calls.counts["get_rrsets"] == 2


def test_change_record_new_answer_new_serial_others_untouched(
    engine: DnsEngine, pdns: PdnsProcess
) -> None:
    assert engine.apply((zone_a(), zone_b())).ok
    calls = Calls(engine.api)
    started = time.monotonic()
    result = engine.apply((zone_a(2, www="192.0.2.99"), zone_b()))
    assert result.ok, result.error
    assert answers(pdns, f"www.{A}") == ["192.0.2.99"]
    served_after = time.monotonic() - started
    assert result.changed == (A,)
    assert result.serials == {A: 2, B: 7}
    assert soa_serial(pdns.dns_address, pdns.dns_port, A) == 2
    # no API call at all: the changed (unsigned) zone's rows replaced by SQL, zone B not even
    # read, and no zone list (the PowerDNS this engine applied to still runs: what it serves
    # is what was applied)
    assert calls.counts == {}
    assert answers(pdns, f"www.{B}") == ["198.51.100.1"]
    print(f"apply of a changed record until served: {served_after * 1000:.1f} ms")


def test_rrset_removed_and_ttl_changed(engine: DnsEngine, pdns: PdnsProcess) -> None:
    assert engine.apply((zone_b(),)).ok
    changed = zone_spec(B, 8, {("www", "A"): ["198.51.100.1"]}, ttl=120)
    assert engine.apply((changed,)).ok
    assert query(pdns, f"www.{B}").answer[0].ttl == 120
    bare = zone_spec(B, 9)
    assert engine.apply((bare,)).ok
    assert rcode(pdns, f"www.{B}") == "NXDOMAIN"


def test_refused_change_leaves_every_zone_as_before(engine: DnsEngine, pdns: PdnsProcess) -> None:
    assert engine.apply((zone_a(), zone_b())).ok
    bad_b = zone_spec(B, 8, {("www", "A"): ["198.51.100.1"], ("www", "CNAME"): [f"x.{B}"]})
    new_c = zone_spec("c.example.", 1, {("www", "A"): ["203.0.113.1"]})
    # A (patched first) and C (created first) are rolled back when B is refused
    result = engine.apply((zone_a(2, www="192.0.2.99"), bad_b, new_c))
    assert not result.ok
    assert result.error is not None and B in result.error
    assert "CNAME" in result.error
    assert answers(pdns, f"www.{A}") == ["192.0.2.1"]
    assert soa_serial(pdns.dns_address, pdns.dns_port, A) == 1
    assert soa_serial(pdns.dns_address, pdns.dns_port, B) == 7
    assert rcode(pdns, "www.c.example.") == "REFUSED"
    assert {z.name for z in engine.api.list_zones()} == {A, B}
    # bad content in a zone to create
    broken = zone_spec("d.example.", 1, {("www", "AAAA"): ["not-an-address"]})
    result = engine.apply((zone_a(), zone_b(), broken))
    assert not result.ok
    assert result.error is not None and "d.example." in result.error
    assert {z.name for z in engine.api.list_zones()} == {A, B}
    # and the next good apply works from the true state
    result = engine.apply((zone_a(3, www="192.0.2.3"), zone_b()))
    assert result.ok, result.error
    assert answers(pdns, f"www.{A}") == ["192.0.2.3"]


def test_after_a_refusal_only_zones_not_as_applied_are_read(
    engine: DnsEngine, pdns: PdnsProcess
) -> None:
    """A refused apply (rolled back) costs the next apply one zone list, not a read of every
    zone: each listed with the serial this engine applied is as applied (10,000 zones read
    through the API took tens of minutes beside a big geoip backend)."""
    c = zone_spec("c.example.", 1, {("www", "A"): ["203.0.113.1"]})
    assert engine.apply((zone_a(), zone_b(), c)).ok
    bad_b = zone_spec(B, 8, {("www", "A"): ["198.51.100.1"], ("www", "CNAME"): [f"x.{B}"]})
    assert not engine.apply((zone_a(2, www="192.0.2.99"), bad_b, c)).ok
    calls = Calls(engine.api)
    result = engine.apply((zone_a(2, www="192.0.2.99"), zone_b(), c))
    assert result.ok, result.error
    assert result.changed == (A,)
    # listed once; A (changed) read and patched; B and C, listed with the serials applied, not
    # read
    assert calls.counts == {"list_zones": 1, "get_rrsets": 1, "get_zone": 1, "patch_rrsets": 1}
    assert answers(pdns, f"www.{A}") == ["192.0.2.99"]


def test_a_zone_applied_but_not_seen_served_in_time_is_checked_again(
    engine: DnsEngine, pdns: PdnsProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A zone written whose serial was not seen in time (its server busy) is not written
    again next time (it exists: a second create was refused), it is read and checked."""
    import edgeplane.node.powerdns.engine as engine_module

    assert engine.apply((zone_a(),)).ok
    real = engine_module.soa_serial

    def late(address: str, port: int, zone: str, timeout: float = 1.0) -> int | None:
        return None if zone == B else real(address, port, zone, timeout)

    monkeypatch.setattr(engine_module, "soa_serial", late)
    monkeypatch.setattr(engine_module, "SERIAL_DEADLINE", 0.3)
    result = engine.apply((zone_a(), zone_b()))
    assert not result.ok and result.error is not None and "applied, but" in result.error
    monkeypatch.undo()
    result = engine.apply((zone_a(), zone_b()))
    assert result.ok, result.error
    assert result.serials == {A: 1, B: 7}
    assert answers(pdns, f"www.{B}") == ["198.51.100.1"]


def test_zone_deletion(engine: DnsEngine, pdns: PdnsProcess) -> None:
    assert engine.apply((zone_a(), zone_b())).ok
    result = engine.apply((zone_a(),))
    assert result.ok, result.error
    assert result.changed == (B,)
    assert rcode(pdns, f"www.{B}") == "REFUSED"
    assert [z.name for z in engine.api.list_zones()] == [A]
    assert engine.apply(()).ok
    assert engine.api.list_zones() == []


GEO = "geo.example."
# West of 30°W (the Americas) gets one address, everything else (Europe, unknown) another.
LUA_A = (
    "A \";local ll = latlon() local lon = tonumber(ll:match(' (%S+)$')) "
    "if lon < -30 then return '192.0.2.10' else return '192.0.2.20' end\""
)


def test_lua_records_see_the_client_subnet(engine: DnsEngine, pdns: PdnsProcess) -> None:
    zone = zone_spec(
        GEO,
        1,
        {("www", "LUA"): [LUA_A], ("where", "LUA"): ['TXT "latlon()"']},
    )
    result = engine.apply((zone,))
    assert result.ok, result.error
    london, seattle, frankfurt_v6 = "81.2.69.0", "216.160.83.0", "2a02:8070::"
    assert answers(pdns, f"www.{GEO}", ecs=london) == ["192.0.2.20"]
    assert answers(pdns, f"www.{GEO}", ecs=seattle) == ["192.0.2.10"]
    assert answers(pdns, f"www.{GEO}", ecs=frankfurt_v6) == ["192.0.2.20"]
    assert answers(pdns, f"www.{GEO}", ecs=seattle, tcp=True) == ["192.0.2.10"]
    # what the GeoDNS code relies on: latlon() of an address the database does not know
    assert answers(pdns, f"where.{GEO}", "TXT") == ['"0.000000 0.000000"']  # 127.0.0.1
    assert answers(pdns, f"where.{GEO}", "TXT", ecs="10.1.2.0") == ['"0.000000 0.000000"']
    assert answers(pdns, f"where.{GEO}", "TXT", ecs=london) == ['"51.533300 -0.233300"']
    # an unchanged LUA zone plans nothing (PowerDNS keeps the code as we sent it)
    fresh = DnsEngine(pdns)
    again = fresh.apply((zone,))
    assert again.ok and again.changed == (), again


def _validate(pdns: PdnsProcess, zone: str, name: str, rtype: str, ds: str) -> None:
    keys_msg = query(pdns, zone, "DNSKEY", dnssec=True)
    dnskeys = rrset_of(keys_msg, "DNSKEY")
    origin = dns.name.from_text(zone)
    # the DNSKEY set hangs off the DS we give the registrar ...
    assert any(dns.dnssec.make_ds(origin, k, "SHA256").to_text() == ds for k in dnskeys)
    dns.dnssec.validate(dnskeys, rrset_of(keys_msg, "RRSIG", "DNSKEY"), {origin: dnskeys})
    # ... and signs the answer
    msg = query(pdns, name, rtype, dnssec=True, tcp=True)
    rrset = rrset_of(msg, rtype)
    dns.dnssec.validate(rrset, rrset_of(msg, "RRSIG", rtype), {origin: dnskeys})


def _key() -> DnssecKeySpec:
    text = dnssec.generate_key()
    return DnssecKeySpec(id=dnssec.key_id(text), private_key=text)


def test_dnssec_signed_answers_validate_against_our_ds(
    engine: DnsEngine, pdns: PdnsProcess
) -> None:
    Z = "signed.example."
    key = _key()
    ds = dnssec.ds_records(Z, key.private_key)[0]
    zone = zone_spec(Z, 1, {("www", "A"): ["192.0.2.1"]}, keys=[key])
    result = engine.apply((zone,))
    assert result.ok, result.error
    served = answers(pdns, Z, "DNSKEY")
    assert served == [dnssec.dnskey(key.private_key).to_text()]
    _validate(pdns, Z, f"www.{Z}", "A", ds)
    # NXDOMAIN is proven by an NSEC chain (the zone was rectified)
    nx = query(pdns, f"nothing.{Z}", dnssec=True)
    nsec = [r for r in nx.authority if r.rdtype == dns.rdatatype.NSEC]
    assert nsec and all(str(r.name) != str(r[0].next) for r in nsec), nx

    # a record change stays signed; an unchanged signed zone plans nothing
    zone2 = zone_spec(Z, 2, {("www", "A"): ["192.0.2.2"]}, keys=[key])
    assert engine.apply((zone2,)).ok
    _validate(pdns, Z, f"www.{Z}", "A", ds)
    again = DnsEngine(pdns).apply((zone2,))
    assert again.ok and again.changed == (), again

    # key rollover: exactly the new key serves
    new = _key()
    zone3 = zone_spec(Z, 3, {("www", "A"): ["192.0.2.2"]}, keys=[new])
    assert engine.apply((zone3,)).ok
    assert answers(pdns, Z, "DNSKEY") == [dnssec.dnskey(new.private_key).to_text()]
    _validate(pdns, Z, f"www.{Z}", "A", dnssec.ds_records(Z, new.private_key)[0])

    # DNSSEC off: keys gone, answers unsigned
    zone4 = zone_spec(Z, 4, {("www", "A"): ["192.0.2.2"]}, keys=[new], dnssec=False)
    assert engine.apply((zone4,)).ok
    assert answers(pdns, Z, "DNSKEY") == []
    assert all(r.rdtype != dns.rdatatype.RRSIG for r in query(pdns, Z, dnssec=True).answer)
    assert engine.api.list_cryptokeys(Z) == []


def test_restart_keeps_serving(tmp_path: Path) -> None:
    with running_pdns(tmp_path) as pdns:
        engine = DnsEngine(pdns)
        assert engine.apply((zone_a(), zone_b())).ok
        pdns.stop()
        assert not pdns.running()
        pdns.start()
        assert answers(pdns, f"www.{A}") == ["192.0.2.1"]
        pid = pdns.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while pdns.running() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert engine.ensure_running() is True
        assert engine.ensure_running() is False
        assert answers(pdns, f"www.{B}") == ["198.51.100.1"]
        result = engine.apply((zone_a(2, www="192.0.2.2"), zone_b()))
        assert result.ok, result.error
        assert answers(pdns, f"www.{A}") == ["192.0.2.2"]


def test_several_addresses_and_a_second_server(tmp_path: Path) -> None:
    """Two servers side by side (the second in the role of another DNS provider), one on IPv6."""
    with (
        running_pdns(tmp_path, "one") as one,
        running_pdns(tmp_path, "two", local_addresses=("127.0.0.1", "::1")) as two,
    ):
        assert one.dns_port != two.dns_port
        assert DnsEngine(two).apply((zone_b(),)).ok
        assert answers(two, f"www.{B}") == ["198.51.100.1"]
        assert soa_serial("::1", two.dns_port, B) == 7
        assert rcode(one, f"www.{B}") == "REFUSED"


def test_removal_refused_late_restores_deleted_zones(
    engine: DnsEngine, pdns: PdnsProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refusal after zones were deleted (the last step) recreates them, keys included: the
    unsigned zone C deleted by SQL first, then the signed zone B's deletion (through the API)
    refused."""
    key = _key()
    signed_b = zone_spec(B, 7, {("www", "A"): ["198.51.100.1"]}, keys=[key])
    c = zone_spec("c.example.", 1, {("www", "A"): ["203.0.113.1"]})
    assert engine.apply((zone_a(), signed_b, c)).ok
    api = engine.api
    real_delete = api.delete_zone

    def delete_zone(zone: str) -> None:
        if zone == B:
            raise PdnsApiError("refused for the test", status=422, zone=zone)
        real_delete(zone)

    monkeypatch.setattr(api, "delete_zone", delete_zone)
    asked = answers(pdns, "www.c.example.")  # cached before the apply
    result = engine.apply((zone_a(2, www="192.0.2.99"),))
    assert not result.ok
    assert result.error == f"{B}: refused for the test"
    assert answers(pdns, f"www.{A}") == ["192.0.2.1"]
    assert answers(pdns, "www.c.example.") == asked == ["203.0.113.1"]
    assert soa_serial(pdns.dns_address, pdns.dns_port, "c.example.") == 1
    assert answers(pdns, f"www.{B}") == ["198.51.100.1"]
    assert answers(pdns, B, "DNSKEY") == [dnssec.dnskey(key.private_key).to_text()]
    _validate(pdns, B, f"www.{B}", "A", dnssec.ds_records(B, key.private_key)[0])
    assert soa_serial(pdns.dns_address, pdns.dns_port, A) == 1
    monkeypatch.undo()
    assert engine.apply((zone_a(2, www="192.0.2.99"),)).ok
    assert [z.name for z in engine.api.list_zones()] == [A]


def test_start_failures_are_explained_and_stale_servers_replaced(tmp_path: Path) -> None:
    with running_pdns(tmp_path, "one") as one:
        clash = PdnsProcess(tmp_path / "two", dns_port=one.dns_port)
        with pytest.raises(PdnsError, match="Address already in use"):
            clash.start(timeout=10)
        assert not clash.running()
        # an agent that restarts finds the server of its directory still running: replaced
        again = PdnsProcess(tmp_path / "one", dns_port=one.dns_port, api_key="k")
        again.start()
        try:
            assert again.running() and not one.running()
            assert again.api_key == "k"
        finally:
            again.stop()
    with pytest.raises(PdnsError, match="does not exist"):
        PdnsProcess(tmp_path / "three", geoip_database=tmp_path / "none.mmdb").start()


def test_zones_by_reference_load_and_apply_only_the_changed_zone(
    engine: DnsEngine, pdns: PdnsProcess
) -> None:
    """``apply_refs``: a zone whose hash did not change is not loaded, read or patched."""
    from edgeplane.protocol.config import ZoneSpec, canonical_body, object_hash

    store: dict[str, ZoneSpec] = {}
    loaded: list[str] = []

    def ref(zone: ZoneSpec) -> str:
        digest = object_hash(canonical_body(zone.model_dump(mode="json")))
        store[digest] = zone
        return digest

    def load(digest: str) -> ZoneSpec:
        loaded.append(store[digest].name)
        return store[digest]

    c = "c.example."
    zone_c = zone_spec(c, 3, {("www", "A"): ["192.0.2.3"]})
    zones = {A: ref(zone_a()), B: ref(zone_b()), c: ref(zone_c)}
    first = engine.apply_refs(zones, load)
    assert first.ok, first.error
    assert sorted(loaded) == [A, B, c] and first.changed == (A, B, c)
    loaded.clear()
    calls = Calls(engine.api)
    again = engine.apply_refs(dict(zones), load)
    assert again.ok and again.changed == () and loaded == [] and calls.counts == {}
    assert again.serials == {A: 1, B: 7, c: 3}

    changed = {**zones, A: ref(zone_a(2, www="192.0.2.77"))}
    result = engine.apply_refs(changed, load)
    assert result.ok, result.error
    assert loaded == [A] and result.changed == (A,)
    assert calls.counts == {}  # written by SQL, neither read nor patched through the API
    assert answers(pdns, f"www.{A}") == ["192.0.2.77"]
    assert result.serials == {A: 2, B: 7, c: 3}

    # Among many zones, one added (spelled in capitals) and one removed: those two alone are
    # looked at (the names of the last apply's zones are not normalised again), both served.
    many = {f"m{i}.example.": ref(zone_spec(f"m{i}.example.", 10 + i, {("www", "A"): [
        f"192.0.2.{10 + i}"]})) for i in range(6)}  # fmt: skip
    grown = {**changed, **many}
    assert engine.apply_refs(grown, load).ok
    loaded.clear()
    swapped = {k: v for k, v in grown.items() if k != "m0.example."}
    swapped["N1.Example."] = ref(zone_spec("n1.example.", 5, {("www", "A"): ["192.0.2.99"]}))
    moved = engine.apply_refs(swapped, load)
    assert moved.ok, moved.error
    assert loaded == ["n1.example."] and moved.changed == ("m0.example.", "n1.example.")
    assert calls.writes() == {}
    assert answers(pdns, "www.n1.example.") == ["192.0.2.99"]
    assert rcode(pdns, "www.m0.example.") == "REFUSED"
    assert moved.serials == {A: 2, B: 7, c: 3, "n1.example.": 5} | {
        f"m{i}.example.": 10 + i for i in range(1, 6)
    }

    # PowerDNS restarted (its database kept): listed again, checked by serial, nothing loaded.
    pdns.stop()
    pdns.start()
    loaded.clear()
    after = engine.apply_refs(swapped, load)
    assert after.ok and after.changed == () and loaded == []
    assert answers(pdns, f"www.{c}") == ["192.0.2.3"]


def _rich_zone(i: int) -> Any:
    name = f"bulk{i:03d}.example."
    return zone_spec(
        name,
        100 + i,
        {
            ("www", "A"): [f"192.0.2.{i % 250 + 1}"],
            ("www", "AAAA"): ["2001:DB8::1"],
            ("@", "MX"): [f"10 mail.{name}", "20 Backup.Example.Net."],
            ("_sip._tcp", "SRV"): [f"5 10 5060 sip.{name}"],
            ("@", "TXT"): ['"v=spf1 -all"'],
            ("@", "CAA"): ['0 issue "letsencrypt.org"'],
            ("_acme-challenge.deep.er", "TXT"): ['"token"'],  # two empty non-terminals
            ("sub", "NS"): ["ns.elsewhere.example."],  # a delegation...
            ("ns.sub", "A"): ["192.0.2.53"],  # ...with glue
            ("alias", "CNAME"): [f"www.{name}"],
            ("geo", "LUA"): ["A \"'192.0.2.8'\""],
        },
    )


def _rows(process: PdnsProcess) -> set[tuple[Any, ...]]:
    """Every record row (content in a canonical form: PowerDNS keeps its own spelling of what
    the API sent, e.g. ``2001:db8::1``, names without the final dot), ENTs and metadata."""
    import sqlite3

    from edgeplane.node.powerdns.plan import canonical_record

    def canonical(rtype: str | None, content: str | None, prio: int) -> str | None:
        if rtype is None or content is None:
            return content
        text = f"{prio} {content}" if rtype in ("MX", "SRV") else content
        return canonical_record(rtype, text)

    with contextlib.closing(sqlite3.connect(process.database)) as db:
        rows = db.execute(
            "SELECT d.name, r.name, r.type, r.content, r.ttl, r.prio, r.auth, r.disabled"
            " FROM records r JOIN domains d ON d.id = r.domain_id"
        )
        out = {(d, n, t, canonical(t, c, p), ttl, a, x) for d, n, t, c, ttl, p, a, x in rows}
        meta = db.execute(
            "SELECT d.name, m.kind, m.content FROM domainmetadata m"
            " JOIN domains d ON d.id = m.domain_id"
        )
        return out | {("meta", *m) for m in meta}


def test_an_empty_database_is_filled_by_sql_before_the_server_starts(
    tmp_path: Path, engine: DnsEngine, pdns: PdnsProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At start, an empty database gets the unsigned zones by SQL, rows equal to those the
    API writes; signed zones still go through the API; changes afterwards too."""
    from edgeplane.node.powerdns.engine import BULK_MIN

    zones = tuple(_rich_zone(i) for i in range(BULK_MIN + 5))
    signed = zone_spec("signed.example.", 3, {("www", "A"): ["192.0.2.9"]}, keys=[_key()])
    # under the running server: by SQL too (what the rows are compared with below are those
    # of the same zones created through the API: the engine's API path, forced)
    monkeypatch.setattr(engine, "_sql_creates", lambda todo: frozenset())
    assert engine.apply(zones[: BULK_MIN - 1]).ok
    assert engine.apply(zones).ok
    assert engine.api.list_zones()  # created through the API
    fresh = PdnsProcess(tmp_path / "fresh")
    bulk = DnsEngine(fresh)
    try:
        result = bulk.apply((*zones, signed))
        assert result.ok, result.error
        assert bulk.bulk_loaded == len(zones)
        assert result.changed == ("signed.example.",)  # the only zone the API created
        written = {r for r in _rows(fresh) if r[1] != "signed.example" and r[0] != "signed.example"}
        assert written == _rows(pdns)
        z = zones[7].name
        assert answers(fresh, f"www.{z}") == ["192.0.2.8"]
        assert rcode(fresh, f"er.{z}", "A") == "NOERROR"  # an empty non-terminal: no data
        assert rcode(fresh, f"nothing.{z}", "A") == "NXDOMAIN"
        assert answers(fresh, f"geo.{z}") == answers(pdns, f"geo.{z}") == ["192.0.2.8"]
        referral = query(fresh, f"host.sub.{z}", "A")
        assert not referral.flags & dns.flags.AA and referral.authority
        assert answers(fresh, "signed.example.", "DNSKEY")
        # A fresh engine on the same database (an agent restarted) finds nothing to change.
        again = DnsEngine(fresh)
        assert again.apply((*zones, signed)).changed == ()
        # A change to a zone written by SQL is written by SQL too and served at once.
        changed = zone_spec(z, 999, {("www", "A"): ["192.0.2.200"]})
        moved = tuple(changed if x.name == z else x for x in zones)
        result = again.apply((*moved, signed))
        assert result.ok and result.changed == (z,)
        assert answers(fresh, f"www.{z}") == ["192.0.2.200"]
        # Many zones changed at once (an edge node added moves every zone's NS): their
        # rows replaced by SQL, the cache flushed, served at once; the signed zone untouched.
        asked = answers(fresh, f"www.{zones[3].name}")  # in the packet cache now
        moved = tuple(
            zone_spec(x.name, 500 + i, {("www", "A"): [f"198.51.100.{i + 1}"]})
            for i, x in enumerate(moved)
        )
        result = again.apply((*moved, signed))
        assert result.ok, result.error
        assert result.changed == tuple(sorted(x.name for x in moved))
        assert asked != answers(fresh, f"www.{zones[3].name}") == ["198.51.100.4"]
        assert all(soa_serial(fresh.dns_address, fresh.dns_port, x.name) == x.serial for x in moved)
        assert answers(fresh, "signed.example.", "DNSKEY")
        # What SQL wrote is what the API would: a fresh engine finds nothing to change.
        assert DnsEngine(fresh).apply((*moved, signed)).changed == ()
    finally:
        bulk.stop()
