"""Costs end to end: a real control plane, two real edge nodes in two regions and a real origin.
Requests of known size go through each node for two domains; the bytes each node put on the
wire (counted by the test on its sockets: nginx's ``$bytes_sent``) reach the control plane as
analytics, and ``GET /api/v1/costs`` prices them, per domain and region, exactly as the test
does by hand with the model it set (what the nodes served before, their own uptime checks of
each domain, is read first and counted in). A budget whose 80 % that traffic crosses raises
its 50 % and 80 % alerts through the control plane's own budget job (every second here,
``EDGEPLANE_BUDGET_INTERVAL``)."""

from __future__ import annotations

import math
import socket
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from edge_agents import Api, EdgeAgent, new_agent, wait_for
from origins import OriginSet, origin_set
from processes import ControlPlane, clean_env, start_up

pytestmark = pytest.mark.integration

DOMAINS = ("shop.localhost", "img.localhost")
# Body sizes per (node, domain), all different, and requests of each.
SIZES = {
    ("edge-eu", "shop.localhost"): 20_000,
    ("edge-eu", "img.localhost"): 5_000,
    ("edge-us", "shop.localhost"): 12_000,
    ("edge-us", "img.localhost"): 3_000,
}
REQUESTS = 5
PRICE = Fraction(1, 100_000)  # per byte: a cent per 1,000 bytes
# A "GB" of one byte: a line's quantity is its bytes.
MODEL = {"gb_bytes": 1, "cdn_free_gb_month": 0, "cdn_per_gb": float(PRICE)}


@pytest.fixture(scope="module")
def cp(tmp_module: Path) -> Iterator[ControlPlane]:
    cp = start_up(tmp_module / "cp", env=clean_env(EDGEPLANE_BUDGET_INTERVAL="1"))
    yield cp
    cp.stop()


@pytest.fixture(scope="module")
def nodes(cp: ControlPlane, admin: Api, tmp_module: Path) -> Iterator[dict[str, EdgeAgent]]:
    agents = {
        name: new_agent(cp, admin, tmp_module, name, region=region, analytics_interval=0.5).start()
        for name, region in (("edge-eu", "eu-central"), ("edge-us", "us-east"))
    }
    try:
        wait_for(
            lambda: (
                {n["name"] for n in admin.nodes() if n["applied_revision"] is not None}
                >= set(agents)
            ),
            30,
            "both nodes registered and applied",
        )
        yield agents
    finally:
        for agent in agents.values():
            agent.stop()


@pytest.fixture(scope="module")
def origins() -> Iterator[OriginSet]:
    with origin_set() as s:
        yield s


@pytest.fixture(scope="module")
def site(admin: Api, origins: OriginSet, nodes: dict[str, EdgeAgent]) -> None:
    """Both domains behind the origin, served by both nodes (no request sent: every byte
    through the nodes is the test's own)."""
    origin = origins.start("app")
    for domain in DOMAINS:
        admin.ok("POST", "/api/v1/infrastructure/domains", json={"domain": domain})
    body = {"origins": [{"url": origin.url}], "security": {"force_https": False}}
    revision = admin.ok("POST", "/api/v1/infrastructure/cdn", json=body)["cdn_deployment"][
        "revision"
    ]
    wait_for(
        lambda: all(
            (n["applied_revision"] or 0) >= revision for n in admin.nodes() if n["name"] in nodes
        ),
        30,
        f"revision {revision} applied by both nodes",
    )


