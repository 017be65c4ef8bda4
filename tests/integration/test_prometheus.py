"""Prometheus exposition end to end: a real Prometheus server (Debian's) scrapes a real control
plane and two real edge nodes; PromQL sees the traffic the test sent. ``promtool check metrics``
finds no problem in any exposition."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from edge_agents import Api, EdgeAgent, new_agent, wait_for
from origins import OriginSet, origin_set
from processes import ControlPlane, free_port, free_udp_port, start_up
from prometheus_client.parser import text_string_to_metric_families

pytestmark = [pytest.mark.integration, pytest.mark.serial]

SCRAPE_S = 1


@pytest.fixture(scope="module")
def cp(tmp_module: Path) -> Iterator[ControlPlane]:
    cp = start_up(tmp_module / "cp")
    yield cp
    cp.stop()


@pytest.fixture(scope="module")
def scrape_token(cp: ControlPlane) -> str:
    """The metrics token ``edgeplane up`` made; the nodes are given it too."""
    return (cp.home / "metrics-token").read_text().strip()


@pytest.fixture(scope="module")
def nodes(
    cp: ControlPlane, admin: Api, tmp_module: Path, scrape_token: str
) -> Iterator[list[EdgeAgent]]:
    token_file = cp.home / "metrics-token"
    agents = [
        new_agent(
            cp,
            admin,
            tmp_module,
            name,
            region=region,
            dns_port=dns_port,
            extra_args=["--metrics-token-file", str(token_file)],
        ).start()
        for name, region, dns_port in (
            ("edge-eu", "eu-central", free_udp_port()),
            ("edge-us", "us-east", 0),
        )
    ]
    try:
        wait_for(
            lambda: (
                {n["name"] for n in admin.nodes() if n["applied_revision"] is not None}
                >= {"edge-eu", "edge-us"}
            ),
            30,
            "both nodes registered and applied",
        )
        yield agents
    finally:
        for agent in agents:
            agent.stop()


@pytest.fixture(scope="module")
def origins() -> Iterator[OriginSet]:
    with origin_set() as s:
        yield s


@pytest.fixture(scope="module")
def sites(admin: Api, origins: OriginSet, nodes: list[EdgeAgent]) -> dict[str, str]:
    """Two projects with a domain each, cached; site id -> domain."""
    out = {}
    for project, domain in (("shop", "shop.localhost"), ("blog", "blog.localhost")):
        api = admin.in_project(project)
        origin = origins.start(project)
        api.ok("POST", "/api/v1/infrastructure/domains", json={"domain": domain})
        body = {
            "origins": [{"url": origin.url}],
            "cache_rules": [{"pattern": "/static/*", "ttl": 300}],
            "security": {"force_https": False},
        }
        api.ok("POST", "/api/v1/infrastructure/cdn", json=body)
        for agent in nodes:
            wait_for(
                lambda agent=agent, domain=domain: agent.get(domain, "/").status_code == 200,
                15,
                f"{domain} served by {agent.name}",
            )
        out[project] = domain
    return out


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def settled(node: EdgeAgent, token: str) -> str:
    """The node's exposition once the requests sent so far are counted (the agent reads the
    access log every second): two scrapes 1.5 s apart that count the same."""
    last = node.scrape(token).text
    while True:
        time.sleep(1.5)
        text = node.scrape(token).text
        if value(text, "edgeplane_edge_requests_total") == value(
            last, "edgeplane_edge_requests_total"
        ):
            return text
        last = text


def promtool(body: bytes) -> None:
    done = subprocess.run(
        ["promtool", "check", "metrics"], input=body, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


# The edge node's metrics port ---------------------------------------------------------------


def test_the_metrics_port_needs_the_token(nodes: list[EdgeAgent], scrape_token: str) -> None:
    node = nodes[0]
    url = f"http://127.0.0.1:{node.metrics_port}/metrics"
    assert httpx.get(url, timeout=5).status_code == 401
    bad = httpx.get(url, headers={"Authorization": "Bearer nope"}, timeout=5)
    assert bad.status_code == 401
    assert httpx.get(url.replace("/metrics", "/"), timeout=5).status_code == 404
    assert node.scrape(scrape_token).status_code == 200
    assert "metrics http://127.0.0.1:" in node.output()  # printed at start


def test_edge_metrics_count_the_traffic(
    nodes: list[EdgeAgent], sites: dict[str, str], scrape_token: str
) -> None:
    node = nodes[1]
    domain = sites["shop"]
    before = settled(node, scrape_token)
    sent = sum(len(node.get(domain, "/static/a.css").content) for _ in range(5))
    node.get(domain, "/")  # not cached: to the origin
    total = 6

    def counted() -> str | None:
        text = node.scrape(scrape_token).text
        got = value(text, "edgeplane_edge_requests_total", site="shop") - value(
            before, "edgeplane_edge_requests_total", site="shop"
        )
        return text if got >= total else None

    text = wait_for(counted, 10, "the requests counted")
    assert (
        value(text, "edgeplane_edge_requests_total", site="shop")
        - value(before, "edgeplane_edge_requests_total", site="shop")
        == total
    )
    assert (
        value(text, "edgeplane_edge_requests_total", site="shop", cache="HIT")
        - value(before, "edgeplane_edge_requests_total", site="shop", cache="HIT")
        >= 4
    )
    got_bytes = value(text, "edgeplane_edge_sent_bytes_total", site="shop") - value(
        before, "edgeplane_edge_sent_bytes_total", site="shop"
    )
    assert got_bytes > sent  # bodies and headers
    assert value(text, "edgeplane_edge_upstream_duration_seconds_count", site="shop") >= 1
    assert value(text, "edgeplane_edge_apply_duration_seconds_count", outcome="ok") >= 1
    assert value(text, "edgeplane_edge_revision", state="served") >= 1
    assert value(text, "process_resident_memory_bytes") > 10 << 20
    promtool(node.scrape(scrape_token).content)


def test_backend_health_per_pool(
    nodes: list[EdgeAgent], admin: Api, origins: OriginSet, scrape_token: str
) -> None:
    api = admin.in_project("pools")
    a, b = origins.start("pa"), origins.start("pb")
    lb = api.ok(
        "POST",
        "/api/v1/infrastructure/loadbalancer",
        json={
            "name": "web",
            "algorithm": "round_robin",
            "backends": [{"address": a.address}, {"address": b.address}],
            "health_check": {
                "path": "/",
                "interval_s": 1,
                "timeout_s": 0.5,
                "healthy_threshold": 1,
                "unhealthy_threshold": 1,
            },
        },
    )
    api.ok("POST", "/api/v1/infrastructure/domains", json={"domain": "pools.localhost"})
    api.ok(
        "POST",
        "/api/v1/infrastructure/cdn",
        json={"origins": [{"load_balancer": lb["id"]}], "security": {"force_https": False}},
    )
    b.terminate()
    node = nodes[0]

    def states() -> dict[str, float] | None:
        out = {}
        for family in text_string_to_metric_families(node.scrape(scrape_token).text):
            for s in family.samples:
                if s.name == "edgeplane_edge_backend_up" and s.labels["pool"].startswith(
                    "lb.pools."
                ):
                    out[s.labels["backend"]] = s.value
        return out if sorted(out.values()) == [0.0, 1.0] else None

    got = wait_for(states, 20, f"backend states of {lb['id']}")
    assert len(got) == 2


def test_dns_server_counters_are_passed_on(nodes: list[EdgeAgent], scrape_token: str) -> None:
    text = nodes[0].scrape(scrape_token).text
    assert value(text, "edgeplane_edge_dns_metrics_up") == 1
    names = families(text)
    assert any(name.startswith("pdns_auth_") for name in names), sorted(names)[:20]
    # the node without a DNS server says nothing of one
    assert "edgeplane_edge_dns_metrics_up" not in nodes[1].scrape(scrape_token).text


# The control plane --------------------------------------------------------------------------


def test_control_plane_metrics_see_the_nodes(
    cp: ControlPlane, nodes: list[EdgeAgent], sites: dict[str, str], scrape_token: str
) -> None:
    r = httpx.get(
        f"{cp.url}/metrics", headers={"Authorization": f"Bearer {scrape_token}"}, timeout=10
    )
    assert r.status_code == 200
    text = r.text
    assert value(text, "edgeplane_edge_nodes") >= 2
    assert value(text, "edgeplane_edge_node_live", node="edge-eu") == 1
    assert value(text, "edgeplane_node_propagation_seconds_count") >= 2
    assert value(text, "edgeplane_background_job_runs_total", job="liveness") >= 1
    assert (
        value(text, "edgeplane_api_requests_total", route="/api/v1/edge/nodes/{node_id}/ack") >= 2
    )
    promtool(r.content)


# A real Prometheus --------------------------------------------------------------------------


class Prometheus:
    def __init__(self, home: Path, targets: dict[str, tuple[str, str]], token: str) -> None:
        """``targets``: job -> (host:port, scheme-less path) scraped every second with
        ``token``."""
        home.mkdir(parents=True, exist_ok=True)
        (home / "token").write_text(token)
        jobs = []
        for job, (address, path) in targets.items():
            jobs.append(
                f"""  - job_name: {job}
    metrics_path: {path}
    authorization:
      credentials_file: {home / "token"}
    static_configs:
      - targets: ["{address}"]
