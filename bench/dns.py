"""The edge node's DNS, measured: a real control plane, three real agents with PowerDNS each.

Run from the repository root::

    .venv/bin/python bench/dns.py [--duration 5] [--rounds 3] [--samples 20] [--markdown]

What runs: ``edgeplane up --no-edge`` (the control plane, SQLite) and three edge nodes
(``edgeplane edge`` with ``--dns-port``: nginx, and dnsdist in front of PowerDNS, each) in
eu-central, us-east and
ap-northeast on 127.0.0.2, .3 and .4, started as the integration tests start them
(``tests/integration/processes.py``, ``edge_agents.py``). The domain ``bench.test`` is added
through the REST API without auto-configuration and given a static A record and a proxied A
record ``geo``: a PowerDNS LUA record in the zone, answered on the nodes by PowerDNS's geoip
backend from the ranking database (``edgeplane.node.powerdns.geo``; the bench waits until every
node does).

The reference is a PowerDNS of the benchmark's own: a minimal hand-written ``pdns.conf``
(``launch=gsqlite3``, every cache and thread setting at its default) on 127.0.0.5, serving the
same RRsets (read back from ``GET /domains/bench.test/records``, loaded with ``pdnsutil
load-zone``), run in the same process, interleaved with the edge round by round.

Figures:

1. queries per second from dnsperf (UDP, unlimited rate, a fixed number of outstanding
   queries) against the eu-central node's DNS address (its dnsdist, whose packet cache keeps
   geo answers per client network) and against that node's PowerDNS directly (behind
   dnsdist, as every query reached it before: the second reference): the static A record,
   the same from the reference,
   the static record again with EDNS Client Subnet from 20 client networks, and the geo-routed
   name with the same 20 client networks and without ECS, beside the LUA record on a PowerDNS
   of the bench's own (today's answer); then the geo name and the static name with 100,000
   distinct client networks (a /24 each: the packet cache keeps a static answer once per
   network, and never a geo answer: PowerDNS 4.7 caches no answer with an ECS scope); the
   median of ``--rounds`` rounds,
   configurations interleaved; with the share of answers that came from PowerDNS's packet
   cache (``pdns_control show packetcache-hit/-miss`` around each run; for the node's
   address dnsdist's ``cache-hits`` / ``queries`` through its console); and the cost of a
   purge of dnsdist's cache (one zone, everything) with the cache full of geo answers;
2. record propagation: ``PATCH /domains/bench.test/records`` of an A record with a new value,
   until every node answers the new value (each polled with dnspython every 2 ms);
3. the geoip zones file at ``--reload-zones`` zones (10,000; 500 in the short mode): its size,
   the node's render time, and the time from ``pdns_control rediscover`` until PowerDNS
   answers with it, on a PowerDNS of its own holding those zones; and the ranking database's
   build time (from scratch, or from the cache in the short mode).

Everything started is stopped and the temporary directory removed on exit, error, Ctrl-C or
SIGTERM. All traffic stays on 127.0.0.0/8. Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import sqlite3
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# This file is called dns.py: as a script its folder comes first on sys.path and would hide
# dnspython's ``dns`` package from every ``import dns...`` (ours and edgeplane's). Drop it.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != _HERE]

import dns.edns  # noqa: E402
import dns.exception  # noqa: E402
import dns.message  # noqa: E402
import dns.query  # noqa: E402
import dns.rdatatype  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

sys.path.append(str(_HERE))  # after dnspython is imported: for common.py

from common import BenchRun, Cleanup, log, pct, signals_raise, table  # noqa: E402
from dns_zones import bench_zones  # noqa: E402
from edge_agents import Api, EdgeAgent, new_agent, wait_for  # noqa: E402
from processes import ControlPlane, clean_env, free_udp_port, start_up  # noqa: E402

INV = "/api/v1/infrastructure"
ZONE = "bench.test"
STATIC = f"www.{ZONE}"
STATIC_VALUE = "192.0.2.10"
GEO = f"geo.{ZONE}"
UPDATED = f"upd.{ZONE}"
REGIONS = [("eu", "eu-central", "127.0.0.2"), ("us", "us-east", "127.0.0.3"),
           ("ap", "ap-northeast", "127.0.0.4")]  # fmt: skip
REFERENCE_ADDRESS = "127.0.0.5"
LUA_REFERENCE_ADDRESS = "127.0.0.6"
TRIVIAL = f"one.{ZONE}"  # a LUA record of the Lua reference that returns one constant address
# Client networks (as /24 EDNS Client Subnets) spread over the continents, located by the
# packaged GeoLite2-City (the list of tests/integration/test_dns_domains.py).
CLIENTS = [
    "81.2.69.142", "89.160.20.112", "2.16.0.1", "8.8.8.8", "216.160.83.56", "1.1.1.1",
    "133.242.0.1", "61.213.0.1", "175.45.176.1", "103.1.1.1", "27.121.0.1", "180.76.76.76",
    "58.14.0.1", "41.0.0.1", "200.160.2.3", "5.255.0.1", "77.88.8.8", "62.210.0.1",
    "185.60.216.35", "150.95.0.1",
]  # fmt: skip
PAYLOAD = 1232
MANY = 100_000  # distinct client networks of the "many networks" rows (a /24 each)


def many_networks(n: int) -> list[str]:
    """``n`` distinct public /24s (deterministic): each query a new client network."""
    import ipaddress
    import random

    rnd = random.Random(12)
    out: dict[str, None] = {}
    while len(out) < n:
        net = rnd.randrange(1 << 24) << 8
        ip = ipaddress.IPv4Address(net + 1)
        if ip.is_global and not ip.is_multicast:
            out[str(ip)] = None
    return list(out)


def geo_status(pdns_dir: Path, *names: str) -> dict[str, Any] | None:
    """The node's geo status once its geoip backend answers ``names`` (its zones file read)."""
    import hashlib
    import json

    try:
        text = (pdns_dir / "geo.yaml").read_text()
        status: dict[str, Any] = json.loads((pdns_dir / "geo-status.json").read_text())
    except (OSError, ValueError):
        return None
    if status.get("zones_sha") != hashlib.sha256(text.encode()).hexdigest():
        return None
    return status if all(f"\n    '{n}.': *" in text for n in names) else None


