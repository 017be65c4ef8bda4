"""dnsdist in front of a node's PowerDNS (``edgeplane.node.powerdns.dnsdist``), on the real
engines: geo answers cached per client network and equal to PowerDNS's own, ECS only in the
answers of queries that carried it, changes answered at once, TCP and DNSSEC through it, and
the process managed like PowerDNS's (stale one replaced, nothing left, a clear error when the
package is missing)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import dns.dnssec
import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from edge_agents import searchable_tmp
from pdns import query, zone_spec
from test_dns_geo import ADDRESS, COUNTRY_ONLY, REGIONS, SPREAD, nearest, serve, state, zone

from edgeplane.node.powerdns.dnsdist import DnsdistError
from edgeplane.node.powerdns.engine import DnsEngine
from edgeplane.node.powerdns.geo import GeoDnsEngine
from edgeplane.node.powerdns.process import PdnsError, PdnsProcess
from edgeplane.node.procfs import cmdline
from edgeplane.protocol.dnssec import dnskey, generate_key

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def engine() -> Iterator[GeoDnsEngine]:
    tmp = searchable_tmp("dnsdist-")
    process = PdnsProcess(tmp / "pdns")
    eng = GeoDnsEngine(process)
    try:
        process.start()
        yield eng
    finally:
        eng.stop()


def ask(
    port: int, name: str, rtype: str = "A", ecs: str | None = None, **kw: object
) -> dns.message.Message:
    options = [dns.edns.ECSOption(ecs, 56 if ":" in ecs else 24)] if ecs else []
    q = dns.message.make_query(name, rtype, use_edns=0, options=options, **kw)  # type: ignore[arg-type]
    return dns.query.udp(q, "127.0.0.1", port=port, timeout=5.0)


def a_of(msg: dns.message.Message) -> list[str]:
    return sorted(r.to_text() for rr in msg.answer if rr.rdtype == dns.rdatatype.A for r in rr)


def test_geo_answers_are_cached_per_client_network_and_equal_powerdns_own(
    engine: GeoDnsEngine,
) -> None:
    serve(engine, state((zone("cached.test"),)))
    p = engine.process
    assert p.front is not None and p.backend_port != p.dns_port
    before = p.front.cache_stats()
    clients = [*SPREAD, *COUNTRY_ONLY, "2001:4860:4860::8888", "2a02:ec0::1"]
    for _ in range(3):
        for ip in clients:
            for name in ("cached.test", "www.cached.test"):
                front = a_of(ask(p.dns_port, name, ecs=ip))
                assert front == a_of(ask(p.backend_port, name, ecs=ip)), (ip, name)
                if ":" not in ip:
                    assert front == [nearest(ip, list(REGIONS))], (ip, name)
    after = p.front.cache_stats()
    # rounds two and three came from dnsdist's cache: one entry per network and name
    assert after["hits"] - before["hits"] >= 2 * 2 * len(clients)
    assert after["entries"] >= 2 * len(clients)
    # a client without a location (loopback, no ECS) still gets every node
    assert a_of(ask(p.dns_port, "cached.test")) == sorted(ADDRESS.values())


def test_ecs_is_in_the_answer_only_when_the_query_carried_it(engine: GeoDnsEngine) -> None:
    serve(engine, state((zone("ecs.test"),)))
    p = engine.process
    plain = ask(p.dns_port, "ecs.test")
    assert plain.edns == 0 and plain.options == ()
    no_edns = dns.query.udp(
        dns.message.make_query("ecs.test", "A", use_edns=False), "127.0.0.1", port=p.dns_port
    )
    assert no_edns.edns == -1 and a_of(no_edns) == sorted(ADDRESS.values())
    for _ in range(2):  # the second from the cache
        got = ask(p.dns_port, "ecs.test", ecs="81.2.69.142").options
        want = ask(p.backend_port, "ecs.test", ecs="81.2.69.142").options
        assert [(o.address, o.srclen, o.scopelen) for o in got] == [  # type: ignore[attr-defined]
            (o.address, o.srclen, o.scopelen)  # type: ignore[attr-defined]
            for o in want
        ]
        assert got and got[0].scopelen > 0  # type: ignore[attr-defined]


def test_changes_are_answered_at_once_through_the_cache(engine: GeoDnsEngine) -> None:
    p = engine.process
    # asked before the zone exists: REFUSED (cached by neither), then answered once created
    assert ask(p.dns_port, "www.fresh.test").rcode() == dns.rcode.REFUSED
    z1 = zone_spec("fresh.test.", 1, {("www", "A"): ["192.0.2.10"]})
    keep = zone("keep.test")
    serve(engine, state((keep,)))
    base = DnsEngine.apply  # the zones of this test beside the geo zone
    from edgeplane.snapshot.zones import build_zones

    zones = build_zones(state((keep,)))
    assert base(engine, (*zones, z1)).ok
    assert a_of(ask(p.dns_port, "www.fresh.test")) == ["192.0.2.10"]
    for _ in range(5):
        assert a_of(ask(p.dns_port, "www.fresh.test", ecs="8.8.8.8")) == ["192.0.2.10"]
    z2 = zone_spec("fresh.test.", 2, {("www", "A"): ["192.0.2.20"]})
    result = base(engine, (*zones, z2))
    assert result.ok, result.error
    # no wait: the apply emptied dnsdist's cache of the zone
    assert a_of(ask(p.dns_port, "www.fresh.test")) == ["192.0.2.20"]
    assert a_of(ask(p.dns_port, "www.fresh.test", ecs="8.8.8.8")) == ["192.0.2.20"]
    assert base(engine, zones).ok
    assert ask(p.dns_port, "www.fresh.test").rcode() == dns.rcode.REFUSED
    # a region going down moves the cached geo answers at once too
    london = "81.2.69.142"
    assert a_of(ask(p.dns_port, "keep.test", ecs=london)) == [ADDRESS["eu-central"]]
    serve(engine, state((keep,), down=("eu-central",)), timeout=10)
    assert a_of(ask(p.dns_port, "keep.test", ecs=london)) == [ADDRESS["us-east"]]
    serve(engine, state((keep,)), timeout=10)
    assert a_of(ask(p.dns_port, "keep.test", ecs=london)) == [ADDRESS["eu-central"]]


def test_a_purge_of_a_big_cache_switches_to_the_other_pools_empty_one(
    engine: GeoDnsEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above WALK_LIMIT (here: always) a purge switches the rule to the other pool, whose
    cache is empty, and the old pool's cache is emptied in the background."""
    from edgeplane.node.powerdns import dnsdist
    from edgeplane.snapshot.zones import build_zones

    p = engine.process
    assert p.front is not None
    keep = build_zones(state((zone("keep2.test"),)))
    z1 = zone_spec("switch.test.", 1, {("www", "A"): ["192.0.2.10"]})
    assert DnsEngine.apply(engine, (*keep, z1)).ok
    for ip in SPREAD:
        assert a_of(ask(p.dns_port, "www.switch.test", ecs=ip)) == ["192.0.2.10"]
    before = p.front.console("return active")[0].strip()
    monkeypatch.setattr(dnsdist, "WALK_LIMIT", 0)
    z2 = zone_spec("switch.test.", 2, {("www", "A"): ["192.0.2.20"]})
    result = DnsEngine.apply(engine, (*keep, z2))
    assert result.ok, result.error
    assert p.front.purged == f"switched {before}"
    assert p.front.console("return active")[0].strip() != before
    for ip in SPREAD:
        assert a_of(ask(p.dns_port, "www.switch.test", ecs=ip)) == ["192.0.2.20"]
    deadline = time.monotonic() + 10
    entries = f'return getPool("{before}"):getCache():getStats()["entries"]'
    while int(p.front.console(entries)[0]) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert int(p.front.console(entries)[0]) == 0  # drained
    # and back: the first pool's cache, emptied, answers again
    z3 = zone_spec("switch.test.", 3, {("www", "A"): ["192.0.2.30"]})
    assert DnsEngine.apply(engine, (*keep, z3)).ok
    assert p.front.console("return active")[0].strip() == before
    assert a_of(ask(p.dns_port, "www.switch.test", ecs="8.8.8.8")) == ["192.0.2.30"]


