"""L7 DDoS protection on a real nginx with real origins: per-project client limits, the
under-attack switch, and what the edge counts of its refusals (one nginx for the module).

Sites: ``limits.test`` with limits of its own (5 requests at once per client, a 2-s header
timeout, 2 KiB of header, 1 KiB of body), ``open.test`` with none, ``attack.test`` under
attack (the values of ``edgeplane.model.client_limits.UNDER_ATTACK``, as the control plane
computes them). Attackers come from 127.0.0.2, the well-behaved client from 127.0.0.3.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from flood import full_request, hold, measure, partial_header, slowloris
from nginx_edge import Edge, backend, edge_config, pool, running_edge, wait_for
from origins import Origin, start_origin
from prometheus_client import CollectorRegistry, generate_latest

from edgeplane.model.client_limits import UNDER_ATTACK, UNDER_ATTACK_RATE, ClientLimits
from edgeplane.node.agent.analytics import TrafficAggregator
from edgeplane.node.agent.metrics import TrafficCollector
from edgeplane.node.agent.site_totals import SiteTotals
from edgeplane.protocol.config import ClientLimitsSpec, EdgeConfig, RateLimitSpec, SiteSpec
from edgeplane.snapshot.build import client_limits_spec

pytestmark = [pytest.mark.integration, pytest.mark.serial]

LIMITS = ClientLimitsSpec(
    max_connections=5, header_timeout_s=2, max_header_bytes=2048, max_body_bytes=1024
)
ATTACKER = "127.0.0.2"
CLIENT = "127.0.0.3"


def config(*, open_under_attack: bool = False) -> EdgeConfig:
    main = pool("origin.main", backend(ORIGIN[0]))
    attack = client_limits_spec(ClientLimits(), True)
    rate = RateLimitSpec(rate=UNDER_ATTACK_RATE[0], burst=UNDER_ATTACK_RATE[1])
    open_site = SiteSpec(id="p2", domains=("open.test",), pool=main.id)
    if open_under_attack:
        open_site = open_site.model_copy(update={"client_limits": attack, "rate_limit": rate})
    return edge_config(
        [
            SiteSpec(id="p1", domains=("limits.test",), pool=main.id, client_limits=LIMITS),
            open_site,
            SiteSpec(
                id="p3",
                domains=("attack.test",),
                pool=main.id,
                client_limits=attack,
                rate_limit=rate,
            ),
        ],
        [main],
    )


ORIGIN: list[Origin] = []


@pytest.fixture(scope="module")
def edge() -> Iterator[Edge]:
    ORIGIN.append(start_origin("main"))
    try:
        with running_edge(https=False) as e:
            e.apply(config())
            yield e
    finally:
        ORIGIN.pop().terminate()


def port(edge: Edge) -> int:
    return edge.local.http_port


def refusals(edge: Edge) -> dict[str, dict[str, int]]:
    """What the agent's analytics count of the access log so far: site -> reason -> n."""
    totals = SiteTotals()
    aggregator = TrafficAggregator(totals=totals)
    log = Path(edge.local.prefix) / "logs" / "access.json"
    if log.exists():
        aggregator.add_lines([line for line in log.read_bytes().splitlines() if line])
    return {site: dict(c.blocked) for site, c in totals.snapshot()}


def counted(edge: Edge, site: str, reason: str, at_least: int, before: int = 0) -> int:
    """Polls the access log (nginx flushes it every second) until ``site`` has ``at_least``
    more refusals for ``reason`` than ``before``; the count."""
    seen = [0]

    def enough() -> bool:
        seen[0] = refusals(edge).get(site, {}).get(reason, 0)
        return seen[0] - before >= at_least

    wait_for(enough, timeout=10, interval=0.2)
    return seen[0] - before


def post(edge: Edge, host: str, size: int) -> httpx.Response:
    return edge.client().post("/", content=b"x" * size, headers={"Host": host})


