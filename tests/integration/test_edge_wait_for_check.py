"""A backend with ``wait_for_check`` end to end: a real control plane, a real agent driving
real nginx, real origin processes. A backend added to a serving pool gets no request until a
check of the node passed (the origins' own hit counters and nginx's access log say so, under
traffic that runs through the change); it then takes traffic within an interval; and a pool
made only of such backends keeps answering across a restart of the agent (the restarted agent
finds them in rotation in the release nginx ran)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from edge_agents import Api, EdgeAgent, new_agent, wait_for
from origins import OriginSet, origin_set
from processes import ControlPlane, free_port, start_up

pytestmark = pytest.mark.integration

HOST = "gate.localhost"
INTERVAL_S = 1.0
AWAITING = "awaiting its first health check"


@pytest.fixture(scope="module")
def cp(tmp_module: Path) -> Iterator[ControlPlane]:
    cp = start_up(tmp_module / "cp")
    yield cp
    cp.stop()


@pytest.fixture(scope="module")
def agent(cp: ControlPlane, admin: Api, tmp_module: Path) -> Iterator[EdgeAgent]:
    node = new_agent(cp, admin, tmp_module, "gate").start()
    try:
        wait_for(
            lambda: any(n["name"] == "gate" and n["applied_revision"] is not None
                        for n in admin.nodes()),
            20,
            "the node registered and applied",
        )  # fmt: skip
        yield node
    finally:
        node.stop()


@pytest.fixture
def origins() -> Iterator[OriginSet]:
    with origin_set() as s:
        yield s


class Traffic:
    """One client thread sending GETs through the edge node, each answer kept with its time:
    (time, status or the transport error's name, the origin that answered)."""

    def __init__(self, agent: EdgeAgent) -> None:
        self.agent = agent
        self.lock = threading.Lock()
        self.answers: list[tuple[float, str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            # A new connection each time: a restarted nginx is seen at once.
            try:
                r = httpx.get(f"{self.agent.url}/w", headers={"Host": HOST}, timeout=5)
                answer = (str(r.status_code), r.headers.get("x-origin", ""))
            except httpx.HTTPError as exc:
                answer = (type(exc).__name__, "")
                time.sleep(0.01)
            with self.lock:
                self.answers.append((time.monotonic(), *answer))
            time.sleep(0.005)

    def since(self, t: float) -> list[tuple[float, str, str]]:
        with self.lock:
            return [a for a in self.answers if a[0] >= t]

    def origins_since(self, t: float) -> Counter[str]:
        return Counter(origin for _, status, origin in self.since(t) if status == "200")


def upstreams_in_log(agent: EdgeAgent) -> Counter[str]:
    """Every upstream address nginx's access log names for the site (tried ones included)."""
    seen: Counter[str] = Counter()
    for line in (agent.prefix / "logs" / "access.json").read_text().splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if doc.get("host") == HOST:
            for address in str(doc.get("upstream", "")).replace(" : ", ", ").split(", "):
                if address:
                    seen[address] += 1
    return seen


def test_a_waiting_backend_takes_traffic_only_once_a_check_passed_and_stays_across_a_restart(
    admin: Api, agent: EdgeAgent, origins: OriginSet
) -> None:
    api = admin.in_project("gate")
    a = origins.start("a")
    lb = api.ok("POST", "/api/v1/infrastructure/loadbalancer", json={
        "name": "web",
        "backends": [{"address": a.address}],
        "health_check": {"path": "/health", "interval_s": INTERVAL_S, "timeout_s": 0.5,
                         "healthy_threshold": 2, "unhealthy_threshold": 2},
        "connect_timeout_s": 0.5,
        "read_timeout_s": 2,
        "retries": 2,
    })  # fmt: skip
    api.ok("POST", "/api/v1/infrastructure/domains", json={"domain": HOST})
    api.ok("POST", "/api/v1/infrastructure/cdn", json={
        "origins": [{"load_balancer": lb["id"]}],
        "cache_rules": [{"pattern": "/*", "ttl": 0, "bypass": True}],
        "security": {"force_https": False},
    })  # fmt: skip
    health_path = f"/api/v1/infrastructure/loadbalancer/{lb['id']}/health"
    backends = f"/api/v1/infrastructure/loadbalancer/{lb['id']}/backends"

    def states() -> dict[str, dict[str, Any]]:
        out = {}
        for backend in api.ok("GET", health_path):
            for node in backend["nodes"]:
                if node["node"] == agent.name:
                    out[backend["backend"]] = {**node, "flag": backend["wait_for_check"]}
        return out

    wait_for(lambda: states().get(a.address, {}).get("state") == "up", 20, "a up")
    wait_for(lambda: agent.get(HOST, "/").headers.get("x-origin") == "a", 10, "a serves")

    port = free_port()  # b: nothing listens there yet
    b_address = f"127.0.0.1:{port}"
    c = origins.start("c")  # c listens, but fails its checks
    c.set_health(500)
    with Traffic(agent) as traffic:
        time.sleep(0.5)
        api.ok("POST", backends, json={"address": b_address, "wait_for_check": True})
        api.ok("POST", backends, json={"address": c.address, "wait_for_check": True})
        # down at once ("awaiting its first health check"), then the first check's reason
        wait_for(lambda: all(states().get(k, {}).get("reason", "").startswith(f"{AWAITING} to pass")
                             for k in (b_address, c.address)), 15, "b and c checked")  # fmt: skip
        seen = states()
        assert seen[b_address]["flag"] is True
        for key, why in ((b_address, "connect refused"), (c.address, "status 500")):
            # the node checked it at once, and it has not passed yet
            assert seen[key]["state"] == "down", seen[key]
            assert seen[key]["reason"].startswith(f"{AWAITING} to pass: {why}"), seen[key]
        t_added = time.monotonic()
        time.sleep(3 * INTERVAL_S)  # several failed checks: still no traffic
        served = traffic.origins_since(0)
        assert set(served) == {"a"} and served["a"] > 50, served
        assert c.hits() == 0  # not one request reached c, before or after its checks
        assert c.health_hits() >= 3
        assert [s for _, s, _ in traffic.since(0) if s != "200"] == []

        b = origins.start("b", port=port)  # b listens now: in on its first passed check
        started = time.monotonic()
        wait_for(lambda: traffic.origins_since(started)["b"] > 0, INTERVAL_S + 4,
                 "b takes traffic")  # fmt: skip
        b_after = time.monotonic() - started
        wait_for(lambda: states()[b_address]["state"] == "up", 5, "b reported up")
        assert states()[b_address]["reason"] == "ok"
        assert c.hits() == 0 and traffic.origins_since(t_added)["c"] == 0
        c.set_health(200)
        started_c = time.monotonic()
        wait_for(lambda: traffic.origins_since(started_c)["c"] > 0, INTERVAL_S + 4,
                 "c takes traffic")  # fmt: skip
        failures = [s for _, s, _ in traffic.since(0) if s != "200"]
        assert failures == [], Counter(failures)
    print(
        f"\nb (listening at last) served after {b_after:.2f} s; c after "
        f"{time.monotonic() - started_c:.2f} s (interval {INTERVAL_S:g} s)"
    )
    time.sleep(1.5)  # nginx writes its access log every second
    tried = upstreams_in_log(agent)
    assert tried[a.address] > 0
    # b was never tried before it listened: a refused connection would name it here (and
    # be retried on a); c's requests are exactly its hits, after its check passed.
    assert tried[c.address] == c.hits() > 0, tried
    assert tried[b_address] == b.hits() > 0, tried

    # A pool made only of waiting backends, all up, across a restart of the agent (nginx
    # stops and starts with it): once the new nginx answers, every answer is 200.
    api.ok("PATCH", f"{backends}/{a.address}", json={"wait_for_check": True})
    wait_for(lambda: all(s["flag"] and s["state"] == "up" for s in states().values())
             and len(states()) == 3, 10, "three waiting backends up")  # fmt: skip
    with Traffic(agent) as traffic:
        wait_for(lambda: len(traffic.origins_since(0)) == 3, 10, "all three serve")
        stopped = time.monotonic()
        assert agent.stop() == 0
        agent.start()

        def answered_again() -> bool:
            statuses = [s for _, s, _ in traffic.since(stopped)]
            gap = [i for i, s in enumerate(statuses) if not s.isdigit()]
            return bool(gap) and any(s.isdigit() for s in statuses[gap[-1] :])

        wait_for(answered_again, 20, "the restarted node answers")
        time.sleep(3 * INTERVAL_S)
        answers = traffic.since(stopped)
    statuses = [s for _, s, _ in answers]
    gap = [i for i, s in enumerate(statuses) if not s.isdigit()]
    after = answers[gap[-1] + 1 :]
    print(
        f"agent restart: no answer for {after[0][0] - answers[gap[0]][0]:.2f} s "
        f"({dict(Counter(statuses[i] for i in gap))}), then "
        f"{dict(Counter(s for _, s, _ in after))} from {dict(Counter(o for _, _, o in after))}"
    )
    # nginx stopped and started with the agent: one gap without answers; every answer,
    # before and after it, a 200 (a 502 would be the pool out of rotation after the start).
    assert gap == list(range(gap[0], gap[-1] + 1)), Counter(statuses)
    assert {s for s in statuses if s.isdigit()} == {"200"}, Counter(statuses)
    assert {o for _, _, o in after} == {"a", "b", "c"}