def test_tcp_and_signed_answers_through_dnsdist(engine: GeoDnsEngine) -> None:
    key = generate_key()
    signed = replace(zone("tcp-signed.test"), dnssec=True, dnssec_key=key)
    serve(engine, state((signed,)))
    name = dns.name.from_text("tcp-signed.test")
    keys = {name: dns.rrset.from_rdata(name, 3600, dnskey(key))}
    for tcp in (False, True, False):
        msg = query(engine.process, "www.tcp-signed.test", "A", ecs="8.8.8.8", dnssec=True, tcp=tcp)
        a = [r for r in msg.answer if r.rdtype == dns.rdatatype.A]
        sig = [r for r in msg.answer if r.rdtype == dns.rdatatype.RRSIG]
        assert a and sig, msg
        dns.dnssec.validate(a[0], sig[0], keys)
        assert [r.to_text() for r in a[0]] == [nearest("8.8.8.8", list(REGIONS))]
    # without DO: no signatures (the DO bit is part of the cache key)
    plain = query(engine.process, "www.tcp-signed.test", "A", ecs="8.8.8.8")
    assert not [r for r in plain.answer if r.rdtype == dns.rdatatype.RRSIG]


def _alive(pid: int) -> bool:
    return bool(cmdline(pid))


def test_dnsdist_is_restarted_replaced_and_stopped(tmp_path: Path) -> None:
    one = PdnsProcess(tmp_path / "pdns")
    one.start()
    try:
        assert one.front is not None
        first = one.front.pid
        assert first is not None and "dnsdist" in cmdline(first)[0]
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while one.running() and time.monotonic() < deadline:
            time.sleep(0.01)
        pdns_pid = one.pid
        assert one.ensure_running() is True
        assert one.pid == pdns_pid  # PowerDNS kept running: only dnsdist was started again
        assert one.front.pid not in (None, first)
        # an agent that restarts finds the servers of its directory running: replaced
        again = PdnsProcess(tmp_path / "pdns", dns_port=one.dns_port)
        old = (one.pid, one.front.pid)
        again.start()
        try:
            assert again.running()
            assert all(pid is not None and not _alive(pid) for pid in old)
            assert ask(again.dns_port, ".", "SOA").rcode() == dns.rcode.REFUSED
        finally:
            pids = (again.pid, again.front.pid if again.front else None)
            again.stop()
        assert all(pid is not None and not _alive(pid) for pid in pids)
    finally:
        one.stop()


