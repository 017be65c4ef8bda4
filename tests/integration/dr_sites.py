"""Sites with a DR config for the DR tests and benches: two data centers of origin processes
behind one load balancer, a client loop through the edge nodes
(``tests/integration/test_dr_failover.py``, ``bench/dr.py``)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
from edge_agents import Api, EdgeAgent, wait_for
from origins import Origin, OriginSet

DR = "/api/v1/infrastructure/dr-configs"
INV = "/api/v1/infrastructure"


@dataclass
class Site:
    api: Api
    domain: str
    primaries: list[Origin]
    backup: Origin

    def status(self) -> dict[str, Any]:
        return dict(self.api.ok("GET", f"{DR}/dr/status"))

    def events(self) -> list[dict[str, Any]]:
        """The timeline, oldest first."""
        return list(reversed(self.api.ok("GET", f"{DR}/dr/events")["items"]))


def make_site(
    admin: Api, origins: OriginSet, project: str, *, force_https: bool = False, **dr: Any
) -> Site:
    """In ``project``: data centers dc-a (primary: two origins) and dc-b (backup: one), a
    server per origin, a load balancer over the three (servers by id and port, active health
    checks every second), the site ``<project>.localhost`` through it (plain HTTP unless
    ``force_https``), the DR config ``dr``."""
    api = admin.in_project(project)
    a1, a2, b1 = (origins.start(f"{project}-{n}") for n in ("a1", "a2", "b1"))
    capacity = {"cpu": 64, "memory": 256, "storage": 1000}
    for dc, location in (("dc-a", "us-east"), ("dc-b", "eu-central")):
        api.ok(
            "POST",
            f"{INV}/datacenters",
            json={"id": dc, "name": dc, "location": location, "tier": 3, "capacity": capacity},
        )
    for origin, dc in ((a1, "dc-a"), (a2, "dc-a"), (b1, "dc-b")):
        api.ok(
            "POST",
            f"{INV}/servers",
            json={
                "id": f"srv-{origin.name}",
                "name": origin.name,
                "type": "primary",
                "data_center_id": dc,
                "address": "127.0.0.1",
                "capacity": {"cpu": 4, "memory": 8, "storage": 50},
            },
        )
    api.ok(
        "POST",
        f"{INV}/loadbalancer",
        json={
            "id": "web",
            "algorithm": "round_robin",
            "backends": [{"address": f"srv-{o.name}", "port": o.port} for o in (a1, a2, b1)],
            "health_check": {
                "path": "/health",
                "interval_s": 1,
                "timeout_s": 0.5,
                "healthy_threshold": 2,
                "unhealthy_threshold": 2,
            },
            "connect_timeout_s": 0.5,
            "read_timeout_s": 2,
            "retries": 2,
        },
    )
    domain = f"{project}.localhost"
    api.ok("POST", f"{INV}/domains", json={"domain": domain})
    api.ok(
        "POST",
        f"{INV}/cdn",
        json={
            "origins": [{"load_balancer": "web"}],
            "cache_rules": [{"pattern": "/*", "ttl": 0, "bypass": True}],
            "security": {"force_https": force_https},
        },
    )
    body = {
        "id": "dr",
        "name": f"{project} DR",
        "primary_dc": "dc-a",
        "backup_dc": "dc-b",
        "rto": 1,
        "rpo": 60,
        **dr,
    }
    api.ok("POST", DR, json=body)
    return Site(api, domain, [a1, a2], b1)


def origin_of(agent: EdgeAgent, site: Site, path: str = "/probe") -> str | None:
    r = agent.get(site.domain, path)
    return r.headers.get("x-origin") if r.status_code == 200 else None


def wait_ready(site: Site, nodes: list[EdgeAgent]) -> None:
    primaries = {o.name for o in site.primaries}
    for agent in nodes:

        def serves(a: EdgeAgent = agent) -> bool:
            return origin_of(a, site) in primaries

        wait_for(serves, 20, f"{agent.name} serves")
    wait_for(lambda: site.status()["primary_health"]["state"] == "up", 20, "the primary up")


class Traffic:
    """Client threads sending GETs through every node; what answered, what failed."""

    def __init__(self, nodes: list[EdgeAgent], host: str, per_node: int = 2) -> None:
        self.host = host
        self.lock = threading.Lock()
        self.served: list[tuple[float, str]] = []
        self.failures: list[str] = []
        self.retried = 0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True)
            for n in nodes
            for _ in range(per_node)
        ]

    def __enter__(self) -> Traffic:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def _run(self, agent: EdgeAgent) -> None:
        with httpx.Client(base_url=agent.url, timeout=15) as client:
            while not self._stop.is_set():
                try:
                    r = self._get(client)
                except httpx.HTTPError as exc:
                    with self.lock:
                        self.failures.append(f"{agent.name}: {type(exc).__name__}")
                    continue
                with self.lock:
                    if r.status_code == 200:
                        self.served.append((time.monotonic(), r.headers["x-origin"]))
                    else:
                        self.failures.append(f"{agent.name}: {r.status_code}")
                time.sleep(0.005)

    def _get(self, client: httpx.Client) -> httpx.Response:
        try:
            return client.get("/loop", headers={"Host": self.host})
        except (httpx.RemoteProtocolError, httpx.ReadError):
            # A keep-alive connection an old nginx worker closed at a reload, the request
            # never answered: what browsers do, send the idempotent request again.
            with self.lock:
                self.retried += 1
            return client.get("/loop", headers={"Host": self.host})

    def first(self, origin: str, after: float) -> float | None:
        with self.lock:
            return next((t for t, o in self.served if o == origin and t >= after), None)

    def since(self, t: float) -> Counter[str]:
        with self.lock:
            return Counter(o for at, o in self.served if at >= t)


def served_event(site: Site, to: str, after: int = 0) -> dict[str, Any] | None:
    return next(
        (
            e
            for e in site.events()
            if e["kind"] == "served" and e["detail"]["to"] == to and e["id"] > after
        ),
        None,
    )
