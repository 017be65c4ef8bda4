"""Ten real edge nodes in five regions (``fleet.edge_fleet``: each node its agent, nginx and
PowerDNS in a network namespace of its own), one control plane.

(a) a change reaches every node: a DNS record, then a site (the CDN config of a project)
created and changed; each node's applied revision polled through the API, and what each node
serves checked (its DNS server answers the record, its nginx answers from the new origin); the
propagation over the nodes (commit -> acknowledgement, each node's ``propagation_ms``) is
printed as p50 / p99 / max. (b) a region's two nodes frozen (SIGSTOP to everything in their
namespaces): the GeoDNS answers every other node gives that region's clients (EDNS Client
Subnet) move to the next nearest region within the node timeout plus the liveness interval
plus a propagation allowance, and come back once the nodes run again.

The fleet's start (in parallel) and each node's memory are printed in the first test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from edge_agents import wait_for
from fleet import CLIENTS, REGIONS, Fleet, edge_fleet, percentiles

pytestmark = [pytest.mark.integration, pytest.mark.serial]

INV = "/api/v1/infrastructure"
DOMAIN = "fleet.test"
PER_REGION = 2
NODE_TIMEOUT_S = 3.0  # EDGEPLANE_NODE_TIMEOUT
LIVENESS_INTERVAL_S = 1.0  # the control plane's liveness monitor (settings.liveness_interval_s)
HEARTBEAT_S = 1.0  # the agents' heartbeat interval
PROPAGATION_S = 5.0  # allowance for a change to reach every node (measured: see the prints)


class _Origin(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"{self.server.name} {self.path}\n".encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def fleet(tmp_module: Path) -> Iterator[Fleet]:
    env = {"EDGEPLANE_NODE_TIMEOUT": str(NODE_TIMEOUT_S)}
    with edge_fleet(tmp_module, per_region=PER_REGION, env=env) as f:
        f.api.ok("POST", f"{INV}/domains", json={"domain": DOMAIN})
        yield f


@pytest.fixture(scope="module")
def origins(fleet: Fleet) -> Iterator[dict[str, str]]:
    """Two origins (``one``, ``two``) in the root namespace, where every node reaches them;
    each answers its name and the path."""
    servers = {}
    for name in ("one", "two"):
        server = ThreadingHTTPServer((fleet.gateway, 0), _Origin)
        server.name = name  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers[name] = server
    yield {name: f"http://{fleet.gateway}:{s.server_address[1]}" for name, s in servers.items()}
    for server in servers.values():
        server.shutdown()
        server.server_close()


def propagation(fleet: Fleet, revision: int, what: str, started: float) -> str:
    """Wait until every node applied ``revision``; the figures, as a line to print."""
    docs = fleet.wait_applied(revision, PROPAGATION_S * 4)
    acked_s = time.monotonic() - started
    ms = [d["propagation_ms"] for d in docs.values() if d["applied_revision"] == revision]
    assert ms and all(m is not None and m >= 0 for m in ms), docs
    p50, p99, top = percentiles(ms)
    newer = len(docs) - len(ms)  # seen at a newer revision already (a liveness change)
    return (
        f"{what}: commit -> ack over {len(ms)} nodes"
        + (f" ({newer} more seen at a newer revision)" if newer else "")
        + f": p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {top:.0f} ms; every node acknowledged "
        f"{acked_s:.2f} s after the API call"
    )


def test_a_dns_record_reaches_every_node(fleet: Fleet) -> None:
    sizes = [n.footprint() for n in fleet.nodes]
    programs = sorted({p for s in sizes for p, mib in s.items() if mib > 0.05})
    each = ", ".join(f"{p} {sum(s.get(p, 0.0) for s in sizes) / len(sizes):.1f}" for p in programs)
    total = sum(sum(s.values()) for s in sizes)
    print(
        f"\n{len(fleet.nodes)} nodes in {len(REGIONS)} regions started in parallel, all live and "
        f"in sync in {fleet.started_s:.1f} s; PSS per node, MiB: {each}; the fleet "
        f"{total:.0f} MiB"
    )
    assert {n.region for n in fleet.nodes} == set(REGIONS)
    assert len({n.address for n in fleet.nodes}) == len(fleet.nodes)

    started = time.monotonic()
    fleet.api.ok(
        "PATCH",
        f"{INV}/domains/{DOMAIN}/records",
        json={"set": [{"name": "probe", "type": "A", "ttl": 30, "values": ["192.0.2.77"]}]},
    )
    revision = fleet.revision()
    line = propagation(fleet, revision, "a DNS record", started)

    everyone = {n.name: ["192.0.2.77"] for n in fleet.nodes}
    fleet.wait_answers(f"probe.{DOMAIN}", None, everyone, PROPAGATION_S)
    print(f"{line}; every node's DNS server answering it {time.monotonic() - started:.2f} s after")


def test_a_site_and_its_change_reach_every_node(fleet: Fleet, origins: dict[str, str]) -> None:
    def site(origin: str) -> dict[str, Any]:
        return {
            "origins": [{"url": origins[origin]}],
            "cache_rules": [{"pattern": "/*", "ttl": 0, "bypass": True}],
            "security": {"force_https": False},
        }

    for origin, what in (("one", "a new site"), ("two", "the site's origin changed")):
        started = time.monotonic()
        doc = fleet.api.ok("POST", f"{INV}/cdn", json=site(origin))
        line = propagation(fleet, int(doc["cdn_deployment"]["revision"]), what, started)

        def served(o: str = origin) -> bool:
            return all(n.get(DOMAIN, "/p").text == f"{o} /p\n" for n in fleet.nodes)

        wait_for(served, PROPAGATION_S, f"every node serving {DOMAIN} from origin {origin}")
        print(f"{line}; every node serving it {time.monotonic() - started:.2f} s after")
    for node in fleet.nodes:
        r = node.get(DOMAIN, "/who")
        assert r.headers["x-served-by"] == node.name and r.text == "two /who\n"


def test_a_stopped_region_moves_its_clients_and_they_come_back(fleet: Fleet) -> None:
    region, fallback = "eu-central", "us-east"  # London's nearest, then its next nearest
    client = CLIENTS[region]
    by_region = {r: sorted(n.address for n in fleet.in_region(r)) for r in REGIONS}
    everyone = [n.name for n in fleet.nodes]
    others = [n.name for n in fleet.nodes if n.region != region]

    # Every node answers the zone from its geoip backend, which knows liveness: a new zone is
    # answered by its LUA records (from every node, live or not) until the nodes had 5 s
    # without a change (the earlier tests' changes); on a machine's first run, the nodes
    # build the ranking database of the five regions first.
    wait_for(lambda: all(n.geo_serves(DOMAIN) for n in fleet.nodes), 300, "geo answers")
    # Every region's clients get their own region's nodes, from every node.
    for r, network in CLIENTS.items():
        fleet.wait_answers(DOMAIN, network, dict.fromkeys(everyone, by_region[r]), 5)

    stopped = [n.name for n in fleet.in_region(region)]
    budget = NODE_TIMEOUT_S + LIVENESS_INTERVAL_S + PROPAGATION_S
    with fleet.watch_live(stopped, live=False) as detected:
        frozen = time.monotonic()
        for node in fleet.in_region(region):
            node.freeze()
        try:
            fleet.wait_answers(DOMAIN, client, dict.fromkeys(others, by_region[fallback]), budget)
        except AssertionError as exc:
            seen = f"after {detected[0]:.2f} s" if detected else "not yet"
            raise AssertionError(f"the API showed them not live: {seen}; {exc}") from None
        moved_s = time.monotonic() - frozen
    for r, network in CLIENTS.items():  # the other regions' clients answered as before
        if r != region:
            fleet.wait_answers(DOMAIN, network, dict.fromkeys(others, by_region[r]), 0.5)

    back = HEARTBEAT_S + PROPAGATION_S
    with fleet.watch_live(stopped, live=True) as returned:
        thawed = time.monotonic()
        for node in fleet.in_region(region):
            node.thaw()
        fleet.wait_answers(DOMAIN, client, dict.fromkeys(everyone, by_region[region]), back)
        back_s = time.monotonic() - thawed
    print(
        f"\n{region}'s {len(stopped)} nodes frozen: not live in the API after "
        f"{detected[0] if detected else float('nan'):.2f} s, its clients answered with "
        f"{fallback} by the {len(others)} other nodes after {moved_s:.2f} s (node timeout "
        f"{NODE_TIMEOUT_S:.0f} s, bound {budget:.0f} s); running again: live after "
        f"{returned[0] if returned else float('nan'):.2f} s, back on {region} by every node "
        f"after {back_s:.2f} s (bound {back:.0f} s)"
    )