def test_a_missing_dnsdist_is_named_and_leaves_nothing_running(tmp_path: Path) -> None:
    p = PdnsProcess(tmp_path / "pdns")
    assert p.front is not None
    p.front.binary = "no-such-dnsdist"
    with pytest.raises(PdnsError, match="install the Debian package dnsdist"):
        p.start()
    assert not p.running() and p.pid is None
    with pytest.raises(DnsdistError):
        p.front.console("showVersion()")


def _shape(wire: bytes) -> tuple[object, ...]:
    """A message with its ID and the signatures of its RRSIGs left out (ECDSA signatures
    differ at every signing)."""
    msg = dns.message.from_wire(wire)

    def section(rrsets: list[dns.rrset.RRset]) -> list[str]:
        out = []
        for rrset in rrsets:
            for line in rrset.to_text().splitlines():
                parts = line.split()
                out.append(" ".join(parts[:-1] if parts[3] == "RRSIG" else parts))
        return sorted(out)

    return (
        msg.flags, msg.rcode(), msg.edns, msg.ednsflags, msg.payload,
        [o.to_text() for o in msg.options],
        section(msg.answer), section(msg.authority), section(msg.additional),
    )  # fmt: skip


def test_answers_are_powerdns_own(engine: GeoDnsEngine) -> None:
    """Through dnsdist, an answer is what PowerDNS sends when asked directly, section by
    section, EDNS and ECS included (but the ID and the ECDSA signatures' random bytes)."""
    key = generate_key()
    signed = replace(zone("bytes.test"), dnssec=True, dnssec_key=key)
    serve(engine, state((signed,)))
    p = engine.process
    cases: list[tuple[str, str, dict[str, object]]] = [
        ("www.bytes.test", "A", {"use_edns": False}),
        ("www.bytes.test", "A", {"use_edns": 0}),
        ("www.bytes.test", "A", {"use_edns": 0, "want_dnssec": True}),
        ("static.bytes.test", "A", {"use_edns": False}),
        ("static.bytes.test", "A", {"use_edns": 0}),
        ("bytes.test", "MX", {"use_edns": 0, "want_dnssec": True}),
        ("nothing.bytes.test", "A", {"use_edns": 0, "want_dnssec": True}),
        ("www.bytes.test", "AAAA", {"use_edns": 0, "want_dnssec": True}),
    ]
    for ecs in (None, "81.2.69.142", "133.242.0.1"):
        for name, rtype, kw in cases:
            if ecs and kw["use_edns"] is False:
                continue
            options = [dns.edns.ECSOption(ecs, 24)] if ecs else []
            q = dns.message.make_query(name, rtype, options=options, **kw)  # type: ignore[arg-type]
            for _ in range(2):  # the second from dnsdist's cache
                front = dns.query.udp(q, "127.0.0.1", port=p.dns_port, timeout=5).to_wire()
                back = dns.query.udp(q, "127.0.0.1", port=p.backend_port, timeout=5).to_wire()
                assert _shape(front) == _shape(back), (name, rtype, kw, ecs)


