"""The ``zones`` stage of ``bench/dns.py``: a node's DNS apply at N zones (10,000) beside 10.

On one real PowerDNS (with its dnsdist in front and the geoip backend holding the zones' geo
answers, as on a node) driven by the node's own ``GeoDnsEngine``, for each zone count: the
zones written at start (an empty database: by SQL), the geo answers put in place, then the
apply (``DnsEngine.apply_refs``, by reference as the agent applies) of one new zone, one
changed zone and one removed zone (``--zone-samples`` each, p50 / p99), each followed by the
agent's geo update (``apply_geo_refs``, whose work is waited for between samples, untimed), and
new zones again one every GAP_S with the geo work left running (as the agent meets them);
then ``--bulk-zones`` (N) new zones in one apply into the running server, timed until the apply
returns, every one of them then checked served (SOA serial over DNS), and the same number
minus one of BULK_MIN new zones through the API (the path below BULK_MIN), per zone. Zones
are like auto-configured ones (``edgeplane.snapshot.zones.build_zones``: apex and www proxied
through LUA, a CAA, three NS).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from common import Cleanup, log, pct

from edgeplane.node.powerdns.engine import BULK_MIN, DnsApplyResult, soa_serial
from edgeplane.node.powerdns.geo import GeoDnsEngine, default_cache_dir
from edgeplane.node.powerdns.process import PdnsProcess
from edgeplane.protocol.config import GeoDnsSpec, ZoneSpec, canonical_body, object_hash
from edgeplane.snapshot.zones import (
    DnsNode,
    DnsState,
    RecordState,
    RegionPoint,
    ZoneState,
    build_geo,
    build_zones,
)

SEEDED = {  # the control plane's seeded coordinates of the three regions
    "eu-central": (50.1109, 8.6821),
    "us-east": (39.0438, -77.4874),
    "ap-northeast": (35.6762, 139.6503),
}
NODES = (  # as bench/dns.py's nodes: the same ranking database (cached after its first build)
    ("eu", "eu-central", "127.0.0.2"),
    ("us", "us-east", "127.0.0.3"),
    ("ap", "ap-northeast", "127.0.0.4"),
)
GAP_S = 0.5  # between the paced applies of one new zone
RECORDS = (
    RecordState("@", "A", 300, (), proxied=True),
    RecordState("www", "A", 300, (), proxied=True),
    RecordState("@", "CAA", 3600, ('0 issue "letsencrypt.org"',)),
)


def zones_of(names: list[str], revision: int = 1) -> tuple[tuple[ZoneSpec, ...], GeoDnsSpec]:
    points = {c: RegionPoint(c, la, lo) for c, (la, lo) in SEEDED.items()}
    nodes = tuple(DnsNode(k, f"edge-{k}", r, a, True) for k, r, a in NODES)
    state = DnsState(
        zones=tuple(ZoneState(n, revision, "t", RECORDS) for n in names),
        nodes=nodes,
        regions=points,
        liveness_revision=1,
    )
    return build_zones(state), build_geo(state)


class _Node:
    """One PowerDNS and its engine, zones held by reference as the agent holds them."""

    def __init__(self, directory: Path, cleanup: Cleanup) -> None:
        self.process = PdnsProcess(directory, local_addresses=("127.0.0.8",))
        self.engine = GeoDnsEngine(self.process, cache_dir=default_cache_dir())
        cleanup.add(self.engine.stop)
        self.store: dict[str, ZoneSpec] = {}
        self.refs: dict[str, str] = {}
        self.geo: GeoDnsSpec | None = None

    def put(self, zones: tuple[ZoneSpec, ...]) -> None:
        for zone in zones:
            digest = object_hash(canonical_body(zone.model_dump(mode="json")))
            self.store[digest] = zone
            self.refs[zone.name] = digest

    def apply(self) -> DnsApplyResult:
        result = self.engine.apply_refs(dict(self.refs), self.store.__getitem__)
        if not result.ok:
            raise RuntimeError(f"DNS apply refused: {result.error}")
        assert self.geo is not None
        refs, load = dict(self.refs), self.store.__getitem__
        by_refs = getattr(self.engine, "apply_geo_refs", None)  # absent before 2026-12-03
        if by_refs is not None:
            by_refs(refs, load, self.geo)
        else:  # every zone read again, as the agent did
            self.engine.apply_geo(lambda: (load(h) for h in refs.values()), self.geo)
        return result

    def settle(self) -> None:
        if not self.engine.wait_idle(600):
            raise RuntimeError("the geo answers were not put in place within 600 s")

    def served(self, zone: ZoneSpec) -> bool:
        p = self.process
        return soa_serial(p.dns_address, p.dns_port, zone.name) == zone.serial


def _samples(node: _Node, count: int, step: Callable[[int], None]) -> list[float]:
    """``count`` applies after ``step(i)`` changed the zones; ms each (the apply's own)."""
    out: list[float] = []
    for i in range(count):
        node.settle()  # the previous sample's geo work done (untimed)
        step(i)
        out.append(node.apply().duration_ms)
    node.settle()
    return out


def measure(n: int, bulk: int, samples: int, tmp: Path, cleanup: Cleanup) -> dict[str, str]:
    node = _Node(tmp / f"zones-{n}", cleanup)
    zones, node.geo = zones_of([f"z{i}.zones.test" for i in range(n)])
    node.put(zones)
    t0 = time.monotonic()
    node.apply()  # not running yet, empty database: by SQL
    node.settle()
    took = time.monotonic() - t0
    log(f"zones {n:,}: started with {n:,} zones and their geo answers in {took:.1f} s")
    figures: dict[str, str] = {}
    geo = node.engine.status

    def add(i: int) -> None:
        node.put(zones_of([f"new{i}.zones.test"])[0])

    new = _samples(node, samples, add)
    figures["new"] = f"{statistics.median(new):.0f} / {pct(new, 99):.0f}"
    # as the agent meets them: one every GAP_S, the geo work of the last in the background
    paced: list[float] = []
    for i in range(samples):
        add(samples + i)
        paced.append(node.apply().duration_ms)
        time.sleep(GAP_S)
    node.settle()
    figures["paced"] = f"{statistics.median(paced):.0f} / {pct(paced, 99):.0f}"
    figures["new_geo"] = f"{getattr(geo, 'loaded', 'all')}"  # absent before 2026-12-03
    files = geo.generation

    def change(i: int) -> None:
        name = f"z{i % n}.zones.test"
        node.put(zones_of([name], revision=2 + i)[0])

    changed = _samples(node, samples, change)
    figures["changed"] = f"{statistics.median(changed):.0f} / {pct(changed, 99):.0f}"
    figures["changed_geo"] = f"{getattr(geo, 'loaded', 'all')} / {geo.generation - files}"

    def remove(i: int) -> None:  # the zones the first samples added
        del node.refs[f"new{i}.zones.test."]

    removed = _samples(node, samples, remove)
    figures["removed"] = f"{statistics.median(removed):.0f} / {pct(removed, 99):.0f}"

    burst, _ = zones_of([f"b{i}.burst.test" for i in range(bulk)])
    node.put(burst)
    result = node.apply()
    missing = sum(1 for z in burst if not node.served(z))
    figures["bulk"] = f"{result.duration_ms / 1000:.1f}"
    figures["bulk_missing"] = f"{missing}"
    log(f"zones {n:,}: {bulk:,} new zones in {result.duration_ms:.0f} ms, {missing} not served")
    node.settle()

    few, _ = zones_of([f"a{i}.api.test" for i in range(BULK_MIN - 1)])
    node.put(few)
    result = node.apply()
    figures["api"] = f"{result.duration_ms / len(few):.0f}"
    node.settle()
    node.engine.stop()
    return figures


def bench_zones(
    args: argparse.Namespace, tmp: Path, cleanup: Cleanup
) -> tuple[list[list[str]], list[str]]:
    n, bulk, samples = args.zones, args.bulk_zones, args.zone_samples
    load = []
    big = measure(n, bulk, samples, tmp, cleanup)
    load.append(os.getloadavg()[0])
    small = measure(10, bulk, samples, tmp, cleanup)
    load.append(os.getloadavg()[0])

    def row(label: str, key: str) -> list[str]:
        a, b = big[key], small[key]
        try:
            ratio = f"{float(a.split()[0]) / float(b.split()[0]):.1f}"
        except (ValueError, ZeroDivisionError):
            ratio = ""
        return [label, a, b, ratio]

    rows = [
        row(f"apply of one new zone among {n:,} (vs 10), p50 / p99 ms ({samples})", "new"),
        row(
            f"the same, one every {GAP_S} s, geo work in the background (the agent's way)", "paced"
        ),
        row(f"apply of one changed zone among {n:,} (vs 10), p50 / p99 ms", "changed"),
        row(f"apply of one removed zone among {n:,} (vs 10), p50 / p99 ms", "removed"),
        row("geo after a new zone: zones read", "new_geo"),
        row("geo after a changed zone: zones read / zones files written", "changed_geo"),
        row(f"{bulk:,} new zones into a running server with {n:,} (vs 10): apply s", "bulk"),
        row(f"{bulk:,} new zones: not served after the apply", "bulk_missing"),
        row(f"{BULK_MIN - 1} new zones through the API: ms per zone", "api"),
    ]
    notes = [
        f"zones: one PowerDNS (dnsdist in front, the geoip backend holding the zones' geo "
        f"answers) driven by the node's GeoDnsEngine; {samples} applies each, the geo work "
        "of each waited for before the next (untimed); new zones wait for a quiet moment "
        "before the geo zones file takes them (their LUA records answer meanwhile); load "
        f"average after the {n:,}-zone and the 10-zone runs: {load[0]:.2f} / {load[1]:.2f}",
    ]
    return rows, notes
