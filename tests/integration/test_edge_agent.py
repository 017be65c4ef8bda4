"""The edge agent end to end: a real control plane, real agents driving real nginx, real
origin processes. Two edge nodes are shared by the module; each test works in a project and
on domains of its own."""

from __future__ import annotations

import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from edge_agents import Api, EdgeAgent, new_agent, searchable_tmp, wait_for
from origins import OriginSet, origin_set
from processes import ControlPlane, start_up

from edgeplane.node import procfs

pytestmark = [pytest.mark.integration, pytest.mark.serial]


@pytest.fixture
def tmp_dir() -> Iterator[Path]:
    path = searchable_tmp("edge-agent-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def cp(tmp_module: Path) -> Iterator[ControlPlane]:
    cp = start_up(tmp_module / "cp")
    yield cp
    cp.stop()


@pytest.fixture(scope="module")
def nodes(cp: ControlPlane, admin: Api, tmp_module: Path) -> Iterator[list[EdgeAgent]]:
    agents = [new_agent(cp, admin, tmp_module, name).start() for name in ("edge-a", "edge-b")]
    try:
        wait_for(
            lambda: {n["name"] for n in admin.nodes() if n["applied_revision"] is not None}
            >= {"edge-a", "edge-b"},
            20,
            "both nodes registered and applied",
        )
        yield agents
    finally:
        for agent in agents:
            agent.stop()


@pytest.fixture
def origins() -> Iterator[OriginSet]:
    with origin_set() as s:
        yield s


def site(api: Api, domain: str, origins: list[dict[str, Any]], rules: list[dict[str, Any]]
         ) -> dict[str, Any]:
    """A domain of the project, served from ``origins`` with ``rules``, over plain HTTP."""
    api.ok("POST", "/api/v1/infrastructure/domains", json={"domain": domain})
    body = {"origins": origins, "cache_rules": rules, "security": {"force_https": False}}
    return dict(api.ok("POST", "/api/v1/infrastructure/cdn", json=body))


def served_by(agent: EdgeAgent, host: str, path: str = "/") -> str | None:
    r = agent.get(host, path)
    return r.headers.get("x-origin") if r.status_code == 200 else None


def cache_status(agent: EdgeAgent, host: str, path: str) -> str:
    r = agent.get(host, path)
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.headers["x-served-by"] == agent.name
    return r.headers["x-cache-status"]


# Propagation ------------------------------------------------------------------------------


def test_api_change_reaches_the_edge_and_propagation_is_reported(
    admin: Api, nodes: list[EdgeAgent], origins: OriginSet
) -> None:
    api = admin.in_project("prop")
    a = origins.start("a")
    b = origins.start("b")
    site(api, "prop.localhost", [{"url": a.url}], [])
    for agent in nodes:
        wait_for(lambda agent=agent: served_by(agent, "prop.localhost") == "a", 10, "origin a")
    started = time.monotonic()
    doc = api.ok(
        "POST",
        "/api/v1/infrastructure/cdn",
        json={"origins": [{"url": b.url}], "security": {"force_https": False}},
    )
    revision = doc["cdn_deployment"]["revision"]
    for agent in nodes:
        wait_for(lambda agent=agent: served_by(agent, "prop.localhost") == "b", 10, "origin b")
    print(f"\nAPI change -> served by both nodes: {(time.monotonic() - started) * 1000:.0f} ms")
    r = nodes[0].get("prop.localhost", "/")
    assert r.headers["x-served-by"] == "edge-a"

    def acked() -> list[dict[str, Any]] | None:
        listed = [n for n in admin.nodes() if n["name"] in ("edge-a", "edge-b")]
        if all(n["applied_revision"] >= revision and n["in_sync"] for n in listed):
            return listed
        return None

    for node in wait_for(acked, 10, "both nodes acknowledged the revision"):
        assert node["status"] == "online"
        assert node["last_error"] is None
        assert node["propagation_ms"] is not None and node["propagation_ms"] >= 0
        assert node["apply_ms"] is not None
        assert node["stats"]["nginx_pss_mib"] > 0 and node["stats"]["agent_rss_mib"] > 0
        print(f"{node['name']}: revision {node['applied_revision']}, "
              f"propagation {node['propagation_ms']:.0f} ms, apply {node['apply_ms']:.0f} ms")


def test_agents_make_their_default_certificate_without_loading_cryptography(
    nodes: list[EdgeAgent],
) -> None:
    """The ``cryptography`` library is 8 MiB of native code, in memory for the life of the
    process that loads it, and an agent needs it only for its default certificate: that is
    made in a child process, and is a key and a certificate that go together."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    for agent in nodes:
        assert agent.process is not None
        maps = Path(f"/proc/{agent.process.pid}/maps").read_text()
        # ``edgeplane edge`` became the agent's own entry (exec: the same pid), without the
        # command line's libraries
        cmdline = procfs.cmdline(agent.process.pid)
        assert cmdline[1:3] == ["-m", "edgeplane.node.agent.main"], cmdline
        assert cmdline[5:7] == ["--node", agent.name], cmdline
        assert "cryptography" not in maps, f"{agent.name} loaded the cryptography library"
        pem = (agent.prefix / "certs" / "_default.pem").read_bytes()
        key = serialization.load_pem_private_key(pem, None)
        cert = x509.load_pem_x509_certificate(pem)
        assert cert.public_key() == key.public_key()
        assert cert.subject == cert.issuer  # self-signed


def test_a_config_nginx_rejects_is_reported_and_the_previous_one_keeps_serving(
    admin: Api, nodes: list[EdgeAgent], origins: OriginSet
) -> None:
    """A backend named by a host name that does not resolve: nginx refuses the config
    ("host not found in upstream"); the node reports it and keeps serving."""
    api = admin.in_project("reject")
    a = origins.start("a")
    site(api, "reject.localhost", [{"url": a.url}], [])
    for agent in nodes:
        wait_for(lambda agent=agent: served_by(agent, "reject.localhost") == "a", 10, "served")
    doc = api.ok(
        "POST",
        "/api/v1/infrastructure/cdn",
        json={
            "origins": [{"url": "http://no-such-host.invalid:8080"}],
            "security": {"force_https": False},
        },
    )
    revision = doc["cdn_deployment"]["revision"]

    def failed() -> list[dict[str, Any]] | None:
        listed = [n for n in admin.nodes() if n["name"] in ("edge-a", "edge-b")]
        if all(n["failed_revision"] is not None and n["failed_revision"] >= revision
               for n in listed):
            return listed
        return None

    for node in wait_for(failed, 15, "both nodes reported the failure"):
        assert "no-such-host.invalid" in (node["last_error"] or ""), node
        assert not node["in_sync"]
    for agent in nodes:
        assert served_by(agent, "reject.localhost") == "a"
    # A good config afterwards clears the error.
    api.ok(
        "POST",
        "/api/v1/infrastructure/cdn",
        json={"origins": [{"url": a.url}], "security": {"force_https": False}},
    )

    def cleared() -> bool:
        listed = [n for n in admin.nodes() if n["name"] in ("edge-a", "edge-b")]
        return all(n["in_sync"] and n["last_error"] is None for n in listed)

    wait_for(cleared, 10, "the error cleared")


# Purge on two nodes -------------------------------------------------------------------------


def test_purge_by_path_prefix_and_all_on_both_nodes(
    admin: Api, nodes: list[EdgeAgent], origins: OriginSet
) -> None:
    api = admin.in_project("purge")
    a = origins.start("a")
    site(api, "purge.localhost", [{"url": a.url}], [{"pattern": "/*", "ttl": 300}])
    host = "purge.localhost"
    paths = ["/page", "/static/x.css", "/static/y.css", "/other"]
    for agent in nodes:
        wait_for(lambda agent=agent: served_by(agent, host, "/warm") == "a", 10, "served")
        for path in paths:
            assert cache_status(agent, host, path) == "MISS"
            assert cache_status(agent, host, path) == "HIT"

    def purge(body: dict[str, Any]) -> dict[str, Any]:
        started = time.monotonic()
        r = api.http.post("/api/v1/infrastructure/cdn/purge", json={**body, "wait": True})
        assert r.status_code == 200, r.text
        doc: dict[str, Any] = r.json()
        print(f"\npurge {body}: {(time.monotonic() - started) * 1000:.0f} ms, "
              f"{doc['purged_count']} objects")
        assert doc["complete"]
        by_node = {n["node"]: n for n in doc["nodes"]}
        names = {n["name"]: n["id"] for n in admin.nodes()}
        for name in ("edge-a", "edge-b"):
            node = by_node.get(names[name]) or by_node.get(name)
            assert node is not None, doc
            assert node["completed_at"] is not None and node["error"] is None
        return doc

    doc = purge({"paths": ["/page"]})
    assert doc["purged_count"] == 2  # one object on each node
    for agent in nodes:
        assert cache_status(agent, host, "/page") == "MISS"
        assert cache_status(agent, host, "/static/x.css") == "HIT"
        assert cache_status(agent, host, "/other") == "HIT"

    doc = purge({"paths": ["/static/*"]})
    assert doc["purged_count"] == 4
    for agent in nodes:
        assert cache_status(agent, host, "/static/x.css") == "MISS"
        assert cache_status(agent, host, "/static/y.css") == "MISS"
        assert cache_status(agent, host, "/other") == "HIT"
        assert cache_status(agent, host, "/page") == "HIT"

    purge({"purge_all": True})
    for agent in nodes:
        for path in paths:
            assert cache_status(agent, host, path) == "MISS"


# Analytics ----------------------------------------------------------------------------------


def test_analytics_reach_the_api(admin: Api, nodes: list[EdgeAgent], origins: OriginSet) -> None:
    api = admin.in_project("stats")
    a = origins.start("a")
    doc = site(api, "stats.localhost", [{"url": a.url}], [{"pattern": "/*", "ttl": 300}])
    agent = nodes[0]
    revision = doc["cdn_deployment"]["revision"]
    # Wait through the API (a request would count in the analytics).
    wait_for(
        lambda: any(n["name"] == agent.name and n["applied_revision"] >= revision
                    and n["in_sync"] for n in admin.nodes()),
        10,
        "the node applied the site",
    )
    statuses = [cache_status(agent, "stats.localhost", "/s") for _ in range(5)]
    assert statuses == ["MISS", "HIT", "HIT", "HIT", "HIT"]
    assert agent.get("stats.localhost", "/missing?status=404").status_code == 404

    def reported() -> dict[str, Any] | None:
        doc: dict[str, Any] = api.ok(
            "GET", "/api/v1/infrastructure/cdn/analytics", params={"timeframe": "1h"}
        )
        return doc if doc["requests"] >= 6 else None

    doc = wait_for(reported, 20, "analytics reported", every=0.5)
    assert doc["requests"] == 6  # 5 x /s, /missing
    assert doc["hits"] == 4
    assert doc["misses"] == 2
    assert doc["hit_ratio"] == pytest.approx(4 / 6, abs=0.01)
    assert doc["statuses"] == {"2xx": 5, "4xx": 1}
    assert doc["domains"][0]["domain"] == "stats.localhost"
    assert doc["upstream_ms"]["p50"] is not None


def test_requests_per_load_balancer_backend_reach_the_metrics(
    admin: Api, nodes: list[EdgeAgent], origins: OriginSet
) -> None:
    api = admin.in_project("spread")
    a, b = origins.start("a"), origins.start("b")
    lb = api.ok(
        "POST",
        "/api/v1/infrastructure/loadbalancer",
        json={
            "name": "web",
            "algorithm": "weighted",
            "backends": [{"address": a.address, "weight": 3}, {"address": b.address, "weight": 1}],
        },
    )
    doc = site(api, "spread.localhost", [{"load_balancer": lb["id"]}],
               [{"pattern": "/*", "ttl": 0, "bypass": True}])
    revision = doc["cdn_deployment"]["revision"]
    wait_for(
        lambda: all(n["applied_revision"] >= revision and n["in_sync"] for n in admin.nodes()),
        10,
        "the nodes applied the site",
    )
    served: Counter[str] = Counter()
    for i in range(24):
        r = nodes[i % 2].get("spread.localhost", f"/r{i}")
        assert r.status_code == 200, r.text
        served[r.headers["x-origin"]] += 1
    assert set(served) == {"a", "b"} and served["a"] > served["b"]  # weights 3 : 1
    expected = {a.address: float(served["a"]), b.address: float(served["b"])}

    def measured() -> dict[str, float] | None:
        answer = api.ok("GET", "/api/v1/metrics", params={"series": "backend_requests"})
        totals = {r["object"]: sum(p["value"] for p in r["points"]) for r in answer["results"]}
        return totals if totals == expected else None

    wait_for(measured, 20, "both nodes' requests per backend in the metrics", every=0.5)
    # Per node: the selector narrows them to one node's share.
    answer = api.ok(
        "GET", "/api/v1/metrics", params={"series": "backend_requests", "node": nodes[1].name}
    )
    assert sum(p["value"] for r in answer["results"] for p in r["points"]) == 12
    bad = api.http.get(
        "/api/v1/metrics", params={"series": "backend_requests", "group_by": "domain"}
    )
    assert bad.status_code == 422 and "backend" in bad.text


# Health checks, failover, backup ------------------------------------------------------------


class Traffic:
    """Client threads sending GETs through one edge node; counts failures and origins."""

    def __init__(self, agent: EdgeAgent, host: str, threads: int = 4) -> None:
        self.agent = agent
        self.host = host
        self.lock = threading.Lock()
        self.served: list[tuple[float, str]] = []
        self.failures: list[str] = []
        self.retried = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Traffic:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def _run(self) -> None:
        with httpx.Client(base_url=self.agent.url, timeout=15) as client:
            while not self._stop.is_set():
                try:
                    r = self._get(client)
                except httpx.HTTPError as exc:
                    with self.lock:
                        self.failures.append(type(exc).__name__)
                    continue
                with self.lock:
                    if r.status_code == 200:
                        self.served.append((time.monotonic(), r.headers["x-origin"]))
                    else:
                        self.failures.append(str(r.status_code))

    def _get(self, client: httpx.Client) -> httpx.Response:
        try:
            return client.get("/lb", headers={"Host": self.host})
        except (httpx.RemoteProtocolError, httpx.ReadError):
            # A keep-alive connection closed by an old worker at a reload (the request was
            # never answered): what browsers do, retry the idempotent request once.
            with self.lock:
                self.retried += 1
            return client.get("/lb", headers={"Host": self.host})

    def last(self, n: int) -> list[str]:
        with self.lock:
            return [name for _, name in self.served[-n:]] if len(self.served) >= n else []

    def since(self, t: float) -> Counter[str]:
        with self.lock:
            return Counter(name for at, name in self.served if at >= t)


def test_health_checks_failover_recovery_and_backup(
    admin: Api, nodes: list[EdgeAgent], origins: OriginSet
) -> None:
    api = admin.in_project("health")
    a, b, c = origins.start("a"), origins.start("b"), origins.start("c")
    lb = api.ok(
        "POST",
        "/api/v1/infrastructure/loadbalancer",
        json={
            "name": "web",
            "algorithm": "round_robin",
            "backends": [
                {"address": a.address},
                {"address": b.address},
                {"address": c.address, "backup": True},
            ],
            "health_check": {
                "path": "/health",
                "interval_s": 1,
                "timeout_s": 0.5,
                "healthy_threshold": 2,
                "unhealthy_threshold": 2,
            },
            "connect_timeout_s": 0.5,
            "read_timeout_s": 1,
            "retries": 2,
        },
    )
    site(api, "lb.localhost", [{"load_balancer": lb["id"]}], [{"pattern": "/*", "ttl": 0,
                                                              "bypass": True}])
    agent = nodes[0]
    node_id = next(n["id"] for n in admin.nodes() if n["name"] == agent.name)
    health_path = f"/api/v1/infrastructure/loadbalancer/{lb['id']}/health"

    def states() -> dict[str, dict[str, Any]]:
        out = {}
        for backend in api.ok("GET", health_path):
            for node in backend["nodes"]:
                if node["node"] in (node_id, agent.name):
                    out[backend["backend"]] = node
        return out

    wait_for(lambda: {s["state"] for s in states().values()} == {"up"}
             and len(states()) == 3, 15, "every backend up on the node")

    with Traffic(agent, "lb.localhost") as traffic:
        t0 = time.monotonic()
        wait_for(lambda: {"a", "b"} <= set(traffic.since(t0)), 10, "both primaries serve")
        assert traffic.since(t0)["c"] == 0  # the backup is idle while primaries are up

        # SIGSTOP: the kernel accepts connections to a, nobody answers.
        a.stop()
        stopped = time.monotonic()
        wait_for(lambda: states()[a.address]["state"] == "down", 6, "a reported down")
        down_s = time.monotonic() - stopped
        report = states()[a.address]
        assert report["reason"] == "timeout after 0.5s", report
        # From now on nothing reaches a (it cannot answer anyway); traffic flows through b.
        t1 = time.monotonic()
        wait_for(lambda: traffic.since(t1)["b"] > 50, 10, "b carries the traffic")
        failed_during_stop = len(traffic.failures)
        print(f"\nSIGSTOP a: reported down after {down_s:.2f} s "
              f"(interval 1 s, fall 2), failed requests {failed_during_stop}, "
              f"retried after reload {traffic.retried}, served {len(traffic.served)}")
        assert down_s < 4.0

        a.cont()
        resumed = time.monotonic()
        wait_for(lambda: states()[a.address]["state"] == "up", 6, "a up again after rise")
        t2 = time.monotonic()
        wait_for(lambda: traffic.since(t2)["a"] > 10, 10, "a back in rotation")
        print(f"SIGCONT a: up again after {t2 - resumed:.2f} s (rise 2)")

        # Both primaries fail their checks: the backup takes over, and only then.
        a.set_health(500)
        b.set_health(500)
        wait_for(lambda: states()[a.address]["state"] == "down"
                 and states()[b.address]["state"] == "down", 8, "primaries down")
        assert states()[a.address]["reason"] == "status 500 (expected 200-399)"
        down_at = time.monotonic()
        wait_for(lambda: set(traffic.last(30)) == {"c"}, 10, "only the backup serves")
        print(f"both primaries reported down -> only the backup serves: "
              f"{(time.monotonic() - down_at) * 1000:.0f} ms")
        t3 = time.monotonic()
        wait_for(lambda: traffic.since(t3)["c"] > 50, 10, "backup serves")
        only_backup = traffic.since(t3)
        assert set(only_backup) == {"c"}, only_backup

        a.set_health(200)
        b.set_health(200)
        wait_for(lambda: states()[a.address]["state"] == "up"
                 and states()[b.address]["state"] == "up", 8, "primaries up")
        wait_for(lambda: set(traffic.last(30)) == {"a", "b"}, 10, "the primaries take over")
        t4 = time.monotonic()
        wait_for(lambda: sum(traffic.since(t4).values()) > 50, 10, "traffic after recovery")
        assert traffic.since(t4)["c"] == 0, traffic.since(t4)
        assert {"a", "b"} <= set(traffic.since(t4))
    print(f"failed requests over the whole run: {len(traffic.failures)} "
          f"of {len(traffic.served) + len(traffic.failures)} {Counter(traffic.failures)}")
    assert len(traffic.failures) == 0


# Autonomy -----------------------------------------------------------------------------------


def test_edge_serves_without_the_control_plane_and_after_a_restart(
    tmp_dir: Path, origins: OriginSet
) -> None:
    tmp_path = tmp_dir
    cp = start_up(tmp_path / "cp")
    api = Api(cp)
    agent: EdgeAgent | None = None
    try:
        a = origins.start("a")
        site(api, "alone.localhost", [{"url": a.url}], [])
        agent = new_agent(cp, api, tmp_path, "alone").start()
        wait_for(lambda: served_by(agent, "alone.localhost") == "a", 15, "served")
        state = agent.home / "edge" / "alone"
        # saved once nginx took it: just after it serves
        wait_for(lambda: (state / "manifest.json").exists(), 10, "the manifest saved")
        assert (state / "manifest.json").stat().st_mode & 0o777 == 0o600
        # The objects it names (certificates hold private keys) are the owner's only.
        assert (state / "objects").stat().st_mode & 0o777 == 0o700
        assert all(p.stat().st_mode & 0o777 == 0o600 for p in (state / "objects").iterdir())

        assert cp.stop() == 0
        for _ in range(20):
            assert served_by(agent, "alone.localhost") == "a"
        time.sleep(1)  # the agent notices the control plane is gone and keeps serving
        assert served_by(agent, "alone.localhost") == "a"

        # SIGTERM: the agent stops its nginx too.
        assert agent.stop() == 0
        assert agent.nginx_pids() == []
        with pytest.raises(httpx.TransportError):
            agent.get("alone.localhost", "/")

        # Restarted with the control plane still down: it serves its saved snapshot.
        agent.start()
        wait_for(lambda: served_by(agent, "alone.localhost") == "a", 15, "served from disk")
        assert "unreachable" in agent.output()
    except BaseException:
        if agent is not None:
            print(agent.output())
        raise
    finally:
        if agent is not None:
            agent.stop()
        api.close()
        cp.stop()
    assert agent.nginx_pids() == []


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (not gone, not a zombie)."""
    try:
        return bool(Path(f"/proc/{pid}/cmdline").read_bytes())
    except OSError:
        return False


def children_of(pid: int) -> list[int]:
    from leftovers import stat_fields

    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := stat_fields(int(entry.name))) and fields[0] == pid:
            found.append(int(entry.name))
    return found