# --------------------------------------------------------------------------- processes


def pdns_counters_of(socket_dir: Path) -> tuple[int, int] | None:
    """(packetcache-hit, packetcache-miss) of the PowerDNS with this control socket dir."""
    out: list[int] = []
    for name in ("packetcache-hit", "packetcache-miss"):
        r = subprocess.run(
            ["pdns_control", f"--socket-dir={socket_dir}", f"--config-dir={socket_dir}",
             "show", name],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
        if r.returncode != 0 or not r.stdout.strip().isdigit():
            return None
        out.append(int(r.stdout.strip()))
    return out[0], out[1]


def node_pdns(pdns_dir: Path) -> tuple[str, int]:
    """Where a node's PowerDNS itself listens (behind its dnsdist): from its pdns.conf."""
    lines = (pdns_dir / "pdns.conf").read_text().splitlines()
    conf = dict(line.split("=", 1) for line in lines if "=" in line)
    return conf["local-address"].split(",")[0].strip(), int(conf["local-port"])


def node_console(pdns_dir: Path, commands: list[str]) -> list[str] | None:
    """Run ``commands`` on a node's dnsdist console (port and key read from its dnsdist.conf);
    None when it cannot be reached."""
    import base64

    from edgeplane.node.powerdns.dnsdist import DnsdistError, console

    text = (pdns_dir / "dnsdist.conf").read_text()
    port = re.search(r'controlSocket\("127\.0\.0\.1:(\d+)"\)', text)
    key = re.search(r'setKey\("([^"]+)"\)', text)
    if not port or not key:
        return None
    try:
        return console(int(port.group(1)), base64.b64decode(key.group(1)), commands)
    except DnsdistError:
        return None


def dnsdist_counters(pdns_dir: Path) -> tuple[int, int] | None:
    """(answers from dnsdist's packet cache, other queries) of a node's dnsdist."""
    got = node_console(pdns_dir, [
        'local s = getStatisticsCounters() return s["cache-hits"] .. " " .. s["queries"]'
    ])  # fmt: skip
    if got is None:
        return None
    (out,) = got
    hits, queries = (int(x) for x in out.split())
    return hits, queries - hits


REFERENCE_CONF = """\
launch={launch}
gsqlite3-database={db}
local-address={address}
local-port={port}
security-poll-suffix=
disable-syslog=yes
loglevel=4
"""


class ReferencePdns:
    """A PowerDNS with a minimal hand-written config: gsqlite3, default caches and threads."""

    def __init__(
        self, directory: Path, address: str, *, launch: str = "gsqlite3", extra: str = ""
    ) -> None:
        from edgeplane.node.powerdns.process import schema_file

        self.directory = directory
        self.address = address
        self.port = free_udp_port(address)
        directory.mkdir(parents=True, exist_ok=True)
        db = directory / "pdns.sqlite3"
        with contextlib.closing(sqlite3.connect(db)) as conn:
            conn.executescript(schema_file().read_text())
            conn.commit()
        self.conf = REFERENCE_CONF.format(launch=launch, db=db, address=address, port=self.port)
        self.conf += extra
        (directory / "pdns.conf").write_text(self.conf)
        self.process: subprocess.Popen[bytes] | None = None

    def load_zone(self, zone: str, text: str) -> None:
        path = self.directory / f"{zone}.zone"
        path.write_text(text)
        r = subprocess.run(
            ["pdnsutil", f"--config-dir={self.directory}", "load-zone", zone, str(path)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if r.returncode != 0:
            raise RuntimeError(f"pdnsutil load-zone failed:\n{r.stdout}\n{r.stderr}")

    def start(self) -> None:
        logf = (self.directory / "pdns.log").open("ab")
        self.process = subprocess.Popen(
            ["pdns_server", "--daemon=no", "--guardian=no", f"--config-dir={self.directory}",
             f"--socket-dir={self.directory}"],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        logf.close()

        def up() -> bool | None:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    "reference pdns_server exited:\n" + (self.directory / "pdns.log").read_text()
                )
            return bool(answers(self.address, self.port, STATIC)) or None

        wait_for(up, 30, "the reference PowerDNS", every=0.05)

    def stop(self) -> None:
        p, self.process = self.process, None
        if p is None or p.poll() is not None:
            return
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


# --------------------------------------------------------------------------- DNS


def make_query(name: str, ecs: str | None = None) -> dns.message.Message:
    options: list[dns.edns.Option] = [dns.edns.ECSOption(ecs, 24)] if ecs else []
    return dns.message.make_query(name, "A", use_edns=0, payload=PAYLOAD, options=options)


def answers(address: str, port: int, name: str, ecs: str | None = None,
            timeout: float = 1.0) -> list[str]:  # fmt: skip
    try:
        msg = dns.query.udp(make_query(name, ecs), address, port=port, timeout=timeout)
    except (dns.exception.DNSException, OSError):
        return []
    return sorted(r.to_text() for rr in msg.answer if rr.rdtype == dns.rdatatype.A for r in rr)


def blob(path: Path, messages: list[dns.message.Message]) -> Path:
    """A dnsperf ``-B`` data file: each query in wire form after its 2-byte length."""
    with path.open("wb") as f:
        for m in messages:
            wire = m.to_wire()
            f.write(struct.pack("!H", len(wire)) + wire)
    return path


@dataclass
class PerfResult:
    qps: float
    latency_ms: float
    sent: int
    lost: int
    rcodes: str
    cache_hits: float | None  # share of the run's queries answered from the packet cache


def dnsperf(address: str, port: int, data: Path, args: argparse.Namespace,
            socket_dir: Path | None, *, front: bool = False) -> PerfResult:  # fmt: skip
    """``front``: the cache counted is the dnsdist's of the node whose PowerDNS directory is
    ``socket_dir``, else that PowerDNS's own."""

    def pdns_counters(d: Path) -> tuple[int, int] | None:
        return dnsdist_counters(d) if front else pdns_counters_of(d)

    before = pdns_counters(socket_dir) if socket_dir else None
    cmd = ["dnsperf", "-B", "-s", address, "-p", str(port), "-d", str(data),
           "-l", str(args.duration), "-c", str(args.clients), "-T", str(args.threads),
           "-q", str(args.outstanding), "-t", "2"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 30)
    if r.returncode != 0:
        raise RuntimeError(f"dnsperf failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    after = pdns_counters(socket_dir) if socket_dir else None
    out = r.stdout

    def num(label: str) -> float:
        m = re.search(rf"{label}:\s+([\d.]+)", out)
        if not m:
            raise RuntimeError(f"dnsperf output without {label!r}:\n{out}")
        return float(m.group(1))

    rcodes = re.search(r"Response codes:\s+(.*)", out)
    hits = None
    if before and after:
        dh, dm = after[0] - before[0], after[1] - before[1]
        hits = dh / (dh + dm) if dh + dm else None
    return PerfResult(
        qps=num("Queries per second"),
        latency_ms=num(r"Average Latency \(s\)") * 1000,
        sent=int(num("Queries sent")),
        lost=int(num("Queries lost")),
        rcodes=rcodes.group(1).strip() if rcodes else "?",
        cache_hits=hits,
    )


# --------------------------------------------------------------------------- the stack


@dataclass
class Stack:
    tmp: Path
    cleanup: Cleanup
    cp: ControlPlane | None = None
    api: Api | None = None
    nodes: dict[str, EdgeAgent] = field(default_factory=dict)

    def start(self) -> None:
        # Nothing of the control plane may reach the network: resolvers and SMTP on loopback
        # ports where nothing listens (.test names need no verification lookups anyway).
        closed = str(free_udp_port("127.0.0.1"))
        env = clean_env(
            EDGEPLANE_DNS_RESOLVERS=f"127.0.0.1:{closed}",
            EDGEPLANE_SMTP_HOST="127.0.0.1",
            EDGEPLANE_SMTP_PORT=closed,
        )
        cp = self.cp = start_up(self.tmp / "cp", env=env)
        self.cleanup.add(cp.stop)
        api = self.api = Api(cp)
        self.cleanup.add(api.close)
        for key, region, address in REGIONS:
            agent = new_agent(cp, api, self.tmp, f"edge-{key}")
            agent.region = region
            agent.bind = address
            agent.dns_port = free_udp_port(address)
            self.cleanup.add(agent.stop)
            self.nodes[key] = agent.start()
        wait_for(
            lambda: len([n for n in api.nodes() if n["live"]]) == len(REGIONS) or None,
            60, "three live edge nodes",
        )  # fmt: skip

    def pdns_dir(self, key: str) -> Path:
        a = self.nodes[key]
        return a.home / "edge" / a.name / "pdns"

    def everywhere(self, name: str, want: list[str], timeout: float = 30) -> None:
        wait_for(
            lambda: all(answers(a.bind, a.dns_port, name) == want for a in self.nodes.values())
            or None,
            timeout, f"{name} -> {want} on every node",
        )  # fmt: skip


def zone_file(doc: dict[str, Any]) -> tuple[str, list[str]]:
    """The non-proxied RRsets of ``GET /records`` as a zone file; and the proxied names."""
    lines = [f"$ORIGIN {ZONE}."]
    proxied = []
    for r in doc["records"]:
        if r["proxied"]:
            proxied.append(r["fqdn"])
            continue
        owner = r["fqdn"].rstrip(".") + "."
        for v in r["values"]:
            lines.append(f"{owner} {r['ttl']} IN {r['type']} {v}")
    return "\n".join(lines) + "\n", proxied


# --------------------------------------------------------------------------- figures


def edge_lua_records(stack: Stack, key: str) -> list[str]:
    """The LUA records a node's PowerDNS holds, as zone file lines (read from its database)."""
    db = stack.pdns_dir(key) / "pdns.sqlite3"
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = conn.execute(
            "SELECT name, ttl, content FROM records WHERE type = 'LUA' ORDER BY name"
        ).fetchall()
    return [f"{name}. {ttl} IN LUA {content}" for name, ttl, content in rows]


def bench_qps(stack: Stack, args: argparse.Namespace) -> tuple[list[list[str]], list[str]]:
    from edgeplane.node.powerdns.process import default_geoip_database

    assert stack.api is not None
    tmp = stack.tmp
    eu = stack.nodes["eu"]
    # The references: the same RRsets, read back from the control plane; the Lua one also
    # holds the node's LUA record for geo (the same text) and a LUA record returning a constant.
    doc = stack.api.ok("GET", f"{INV}/domains/{ZONE}/records")
    text, proxied = zone_file(doc)
    lua_lines = edge_lua_records(stack, "eu")
    ref = ReferencePdns(tmp / "reference", REFERENCE_ADDRESS)
    ref.load_zone(ZONE, text)
    lua = ReferencePdns(
        tmp / "reference-lua", LUA_REFERENCE_ADDRESS, launch="gsqlite3,geoip",
        extra=f"geoip-database-files={default_geoip_database()}\n"
        "enable-lua-records=yes\nedns-subnet-processing=yes\n",
    )  # fmt: skip
    lua.load_zone(ZONE, text + "\n".join(lua_lines) + f"\n{TRIVIAL}. 30 IN LUA A \"'192.0.2.1'\"\n")
    for r in (ref, lua):
        stack.cleanup.add(r.stop)
        r.start()
    # both answer the static name alike (answer, authority and additional sections)
    edge_msg = dns.query.udp(make_query(STATIC), eu.bind, port=eu.dns_port, timeout=2)
    ref_msg = dns.query.udp(make_query(STATIC), ref.address, port=ref.port, timeout=2)
    same = all(
        sorted(map(str, getattr(edge_msg, s))) == sorted(map(str, getattr(ref_msg, s)))
        for s in ("answer", "authority", "additional")
    )
    if not same:
        log(f"warning: the answers differ:\n--- edge\n{edge_msg}\n--- reference\n{ref_msg}")

    started = time.monotonic()
    statuses = wait_for(
        lambda: [s for k in stack.nodes if (s := geo_status(stack.pdns_dir(k), GEO))]
        if all(geo_status(stack.pdns_dir(k), GEO) for k in stack.nodes)
        else None,
        600, "geo answered by the geoip backend of every node",
    )  # fmt: skip
    geo_wait = time.monotonic() - started
    builds = [s["build_s"] for s in statuses if s.get("build_s") is not None]
    # where the 20 client networks are sent (by the node, and by the Lua reference)
    by_address = {stack.nodes[key].bind: region for key, region, _ in REGIONS}
    spread: dict[str, int] = {}
    agree = 0
    for ip in CLIENTS:
        got = answers(eu.bind, eu.dns_port, GEO, ecs=ip)
        agree += got == answers(lua.address, lua.port, GEO, ecs=ip)
        label = "+".join(by_address.get(x, x) for x in got) or "no answer"
        spread[label] = spread.get(label, 0) + 1
    everyone = answers(eu.bind, eu.dns_port, GEO)

    many = many_networks(MANY if not args.quick else 20_000)
    many_agree = sum(
        answers(eu.bind, eu.dns_port, GEO, ecs=ip) == answers(lua.address, lua.port, GEO, ecs=ip)
        for ip in many[:200]
    )
    files = {
        "static": blob(tmp / "static.bin", [make_query(STATIC)]),
        "static_ecs": blob(tmp / "static-ecs.bin", [make_query(STATIC, ip) for ip in CLIENTS]),
        "geo_ecs": blob(tmp / "geo-ecs.bin", [make_query(GEO, ip) for ip in CLIENTS]),
        "geo_many": blob(tmp / "geo-many.bin", [make_query(GEO, ip) for ip in many]),
        "static_many": blob(tmp / "static-many.bin", [make_query(STATIC, ip) for ip in many]),
        "geo": blob(tmp / "geo.bin", [make_query(GEO)]),
        "one": blob(tmp / "one.bin", [make_query(TRIVIAL)]),
    }
    eu_dir = stack.pdns_dir("eu")

    def on_edge(data: str) -> Callable[[], PerfResult]:
        return lambda: dnsperf(eu.bind, eu.dns_port, files[data], args, eu_dir, front=True)

    behind = node_pdns(eu_dir)

    def on_pdns(data: str) -> Callable[[], PerfResult]:
        """The node's own PowerDNS, asked directly (behind its dnsdist)."""
        return lambda: dnsperf(behind[0], behind[1], files[data], args, eu_dir)

    def on(r: ReferencePdns, data: str) -> Callable[[], PerfResult]:
        return lambda: dnsperf(r.address, r.port, files[data], args, r.directory)

    configs: list[tuple[str, Callable[[], PerfResult]]] = [
        ("edge static", on_edge("static")),
        ("reference static", on(ref, "static")),
        ("pdns static", on_pdns("static")),
        ("pdns geo ecs", on_pdns("geo_ecs")),
        ("edge static ecs", on_edge("static_ecs")),
        ("edge geo ecs", on_edge("geo_ecs")),
        ("lua geo ecs", on(lua, "geo_ecs")),
        ("edge static many", on_edge("static_many")),
        ("edge geo many", on_edge("geo_many")),
        ("lua geo many", on(lua, "geo_many")),
        ("edge geo", on_edge("geo")),
        ("lua one", on(lua, "one")),
    ]
    results: dict[str, list[PerfResult]] = {name: [] for name, _ in configs}
    for rnd in range(args.rounds):
        for name, run in configs:
            res = run()
            results[name].append(res)
            share = "-" if res.cache_hits is None else f"{res.cache_hits:.0%}"
            log(f"round {rnd + 1}/{args.rounds} {name}: {res.qps:,.0f} qps, "
                f"{res.latency_ms:.2f} ms avg, lost {res.lost}/{res.sent}, "
                f"packet cache {share}, {res.rcodes}")  # fmt: skip

    # The cost of emptying dnsdist's cache (what the agent does after a change), with the
    # cache filled by a run of the many networks: the purge the agent waits for (above
    # WALK_LIMIT a switch to the other pool's empty cache), the drain of the old cache that
    # follows in the background, and what walking the full cache for one zone would cost.
    from edgeplane.node.powerdns.dnsdist import drain_command, purge_commands

    entries_cmd = 'return getPool(active):getCache():getStats()["entries"]'

    def timed(commands: list[str]) -> tuple[str, float]:
        t0 = time.perf_counter()
        out = node_console(eu_dir, commands)
        return (out[0].strip() if out else "?"), (time.perf_counter() - t0) * 1000

    def fill() -> int:
        dnsperf(eu.bind, eu.dns_port, files["geo_many"], args, None)
        got = node_console(eu_dir, [entries_cmd])
        return int(got[0]) if got else -1

    purges: dict[str, tuple[int, str, float, float]] = {}
    for label, zones in (("zone", [f"{ZONE}."]), ("all", None)):
        filled = fill()
        how, took = timed(purge_commands(zones))
        drain = timed([drain_command(how.split()[1])])[1] if how.startswith("switched") else 0.0
        purges[label] = (filled, how, took, drain)
        log(f"dnsdist purge ({label}) with {filled:,} entries: {how} in {took:.1f} ms, "
            f"then the old cache drained in {drain:.1f} ms")  # fmt: skip
    walked = fill()
    walk_ms = timed([
        f'getPool(active):getCache():expungeByName(newDNSName("{ZONE}."), DNSQType.ANY, true)'
    ])[1]  # fmt: skip
    log(f"dnsdist: a walk of {walked:,} entries for one zone took {walk_ms:.1f} ms")

    def med(name: str) -> float:
        return statistics.median(r.qps for r in results[name])

    def lat(name: str) -> str:
        return f"{statistics.median(r.latency_ms for r in results[name]):.2f}"

    def hits(name: str) -> str:
        vals = [r.cache_hits for r in results[name] if r.cache_hits is not None]
        return f"{statistics.median(vals):.0%}" if vals else "-"

    s, rs = med("edge static"), med("reference static")
    ge, gl = med("edge geo ecs"), med("lua geo ecs")
    gm, glm, sm = med("edge geo many"), med("lua geo many"), med("edge static many")
    rows = [
        ["static A: qps", f"{s:,.0f}", f"{rs:,.0f}", f"{s / rs:.2f}x"],
        ["static A: mean latency ms / from the packet cache",
         f"{lat('edge static')} / {hits('edge static')}",
         f"{lat('reference static')} / {hits('reference static')}", ""],
        ["static A, ECS from 20 client networks: qps (ratio: to static)",
         f"{med('edge static ecs'):,.0f}", "", f"{med('edge static ecs') / s:.2f}x"],
        ["static A, ECS: mean latency ms / from the packet cache",
         f"{lat('edge static ecs')} / {hits('edge static ecs')}", "", ""],
        ["geo (geoip backend; reference: LUA), ECS from 20 client networks: qps",
         f"{ge:,.0f}", f"{gl:,.0f}", f"{ge / gl:.2f}x"],
        ["geo, ECS from 20 networks: ratio to static A", f"{ge / s:.3f}x", f"{gl / rs:.3f}x", ""],
        ["geo, ECS from 20 networks: mean latency ms / from the packet cache",
         f"{lat('edge geo ecs')} / {hits('edge geo ecs')}",
         f"{lat('lua geo ecs')} / {hits('lua geo ecs')}", ""],
        [f"geo, ECS from {len(many):,} client networks: qps (reference: LUA)",
         f"{gm:,.0f}", f"{glm:,.0f}", f"{gm / glm:.2f}x"],
        [f"geo, ECS from {len(many):,} networks: ratio to static A", f"{gm / s:.3f}x",
         f"{glm / rs:.3f}x", ""],
        [f"static A, ECS from the same {len(many):,} networks: qps (ratio: geo to it)",
         f"{sm:,.0f}", "", f"{gm / sm:.2f}x"],
        [f"geo / static A, {len(many):,} networks: mean latency ms / from the packet cache",
         f"{lat('edge geo many')} / {lat('edge static many')}",
         f"{hits('edge geo many')} / {hits('edge static many')}", ""],
        ["the node's PowerDNS directly (behind dnsdist): static A qps (ratio: to the node)",
         f"{med('pdns static'):,.0f}", "", f"{med('pdns static') / s:.2f}x"],
        ["the node's PowerDNS directly: geo, ECS from 20 networks: qps (ratio: to its static)",
         f"{med('pdns geo ecs'):,.0f}", "", f"{med('pdns geo ecs') / med('pdns static'):.3f}x"],
        ["the node's PowerDNS directly: mean latency ms / from its packet cache, static / geo",
         f"{lat('pdns static')} / {hits('pdns static')}",
         f"{lat('pdns geo ecs')} / {hits('pdns geo ecs')}", ""],
        [f"dnsdist purge of one zone, {purges['zone'][0]:,} cached answers: ms the agent "
         f"waits ({purges['zone'][1].split()[0]}) / old cache drained after (background)",
         f"{purges['zone'][2]:.1f} / {purges['zone'][3]:.0f}", "", ""],
        [f"dnsdist purge of everything, {purges['all'][0]:,} cached answers: switch / drain ms",
         f"{purges['all'][2]:.1f} / {purges['all'][3]:.0f}", "", ""],
        [f"dnsdist: one zone's answers removed by walking {walked:,} cached answers, ms",
         f"{walk_ms:.0f}", "", ""],
        ["geo, no ECS (every node answered): qps (ratio: to static)",
         f"{med('edge geo'):,.0f}", "", f"{med('edge geo') / s:.3f}x"],
        ["LUA record returning one constant address: qps (ratio: to static)", "",
         f"{med('lua one'):,.0f}", f"{med('lua one') / rs:.3f}x"],
    ]  # fmt: skip
    runs = [res for per_config in results.values() for res in per_config]
    total_lost = sum(res.lost for res in runs)
    total_sent = sum(res.sent for res in runs)
    codes: dict[str, int] = {}
    for res in runs:
        for code, n in re.findall(r"([A-Z]+) (\d+)", res.rcodes):
            codes[code] = codes.get(code, 0) + int(n)
    spread_text = ", ".join(f"{k} {v}" for k, v in sorted(spread.items(), key=lambda x: -x[1]))
    notes = [
        f"dnsperf 2.10 over UDP: {args.duration:g} s per run, median of {args.rounds} rounds "
        f"with the configurations interleaved; -c {args.clients} -T {args.threads} "
        f"-q {args.outstanding} (outstanding queries), no -Q rate limit; every query with "
        f"EDNS0 (payload {PAYLOAD}), sent from a -B data file (EDNS Client Subnet /24 in the "
        f"ECS runs, the 20 networks in turn); {total_sent:,} queries, {total_lost:,} lost; "
        "answers: " + ", ".join(f"{c} {n:,}" for c, n in sorted(codes.items())),
        f"edge: node eu-central ({eu.bind}:{eu.dns_port}, the node's DNS address): dnsdist "
        "1.7 as the agent runs it (packet cache keyed by the client subnet, parseECS, ECS "
        "added from the client's address when the query has none, entries at most 10 s, "
        "one UDP listener) in front of PowerDNS as the agent runs it "
        "(gsqlite3 with DNSSEC + geoip backend, LUA records, edns-subnet-processing, packet "
        "cache-ttl 10, query caches off, 1 receiver + 2 distributor threads) on "
        f"{behind[0]}:{behind[1]}; the 'PowerDNS directly' rows ask that PowerDNS itself, "
        "as every query reached it before dnsdist",
        f"reference: pdns_server on {REFERENCE_ADDRESS} with a hand-written pdns.conf "
        "(launch=gsqlite3; caches and threads at their defaults: packet and query caches 20 s, "
        "1 receiver + 3 distributor threads) serving the non-proxied RRsets of GET /records "
        f"(loaded with pdnsutil load-zone); its {STATIC} answer "
        + ("is identical to the node's in every section" if same else "DIFFERS (see stderr)"),
        f"Lua reference (geo rows): the same hand-written config on {LUA_REFERENCE_ADDRESS} "
        "plus launch=gsqlite3,geoip, enable-lua-records, edns-subnet-processing; the same "
        "RRsets plus the node's LUA record for geo (its text read from the node's PowerDNS "
        f"database) and {TRIVIAL} LUA A \"'192.0.2.1'\"; it answers the 20 client networks "
        f"as the node does for {agree} of 20",
        f"geo: {', '.join(proxied)} proxied: answered by the geoip backend of each node "
        f"(the bench waited {geo_wait:.1f} s for every node to serve it"
        + (
            f"; the ranking database was built in {max(builds):.1f} s"
            if builds
            else "; the ranking database came from the cache"
        )
        + f"); it answers as the LUA record for {many_agree} of the first 200 of the "
        f"{len(many):,} networks; the 20 client networks are "
        f"answered with: {spread_text}; without ECS the client (127.0.0.1) has no location "
        f"and gets every node ({', '.join(everyone)})",
        "from the packet cache: share of the run's queries answered from a packet cache: "
        "dnsdist's for the edge rows (its console: cache-hits / queries before and after), "
        "PowerDNS's for the references and the 'directly' rows (pdns_control show "
        "packetcache-hit / packetcache-miss before and after)",
    ]
    return rows, notes


def bench_propagation(stack: Stack, args: argparse.Namespace) -> tuple[list[list[str]], list[str]]:
    assert stack.api is not None
    nodes = list(stack.nodes.values())
    every: list[float] = []
    first: list[float] = []
    api_ms: list[float] = []
    per_node: dict[str, list[float]] = {a.region: [] for a in nodes}
    polls = 0
    for i in range(args.samples):
        value = f"192.0.2.{100 + i % 150}"
        want = [value]
        t0 = time.perf_counter()
        stack.api.ok("PATCH", f"{INV}/domains/{ZONE}/records",
                     json={"set": [{"name": "upd", "type": "A", "values": [value]}]})  # fmt: skip
        api_ms.append((time.perf_counter() - t0) * 1000)
        pending = {a.region: a for a in nodes}
        while pending:
            for region, a in list(pending.items()):
                polls += 1
                if answers(a.bind, a.dns_port, UPDATED, timeout=0.5) == want:
                    took = (time.perf_counter() - t0) * 1000
                    per_node[region].append(took)
                    if len(pending) == len(nodes):
                        first.append(took)
                    del pending[region]
            if time.perf_counter() - t0 > 300:
                raise RuntimeError(f"{UPDATED} -> {value} not on every node within 5 minutes")
            if pending:
                time.sleep(0.002)
        every.append((time.perf_counter() - t0) * 1000)
        log(f"update {i + 1}/{args.samples}: every node after {every[-1]:.0f} ms "
            f"(API answered after {api_ms[-1]:.0f} ms)")  # fmt: skip
        time.sleep(0.2)
    rows = [
        ["record update -> every node answers it, p50 / p95 / max ms",
         f"{pct(every, 50):.0f} / {pct(every, 95):.0f} / {max(every):.0f}", "", ""],
        ["record update -> first node answers it, p50 / p95 ms",
         f"{pct(first, 50):.0f} / {pct(first, 95):.0f}", "", ""],
        ["PATCH /records: API answer, p50 / p95 ms",
         f"{pct(api_ms, 50):.0f} / {pct(api_ms, 95):.0f}", "", ""],
    ]  # fmt: skip
    for region, vals in per_node.items():
        rows.append([f"record update -> {region} answers it, p50 ms", f"{pct(vals, 50):.0f}",
                     "", ""])  # fmt: skip
    notes = [
        f"propagation: {args.samples} updates of {UPDATED} A (a new value each, 0.2 s apart); "
        "timed from sending the PATCH until each node's PowerDNS answers the new value, "
        f"nodes polled in turn with dnspython over UDP every 2 ms ({polls:,} queries)",
    ]
    return rows, notes


SEEDED = {  # the control plane's seeded coordinates of the three regions
    "eu-central": (50.1109, 8.6821), "us-east": (39.0438, -77.4874),
    "ap-northeast": (35.6762, 139.6503),
}  # fmt: skip


def bench_reload(stack: Stack, args: argparse.Namespace) -> tuple[list[list[str]], list[str]]:
    """The geoip backend's zones file for N auto-configured zones: its size, how long it takes
    to render, and how long PowerDNS takes to read it again (``rediscover``) before it answers
    with it, on a PowerDNS of its own holding the N zones."""
    import threading

    from edgeplane.node.powerdns.geo import default_cache_dir
    from edgeplane.node.powerdns.geozones import render
    from edgeplane.node.powerdns.process import GEO_ZONES, RANKS, PdnsProcess
    from edgeplane.node.powerdns.process import default_geoip_database as source_db
    from edgeplane.routing.georank import RegionPoint, rank_database
    from edgeplane.secrets import SecretBox
    from edgeplane.snapshot.cache import SnapshotCache
    from edgeplane.snapshot.zones import (
        DnsNode,
        DnsState,
        RecordState,
        ZoneState,
        build_geo,
        build_zones,
    )  # fmt: skip
    from edgeplane.snapshot.zones import RegionPoint as ZonePoint

    n = args.reload_zones
    points = {c: ZonePoint(c, la, lo) for c, (la, lo) in SEEDED.items()}
    records = (
        RecordState("@", "A", 300, (), proxied=True),
        RecordState("www", "A", 300, (), proxied=True),
        RecordState("@", "CAA", 3600, ('0 issue "letsencrypt.org"',)),
    )
    zones_state = tuple(
        ZoneState(name=f"z{i}.reload.test", revision=1, token="t", records=records)
        for i in range(n)
    )

    def state(down: str | None) -> DnsState:
        nodes = tuple(
            DnsNode(id=k, name=f"edge-{k}", region=r, address=a, live=r != down)
            for k, r, a in REGIONS
        )
        return DnsState(zones=zones_state, nodes=nodes, regions=points, liveness_revision=1)

    process = PdnsProcess(stack.tmp / "reload-pdns", local_addresses=("127.0.0.7",))
    stack.cleanup.add(process.stop)
    process.start()
    zones = build_zones(state(None))
    with contextlib.closing(sqlite3.connect(process.database)) as db:
        for z in zones:
            cur = db.execute("INSERT INTO domains (name, type) VALUES (?, 'NATIVE')",
                             (z.name.rstrip("."),))  # fmt: skip
            values = [
                (cur.lastrowid, r.name.rstrip("."), r.type, c, r.ttl, 0, 0, 1)
                for r in z.rrsets for c in r.records
            ]  # fmt: skip
            db.executemany(
                "INSERT INTO records (domain_id, name, type, content, ttl, prio, disabled, auth)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", values,
            )  # fmt: skip
        db.commit()
    regions = [RegionPoint(c, la, lo) for c, (la, lo) in sorted(SEEDED.items())]
    started = time.monotonic()
    cache = stack.tmp / "ranks-cache" if not args.quick else default_cache_dir()
    ranks = rank_database(source_db(), regions, cache)
    build_s = time.monotonic() - started
    shutil.copyfile(ranks.path, process.directory / RANKS)
    last = f"z{n - 1}.reload.test"
    london = "81.2.69.142"
    d = str(process.directory)
    rediscover = ["pdns_control", f"--config-dir={d}", f"--socket-dir={d}", "rediscover"]

    # The control plane's part of a change of live nodes, timed apart: its zone cache
    # (``SnapshotCache``) rebuilds the zone specs whose inputs changed, then the geo answers.
    snapshots = SnapshotCache(SecretBox("bench"))
    first = snapshots._zones(state(None))[1]
    cp: dict[str, tuple[float, int, int]] = {}

    def put(down: str | None) -> tuple[float, int]:
        s = state(down)
        built = snapshots.zones_built
        t0 = time.perf_counter()
        refs = snapshots._zones(s)[1]
        geo = build_geo(s)
        changed = sum(refs[z].hash != first[z].hash for z in refs)
        cp[str(down)] = ((time.perf_counter() - t0) * 1000, snapshots.zones_built - built, changed)
        zones = build_zones(s)  # as the node reads them (equal to the cached specs): not timed
        t0 = time.perf_counter()
        out = render(zones, geo, ranks.rankings)
        (process.directory / GEO_ZONES).write_text(out.text)
        return (time.perf_counter() - t0) * 1000, len(out.text)

    # the zones (written behind PowerDNS's back) and a first zones file read: not timed
    put(None)
    subprocess.run(rediscover, capture_output=True, timeout=300)
    wait_for(
        lambda: answers(process.dns_address, process.dns_port, last, ecs=london) == ["127.0.0.2"]
        or None,
        300, f"{last} answered",
    )  # fmt: skip
    figures: dict[str, tuple[float, float, int]] = {}
    for label, down, want in (("eu down", "eu-central", "127.0.0.3"), ("all live", None,
                                                                        "127.0.0.2")):  # fmt: skip
        render_ms, size = put(down)
        t0 = time.perf_counter()
        returned: list[float] = []

        def reload(t0: float = t0, returned: list[float] = returned) -> None:
            # as GeoDnsEngine does: rediscover, then empty dnsdist's cache
            subprocess.run(rediscover, capture_output=True, timeout=300)
            returned.append((time.perf_counter() - t0) * 1000)
            process.purge()

        threading.Thread(target=reload, daemon=True).start()
        while answers(process.dns_address, process.dns_port, last, ecs=london) != [want]:
            if time.perf_counter() - t0 > 300:
                raise RuntimeError(f"{last} not answered {want} within 300 s")
            time.sleep(0.005)
        figures[label] = (render_ms, (time.perf_counter() - t0) * 1000, size)
        log(f"reload of {n:,} zones ({label}): rendered in {render_ms:.0f} ms, "
            f"{size:,} bytes, answered after {figures[label][1]:.0f} ms (rediscover returned "
            f"after {returned[0] if returned else float('nan'):.0f} ms)")  # fmt: skip
    cp_ms = max(c[0] for c in cp.values())
    rebuilt = max(c[1] for c in cp.values())
    changed = max(c[2] for c in cp.values())
    render_ms = max(f[0] for f in figures.values())
    served_ms = max(f[1] for f in figures.values())
    rows = [
        [f"a change of live nodes at {n:,} zones: zone specs rebuilt / zones changed / "
         "control plane ms (zones and geo answers)",
         f"{rebuilt:,} / {changed:,} / {cp_ms:.0f}", "", ""],
        [f"geoip zones file for {n:,} zones: bytes / render ms (on the node)",
         f"{figures['eu down'][2]:,} / {render_ms:.0f}", "", ""],
        [f"geoip zones file for {n:,} zones: written -> answered (rediscover), ms",
         f"{served_ms:.0f}", "", ""],
        ["ranking database (GeoLite2-City, 3 regions): build s",
         f"{build_s:.1f}" if ranks.build_s is not None else f"cached ({build_s:.1f})", "", ""],
    ]  # fmt: skip
    notes = [
        f"reload: {n:,} zones like auto-configured ones (apex and www proxied, a CAA and three "
        "NS at the apex) in a PowerDNS of their own (rows written into its SQLite database), "
        "the zones file rendered from them and put in place twice (all regions live, then "
        "eu-central down); timed from the rediscover until the last zone answers the new "
        "region; geoip lookups wait while PowerDNS reads the file (the packet cache answers)",
        "a change of live nodes (eu-central down, then back) changes no zone, only the geo "
        "answers: the node's whole DNS work is the zones file's render and reload above (no "
        "zone fetched or written); the control plane's part is its zone cache and "
        "``build_geo`` (timed apart, the larger of the two changes)",
    ]
    return rows, notes


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per dnsperf run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=8, help="dnsperf -c")
    ap.add_argument("--threads", type=int, default=1, help="dnsperf -T")
    ap.add_argument("--outstanding", type=int, default=64, help="dnsperf -q")
    ap.add_argument("--samples", type=int, default=20, help="record updates timed")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--reload-zones", type=int, default=10_000,
                    help="zones of the geoip zones-file reload figure")  # fmt: skip
    ap.add_argument("--stages", default="qps,propagation,reload,zones",
                    help="comma-separated: qps, propagation, reload (the stack's), zones (a "
                    "node's DNS apply at --zones zones; bench/dns_zones.py)")  # fmt: skip
    ap.add_argument("--zones", type=int, default=10_000, help="zones of the zones stage")
    ap.add_argument("--bulk-zones", type=int, default=None,
                    help="new zones in one apply, zones stage (default: --zones)")  # fmt: skip
    ap.add_argument("--zone-samples", type=int, default=20,
                    help="applies of one new, changed, removed zone each")  # fmt: skip
    ap.add_argument("--quick", action="store_true",
                    help="the short mode: 1 s runs, one round, 3 updates (about 30 s); the tests "
                    "run it")  # fmt: skip
    args = ap.parse_args()
    if args.quick:
        args.duration, args.rounds, args.samples = 1.0, 1, 3
        args.reload_zones = min(args.reload_zones, 500)
        args.zones, args.zone_samples = min(args.zones, 100), 3
    if args.bulk_zones is None:
        args.bulk_zones = args.zones
    stages = set(args.stages.split(","))
    unknown = stages - {"qps", "propagation", "reload", "zones"}
    if unknown:
        ap.error(f"unknown stages: {', '.join(sorted(unknown))}")
    missing = [b for b in ("dnsperf", "pdns_server", "pdnsutil", "pdns_control", "nginx",
                           "dnsdist")
               if shutil.which(b) is None]  # fmt: skip
    if missing:
        print(f"bench/dns.py needs {', '.join(missing)}: run scripts/bootstrap --with-test",
              file=sys.stderr)  # fmt: skip
        return 2
    run = BenchRun("dns")
    started, tmp, cleanup = run.started, run.tmp, run.cleanup
    rows: list[list[str]] = []
    notes: list[str] = []
    try:
        with signals_raise():
            if stages & {"qps", "propagation", "reload"}:
                stack = Stack(tmp, cleanup)
                log("starting the control plane and three edge nodes with PowerDNS")
                stack.start()
                assert stack.api is not None
                stack.api.ok("POST", f"{INV}/domains",
                             json={"domain": ZONE, "auto_configure": False})  # fmt: skip
                stack.api.ok("PUT", f"{INV}/domains/{ZONE}/records", json={"records": [
                    {"name": "www", "type": "A", "ttl": 300, "values": [STATIC_VALUE]},
                    {"name": "geo", "type": "A", "proxied": True},
                ]})  # fmt: skip
                stack.everywhere(STATIC, [STATIC_VALUE])
            if "qps" in stages:
                log("queries per second (dnsperf), edge and reference interleaved")
                r, n = bench_qps(stack, args)
                rows += r
                notes += n
            if "propagation" in stages:
                log("record propagation")
                r, n = bench_propagation(stack, args)
                rows += r
                notes += n
            if "reload" in stages:
                log("the geoip zones file at scale")
                r, n = bench_reload(stack, args)
                rows += r
                notes += n
            if "zones" in stages:
                log(f"a node's DNS apply at {args.zones:,} zones and at 10")
                r, n = bench_zones(args, tmp, cleanup)
                rows += r
                notes += n
    except KeyboardInterrupt:
        log("interrupted")
        run.close()
        return 130
    finally:
        run.close()
    print(table(rows, args.markdown))
    print()
    for note in notes:
        print(f"- {note}")
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"- cores: {os.cpu_count()}; dnsperf, the three nodes, the reference and the control "
          "plane share them; time for the whole bench: "
          f"{time.monotonic() - started:.0f} s; load average at the end {load}")  # fmt: skip
    if args.quick:
        print("- short mode (--quick): 1 s per dnsperf run, one round, 3 updates")
    return run.status()


if __name__ == "__main__":
    raise SystemExit(main())