def fetch(node: EdgeAgent, host: str, size: int) -> int:
    """One request for ``size`` bytes of body; the bytes the node sent, headers included."""
    request = f"GET /file?bytes={size} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", node.http_port), timeout=10) as s:
        s.sendall(request.encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.split()[1] == b"200", head
    assert len(body) == size
    return len(data)


def quantities(report: dict[str, Any]) -> dict[tuple[str, str], int]:
    """(domain, region) -> the bytes of its line (a "GB" is a byte here)."""
    return {(ln["domain"], ln["region"]): int(ln["quantity"]) for ln in report["lines"]}


def settled(admin: Api) -> dict[tuple[str, str], int]:
    """What the nodes have reported before the test's requests, once it stops changing: each
    node checks every domain it serves through itself (``node.agent.uptime``) as soon as it
    serves it. Two reads 2 s apart that agree, the first when every domain has traffic in
    both regions or 8 s after the start."""
    start = time.monotonic()
    last: dict[tuple[str, str], int] | None = None
    while time.monotonic() - start < 30:
        now = quantities(admin.ok("GET", "/api/v1/costs"))
        if now == last and (len(now) == len(SIZES) or time.monotonic() - start > 8):
            return now
        last = now
        time.sleep(2)
    raise AssertionError(f"the traffic reported before the test's own never settled: {last}")


def split_cents(total: int, weights: list[int]) -> list[int]:
    """``total`` cents in proportion to ``weights`` by largest remainder (ties: first)."""
    whole = sum(weights)
    exact = [Fraction(total * w, whole) for w in weights]
    parts = [math.floor(e) for e in exact]
    order = sorted(range(len(weights)), key=lambda i: -(exact[i] - parts[i]))
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts


def test_measured_traffic_is_priced_per_domain_and_region_and_alerts_a_budget(
    cp: ControlPlane, admin: Api, nodes: dict[str, EdgeAgent], site: None
) -> None:
    assert admin.ok("PUT", "/api/v1/costs/model", json=MODEL)["gb_bytes"] == 1
    regions = {"edge-eu": "eu-central", "edge-us": "us-east"}
    before = settled(admin)
    sent: dict[tuple[str, str], int] = defaultdict(int)  # (domain, region) -> bytes
    for (name, domain), size in SIZES.items():
        for _ in range(REQUESTS):
            sent[(domain, regions[name])] += fetch(nodes[name], domain, size)
    for (name, domain), size in SIZES.items():
        assert sent[(domain, regions[name])] > REQUESTS * size  # bodies and headers
    measured = {k: before.get(k, 0) + sent[k] for k in sent}

    def arrived() -> dict[str, Any] | None:
        doc: dict[str, Any] = admin.ok("GET", "/api/v1/costs")
        assert quantities(doc) == measured, quantities(doc)  # (the last one is shown)
        return doc

    report = wait_for(arrived, 30, "the nodes' analytics priced", every=0.5)

    # By hand: the cost of every byte, the total rounded half up to the cent, the lines its
    # split by bytes in whole cents (in the report's order: domain, then region).
    keys = sorted(measured)
    total = sum(measured.values())
    total_cents = math.floor(total * PRICE * 100 + Fraction(1, 2))
    line_cents = dict(zip(keys, split_cents(total_cents, [measured[k] for k in keys]), strict=True))
    assert report["month_to_date"] == total_cents / 100
    assert [(ln["domain"], ln["region"], ln["month_to_date"]) for ln in report["lines"]] == [
        (domain, region, line_cents[(domain, region)] / 100) for domain, region in keys
    ]
    assert all(ln["service"] == "cdn" and ln["unit"] == "GB" for ln in report["lines"])
    for region in regions.values():
        cents = sum(c for (_, r), c in line_cents.items() if r == region)
        assert report["by_region"][region]["month_to_date"] == cents / 100
    for domain in DOMAINS:
        cents = sum(c for (d, _), c in line_cents.items() if d == domain)
        assert report["by_domain"][domain]["month_to_date"] == cents / 100
    assert report["by_service"]["cdn"]["month_to_date"] == total_cents / 100
    assert report["forecast"] >= report["month_to_date"]

    # A budget the month's spending has taken past 80 % (and not to 100 %).
    amount = math.ceil(total_cents / Fraction(85, 100)) / 100
    assert amount * 80 <= total_cents < amount * 100
    admin.ok("POST", "/api/v1/costs/budgets", json={"id": "monthly", "amount": amount})
    month = datetime.now(UTC).strftime("%Y-%m")

    def alerted() -> list[tuple[str, str, str]] | None:
        alerts = admin.ok("GET", "/api/v1/alerts?kind=budget")
        keys = sorted((a["object_id"], a["key"], a["severity"]) for a in alerts)
        return keys if len(keys) >= 2 else None

    assert wait_for(alerted, 15, "the budget's alerts", every=0.25) == [
        ("default/monthly", f"{month}:50", "warning"),
        ("default/monthly", f"{month}:80", "warning"),
    ]
    budget = admin.ok("GET", "/api/v1/costs/budgets/monthly")
    assert (budget["alerted"], budget["reached"]) == ([50, 80], 80)
    assert budget["month_to_date"] == total_cents / 100