def big_header(edge: Edge, host: str, size: int) -> int:
    """A GET with about ``size`` bytes of header (lines of 1,000 bytes): its status."""
    lines = {f"X-Pad-{i}": "a" * 990 for i in range(size // 1000 + 1)}
    return edge.get(host, "/", headers=lines).status_code


def test_slowloris_cut_at_project_timeout(edge: Edge) -> None:
    before = refusals(edge).get("p1", {}).get("timeout", 0)
    cut = slowloris(port(edge), "limits.test", every_s=0.5, limit_s=20)
    print(f"\nslowloris (a header line every 0.5 s) cut after {cut} s (project: 2 s)")
    assert cut is not None, "a slowloris client was never cut"
    assert 1.5 <= cut < 6, cut  # the project's 2 s, not nginx's 60
    assert counted(edge, "p1", "timeout", 1, before) >= 1  # 408, counted for the project


def test_header_and_body_limits_per_project(edge: Edge) -> None:
    before = refusals(edge).get("p1", {}).get("too_large", 0)
    assert big_header(edge, "limits.test", 3000) == 431
    assert big_header(edge, "open.test", 3000) == 200
    assert edge.get("limits.test", "/", headers={"X-Small": "a" * 500}).status_code == 200
    assert post(edge, "limits.test", 2048).status_code == 413
    assert post(edge, "limits.test", 1000).status_code == 200
    assert post(edge, "open.test", 2048).status_code == 200
    # a Content-Length padded with zeros is the same number
    raw = socket.create_connection(("127.0.0.1", port(edge)))
    raw.sendall(b"POST / HTTP/1.1\r\nHost: limits.test\r\nContent-Length: 0002048\r\n\r\n")
    assert raw.recv(64).startswith(b"HTTP/1.1 413")
    raw.close()
    assert counted(edge, "p1", "too_large", 3, before) >= 3


def test_under_attack_tightens(edge: Edge) -> None:
    # attack.test: the under-attack values; open.test: the edge's defaults
    assert UNDER_ATTACK.max_header_bytes == 16 * 1024
    assert big_header(edge, "attack.test", 20000) == 431
    assert big_header(edge, "open.test", 20000) == 200
    eleven_mib = 11 * 1024 * 1024
    assert post(edge, "attack.test", eleven_mib).status_code == 413
    assert post(edge, "open.test", eleven_mib).status_code == 200
    client = edge.client(source=CLIENT)
    codes = [edge.get("attack.test", "/", client).status_code for _ in range(80)]
    assert codes.count(429) > 0 and codes.count(200) >= UNDER_ATTACK_RATE[1], codes
    # the switch on open.test tightens the same site
    edge.apply(config(open_under_attack=True))
    try:
        assert big_header(edge, "open.test", 20000) == 431
        assert post(edge, "open.test", eleven_mib).status_code == 413
        rendered = (edge.local.prefix / "current" / "servers.conf").read_text()
        assert "client_header_timeout 2s;" in rendered  # the tightest of the node's sites
    finally:
        edge.apply(config())
    assert big_header(edge, "open.test", 20000) == 200


def test_thousand_connections_of_one_client_limited(edge: Edge) -> None:
    """1,000 connections from one address: requests held at the origin are refused above the
    project's 5; connections that never finish their header are closed at its 2-s header
    timeout; another client is served meanwhile (its latency printed, not asserted)."""
    p = port(edge)
    measure(p, "limits.test", "/", 20, source=CLIENT)  # warm up
    base = measure(p, "limits.test", "/", 200, source=CLIENT)
    before = refusals(edge).get("p1", {}).get("connection_limit", 0)

    held = hold(p, 1000, full_request("limits.test", "/hold?sleep=3"), source=ATTACKER)
    try:
        during = measure(p, "limits.test", "/", 200, source=CLIENT)
        deadline = time.monotonic() + 10
        while held.statuses().get(503, 0) < 995 and time.monotonic() < deadline:
            held.poll(0.2)
        statuses = held.statuses()
        print(f"\nfull requests held: opened {len(held.socks)}, failed {held.failed}, "
              f"answers {statuses}, still open {held.open_count()}")  # fmt: skip
        assert statuses.get(503, 0) >= 995, statuses  # refused above the project's 5
        assert during.statuses == {200: 200}, during.statuses
    finally:
        held.close()

    slow = hold(p, 1000, partial_header("limits.test"), source=ATTACKER)
    try:
        during_slow = measure(p, "limits.test", "/", 200, source=CLIENT)
        deadline = time.monotonic() + 10
        while len(slow.closed) < len(slow.socks) and time.monotonic() < deadline:
            slow.poll(0.2)
        times = sorted(slow.closed.values())
        print(f"unfinished headers: opened {len(slow.socks)}, failed {slow.failed}, closed "
              f"{len(times)} between {times[0]:.2f} and {times[-1]:.2f} s")  # fmt: skip
        assert len(slow.socks) >= 995
        assert len(times) == len(slow.socks)  # every one closed by the edge
        assert times[0] >= 1.5 and times[-1] < 8  # at the header timeout (2 s)
        assert during_slow.statuses == {200: 200}, during_slow.statuses
    finally:
        slow.close()

    for name, m in (("before", base), ("1,000 held", during), ("1,000 slow", during_slow)):
        print(f"{name:>11}: p50 {m.p50:.2f} ms, p99 {m.p99:.2f} ms")
    refused = counted(edge, "p1", "connection_limit", 995, before)
    assert refused >= 995

    # the node's Prometheus series show the refusals by site and reason
    totals = SiteTotals()
    aggregator = TrafficAggregator(totals=totals)
    log = Path(edge.local.prefix) / "logs" / "access.json"
    aggregator.add_lines(log.read_bytes().splitlines())
    registry = CollectorRegistry()
    registry.register(TrafficCollector(totals))
    text = generate_latest(registry).decode()
    lines = [
        line
        for line in text.splitlines()
        if line.startswith("edgeplane_edge_blocked_requests_total{")
        and 'site="p1"' in line
        and 'reason="connection_limit"' in line
    ]
    assert lines and float(lines[0].split()[-1]) >= 995, lines