def test_agent_refuses_bad_options(tmp_path: Path) -> None:
    import subprocess
    import sys

    from processes import clean_env

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "edgeplane", "edge", *args],
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )

    r = run("--region", "us-east", "--token", "x")
    assert r.returncode == 2 and "--control-plane" in r.stderr
    r = run("--control-plane", "http://127.0.0.1:1", "--token", "secret-xyz", "--region",
            "us-east", "--name", "Bad Name!")
    assert r.returncode == 2 and "--name" in r.stderr and "secret-xyz" not in r.stderr


def test_nginx_that_dies_is_restarted(
    admin: Api, nodes: list[EdgeAgent], origins: OriginSet
) -> None:
    import os

    api = admin.in_project("supervise")
    a = origins.start("a")
    site(api, "supervise.localhost", [{"url": a.url}], [])
    agent = nodes[1]
    wait_for(lambda: served_by(agent, "supervise.localhost") == "a", 10, "served")
    pid = int((agent.prefix / "nginx.pid").read_text())
    children = children_of(pid)  # workers, cache manager and loader
    assert children
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()

    def new_master() -> int | None:
        try:
            new = int((agent.prefix / "nginx.pid").read_text())
        except (FileNotFoundError, ValueError):
            return None
        return new if new != pid and served_by(agent, "supervise.localhost") == "a" else None

    try:
        wait_for(new_master, 10, "a new nginx master serving")
    except AssertionError:
        print(agent.output()[-3000:])
        raise
    print(f"\nnginx master SIGKILLed: a new master serves after "
          f"{time.monotonic() - killed:.2f} s")
    wait_for(lambda: "restarted" in agent.output(), 5, "the restart logged")
    # nothing of the dead master is left: its workers held the ports, and its cache manager
    # (which holds no listening socket) would otherwise run on, on the old config
    wait_for(lambda: not [p for p in children if running(p)] or None, 10,
             f"the dead master's children gone: {children}")  # fmt: skip