"""
            )
        (home / "prometheus.yml").write_text(
            f"global:\n  scrape_interval: {SCRAPE_S}s\n  scrape_timeout: {SCRAPE_S}s\n"
            "scrape_configs:\n" + "".join(jobs)
        )
        done = subprocess.run(
            ["promtool", "check", "config", str(home / "prometheus.yml")],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (home / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={home / 'prometheus.yml'}",
                f"--storage.tsdb.path={home / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self.ready, 30, "prometheus ready", every=0.2)

    def ready(self) -> bool:
        return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": promql, **({"time": str(at)} if at is not None else {})}
        r = httpx.get(f"{self.url}/api/v1/query", params=params, timeout=10)
        assert r.status_code == 200, r.text
        return list(r.json()["data"]["result"])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(20)
        self.log.close()


@pytest.fixture
def prometheus(
    cp: ControlPlane, nodes: list[EdgeAgent], scrape_token: str, tmp_module: Path
) -> Iterator[Prometheus]:
    targets = {
        "control-plane": (cp.url.removeprefix("http://"), "/metrics"),
        **{n.name: (f"127.0.0.1:{n.metrics_port}", "/metrics") for n in nodes},
    }
    p = Prometheus(tmp_module / "prometheus", targets, scrape_token)
    yield p
    p.stop()


def test_prometheus_sees_the_request_rate_per_site(
    prometheus: Prometheus, nodes: list[EdgeAgent], sites: dict[str, str]
) -> None:
    for job in ("control-plane", "edge-eu", "edge-us"):
        wait_for(
            lambda job=job: [
                r for r in prometheus.query(f'up{{job="{job}"}}') if r["value"][1] == "1"
            ],
            20,
            f"{job} scraped",
            every=0.5,
        )
    # Every series exists before the measured traffic: a series appearing mid-window is not
    # an increase from 0 for PromQL, and the counter is by cache status too, so each site is
    # fetched twice on each node (a MISS, then a HIT).
    for node in nodes:
        for domain in sites.values():
            for _ in range(2):
                node.get(domain, "/static/warm.css")
    by_cache = "sum by (site, job, cache) (edgeplane_edge_requests_total)"
    wait_for(
        lambda: {
            (r["metric"]["site"], r["metric"]["job"], r["metric"]["cache"])
            for r in prometheus.query(by_cache)
        }
        >= {(s, n.name, c) for s in sites for n in nodes for c in ("MISS", "HIT")},
        20,
        "every site's MISS and HIT series scraped on both nodes",
        every=0.5,
    )
    time.sleep(3 * SCRAPE_S)  # flat samples before the traffic
    start = time.time()
    sent = {"shop": 0, "blog": 0}
    plan = [("shop", nodes[0], 300), ("shop", nodes[1], 150), ("blog", nodes[1], 90)]
    deadline = time.monotonic() + 10.0  # spread over 10 s: several scrapes see it rise
    with httpx.Client(timeout=10) as client:
        for i in range(max(n for *_, n in plan)):
            for site, node, n in plan:
                if i < n:
                    r = client.get(f"{node.url}/static/{i % 20}.css", headers={"Host": sites[site]})
                    assert r.status_code == 200
                    sent[site] += 1
            time.sleep(max(0.0, (deadline - time.monotonic()) / (300 - i)))
    # The nodes count the log every second and Prometheus scrapes every second; rate()
    # extrapolates to the window's ends by up to a scrape interval each: over 30 s, ~3 %.
    window = 30
    end = start - 2 * SCRAPE_S + window
    time.sleep(max(4 * SCRAPE_S, end - time.time()))
    rate = {
        r["metric"]["site"]: float(r["value"][1])
        for r in prometheus.query(
            f"sum by (site) (rate(edgeplane_edge_requests_total[{window}s]))", at=end
        )
    }
    for site, n in sent.items():
        expected = n / window
        print(f"\n{site}: sent {n} in {window} s = {expected:.2f}/s, PromQL {rate[site]:.2f}/s")
        assert abs(rate[site] - expected) <= 0.05 * expected, (site, rate[site], expected)
    # The control plane's own requests are there too, by route template.
    assert prometheus.query('sum(edgeplane_api_requests_total{route="/metrics"})')