# Run inside a namespace: a node's DNS (dnsdist + PowerDNS) on the namespace's 127.0.0.1, and
# queries without ECS from public addresses put on the namespace's own loopback.
_IN_HOST = """
import json, sys
import dns.message, dns.query, dns.rdatatype
from edge_agents import searchable_tmp
from test_dns_geo import serve, state, zone
from edgeplane.node.powerdns.geo import GeoDnsEngine
from edgeplane.node.powerdns.process import PdnsProcess

process = PdnsProcess(searchable_tmp("dnsdist-ns-") / "pdns")
engine = GeoDnsEngine(process)
out = {}
try:
    process.start()
    serve(engine, state((zone("source.test"),)))
    for ip in sys.argv[1:]:
        for label, port in (("front", process.dns_port), ("pdns", process.backend_port)):
            got = []
            for _ in range(2):  # the second from dnsdist's cache
                for use_edns in (False, 0):
                    q = dns.message.make_query("www.source.test", "A", use_edns=use_edns)
                    m = dns.query.udp(q, "127.0.0.1", port=port, source=ip, timeout=5)
                    got.append(sorted(r.to_text() for rr in m.answer for r in rr
                                      if rr.rdtype == dns.rdatatype.A))
                    if label == "front" and m.edns >= 0:
                        assert not m.options, m  # no ECS back to a client that sent none
            out[f"{label} {ip}"] = got
finally:
    engine.stop()
print(json.dumps(out))
"""


def test_a_resolver_without_ecs_is_routed_by_its_own_address(tmp_path: Path) -> None:
    """What PowerDNS did with the source address of a query without ECS, dnsdist does by
    adding it as ECS: clients in London and Tokyo (their addresses on a namespace's loopback)
    get their region, from the cache too, and no ECS in the answer."""
    import json
    import sys

    from netns import hosts

    clients = ["81.2.69.142", "133.242.0.1", "216.160.83.56"]
    script = tmp_path / "in_host.py"
    script.write_text(_IN_HOST)
    here = Path(__file__).resolve().parent
    path = os.pathsep.join([str(here), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path)
    with hosts(1, "epdd") as (host,):
        for ip in clients:
            assert host.run("ip", "addr", "add", f"{ip}/32", "dev", "lo").returncode == 0
        r = host.run(sys.executable, str(script), *clients, env=env, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    for ip in clients:
        want = [nearest(ip, list(REGIONS))]
        assert got[f"front {ip}"] == [want] * 4, (ip, got)
        assert got[f"pdns {ip}"] == [want] * 4, (ip, got)
