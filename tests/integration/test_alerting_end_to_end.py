"""Alerting end to end: a real control plane and edge node, a real origin stopped during traffic,
notifications to a real webhook receiver and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from edge_agents import Api, EdgeAgent, new_agent, wait_for
from origins import OriginSet, origin_set
from processes import ControlPlane, clean_env, free_port, free_udp_port, start_up
from smtp_sink import Mailbox

from edgeplane.notify.signing import verify
from edgeplane.store.tables import utcnow

pytestmark = pytest.mark.integration

DEADLINE_S = 30.0


class Hook:
    def __init__(self) -> None:
        self.received: list[tuple[float, dict[str, str], bytes]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hook.received.append((time.monotonic(), dict(self.headers.items()), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, rule: str | None = None) -> list[str]:
        docs = [json.loads(body) for _at, _h, body in self.received]
        return [d["event"] for d in docs if rule is None or d["rule"] == rule]

    def first(self, rule: str) -> tuple[float, dict[str, str], bytes]:
        return next(r for r in self.received if json.loads(r[2])["rule"] == rule)


@pytest.fixture(scope="module")
def cp(tmp_module: Path) -> Iterator[ControlPlane]:
    cp = start_up(tmp_module / "cp", env=clean_env(EDGEPLANE_ALERT_INTERVAL="1"))
    yield cp
    cp.stop()


@pytest.fixture(scope="module")
def node(cp: ControlPlane, admin: Api, tmp_module: Path) -> Iterator[EdgeAgent]:
    agent = new_agent(
        cp,
        admin,
        tmp_module,
        "edge-1",
        dns_port=free_udp_port(),
        extra_args=["--uptime-interval", "2"],
    ).start()
    try:
        wait_for(
            lambda: any(n["applied_revision"] is not None for n in admin.nodes()),
            30,
            "the node registered and applied",
        )
        yield agent
    finally:
        agent.stop()


@pytest.fixture
def origins() -> Iterator[OriginSet]:
    with origin_set() as s:
        yield s


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    from aiosmtpd.controller import Controller

    box = Mailbox()
    smtp = Controller(box, hostname="127.0.0.1", port=free_port())
    smtp.start()
    box.port = smtp.port
    yield box
    smtp.stop()


def channels(api: Api, hook: Hook, mailbox: Mailbox) -> None:
    api.ok(
        "POST",
        "/api/v1/alerts/channels",
        json={
            "id": "ops-hook",
            "name": "Ops webhook",
            "config": {"kind": "webhook", "url": hook.url, "secret": "hook-secret"},
        },
    )
    api.ok(
        "POST",
        "/api/v1/alerts/channels",
        json={
            "id": "ops-mail",
            "name": "Ops mail",
            "config": {
                "kind": "email",
                "smtp_host": "127.0.0.1",
                "smtp_port": mailbox.port,
                "from_address": "alerts@edgeplane.test",
                "to": ["oncall@example.com"],
            },
        },
    )


def test_origin_down_alerts_once_then_resolves(
    admin: Api, node: EdgeAgent, origins: OriginSet, mailbox: Mailbox
) -> None:
    api = admin.in_project("shop")
    hook = Hook()
    channels(api, hook, mailbox)
    origin = origins.start("shop")
    lb = api.ok(
        "POST",
        "/api/v1/infrastructure/loadbalancer",
        json={
            "name": "web",
            "algorithm": "round_robin",
            "backends": [{"address": origin.address}],
            "health_check": {
                "path": "/",
                "interval_s": 1,
                "timeout_s": 0.5,
                "healthy_threshold": 1,
                "unhealthy_threshold": 2,
            },
        },
    )
    api.ok("POST", "/api/v1/infrastructure/domains", json={"domain": "shop.localhost"})
    api.ok(
        "POST",
        "/api/v1/infrastructure/cdn",
        json={"origins": [{"load_balancer": lb["id"]}], "security": {"force_https": False}},
    )
    wait_for(lambda: node.get("shop.localhost", "/").status_code == 200, 15, "site served")
    pool = f"lb.shop.{lb['id']}"

    def origin_up() -> float | None:
        got = api.ok("GET", f"/api/v1/metrics?series=origin_up&pool={pool}")["results"]
        return got[0]["points"][-1]["value"] if got else None

    wait_for(lambda: origin_up() == 1.0, 15, "the pool's origin up")

    # Traffic, then the origin stops during it.
    stop_traffic = threading.Event()

    def traffic() -> None:
        with httpx.Client(timeout=5) as client:
            while not stop_traffic.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    client.get(f"{node.url}/", headers={"Host": "shop.localhost"})
                time.sleep(0.05)

    runner = threading.Thread(target=traffic, daemon=True)
    runner.start()
    try:
        time.sleep(1)
        stopped = time.monotonic()
        origin.terminate()
        wait_for(
            lambda: "firing" in hook.events("Origin down"),
            DEADLINE_S,
            "the firing webhook",
            every=0.2,
        )
        wait_for(
            lambda: any("FIRING" in s for s in mailbox.subjects(pool)),
            DEADLINE_S - (time.monotonic() - stopped),
            "the firing mail",
            every=0.2,
        )
        at, headers, body = hook.first("Origin down")
        print(f"\norigin stopped -> firing webhook in {at - stopped:.1f} s")
        assert at - stopped <= DEADLINE_S
        assert verify("hook-secret", body, headers, utcnow().timestamp())
        doc = json.loads(body)
        assert doc["object_id"] == pool and doc["severity"] == "critical"
        time.sleep(5)  # several more evaluations: still one message each
        assert hook.events("Origin down") == ["firing"]
        assert hook.events("Domain down") in ([], ["firing"])  # the uptime checks see it too
        assert len(mailbox.subjects(pool)) == 1
        to, _text = next(m for m in mailbox.messages if pool in m[1])
        assert to == ["oncall@example.com"]

        # The origin comes back: one resolved message within the deadline.
        back = time.monotonic()
        origins.restart(origin)
        wait_for(
            lambda: "resolved" in hook.events("Origin down"),
            DEADLINE_S,
            "the resolved webhook",
            every=0.2,
        )
        wait_for(
            lambda: any("RESOLVED" in s for s in mailbox.subjects(pool)),
            DEADLINE_S - (time.monotonic() - back),
            "the resolved mail",
            every=0.2,
        )
        print(f"origin back -> resolved webhook in {time.monotonic() - back:.1f} s")
        time.sleep(3)
        assert hook.events("Origin down") == ["firing", "resolved"]
        assert len(mailbox.subjects(pool)) == 2
    finally:
        stop_traffic.set()
        runner.join(5)
    [alert] = api.ok("GET", "/api/v1/alerts?rule=origin-down")
    assert alert["state"] == "resolved"
    notes = api.ok("GET", f"/api/v1/alerts/{alert['id']}/notifications")
    assert sorted((n["channel"], n["event"], n["status"]) for n in notes) == [
        ("ops-hook", "firing", "delivered"),
        ("ops-hook", "resolved", "delivered"),
        ("ops-mail", "firing", "delivered"),
        ("ops-mail", "resolved", "delivered"),
    ]


def test_cpu_rule_fires_resolves_and_a_silence_holds_delivery(admin: Api, mailbox: Mailbox) -> None:
    api = admin.in_project("infra")
    hook = Hook()
    api.ok(
        "POST",
        "/api/v1/alerts/channels",
        json={"id": "hook", "name": "Hook", "config": {"kind": "webhook", "url": hook.url}},
    )
    api.ok(
        "POST",
        "/api/v1/infrastructure/servers",
        json={
            "id": "db-1",
            "name": "DB 1",
            "type": "primary",
            "region": "europe",
            "location": "eu-central",
            "capacity": {"cpu": 8, "memory": 32, "storage": 500},
        },
    )
    # The shipped rule, with a for-duration a test can wait for.
    api.ok("PATCH", "/api/v1/alerts/rules/cpu-high", json={"for_s": 3, "window_s": 60})

    def sample(cpu: float) -> None:
        api.ok("POST", "/api/v1/infrastructure/servers/db-1/metrics",
               json={"cpu_percent": cpu, "memory_percent": 40})  # fmt: skip

    def firing() -> list[dict[str, Any]]:
        return list(api.ok("GET", "/api/v1/alerts?rule=cpu-high&state=firing"))

    started = time.monotonic()
    while not firing():
        assert time.monotonic() - started < DEADLINE_S, "cpu-high did not fire"
        sample(95)
        time.sleep(0.5)
    wait_for(lambda: hook.events() == ["firing"], 10, "the firing webhook")
    # Under the threshold for the whole window: resolved.
    started = time.monotonic()
    while firing():
        assert time.monotonic() - started < 90, "cpu-high did not resolve"
        sample(10)
        time.sleep(0.5)
    wait_for(lambda: hook.events() == ["firing", "resolved"], 10, "the resolved webhook")

    # Silenced: it fires again, shows silenced, and nothing is sent.
    api.ok("POST", "/api/v1/alerts/silences",
           json={"rule": "cpu-high", "duration_s": 600, "comment": "load test"})  # fmt: skip
    started = time.monotonic()
    while not firing():
        assert time.monotonic() - started < DEADLINE_S, "cpu-high did not fire again"
        sample(99)
        time.sleep(0.5)
    [alert] = firing()
    assert alert["silenced"] is True
    time.sleep(3)
    assert hook.events() == ["firing", "resolved"]
    [note] = api.ok("GET", f"/api/v1/alerts/{alert['id']}/notifications")
    assert note["status"] == "silenced"


def test_uptime_checks_measure_every_domain_and_downtime_alerts(
    admin: Api, node: EdgeAgent, origins: OriginSet
) -> None:
    api = admin.in_project("blog")
    origin = origins.start("blog")
    api.ok("POST", "/api/v1/infrastructure/domains", json={"domain": "blog.localhost"})
    api.ok(
        "POST",
        "/api/v1/infrastructure/cdn",
        json={"origins": [{"url": origin.url}], "security": {"force_https": False}},
    )

    def value(series: str) -> float | None:
        got = api.ok("GET", f"/api/v1/metrics?series={series}&domain=blog.localhost")["results"]
        return got[0]["points"][-1]["value"] if got else None

    wait_for(lambda: value("domain_up") == 1.0, 30, "the domain checked up")
    assert value("dns_up") == 1.0  # the node's own DNS server answers for it
    wait_for(lambda: value("uptime_percent") == 100.0, 30, "uptime reported")

    # The shipped rule waits a minute (a check every minute by default); this node checks
    # every 2 s.
    api.ok("PATCH", "/api/v1/alerts/rules/domain-down", json={"for_s": 2})
    origin.terminate()  # no cache: the edge answers 502 for the domain
    wait_for(lambda: value("domain_up") == 0.0, 30, "the domain checked down")
    [alert] = wait_for(
        lambda: api.ok("GET", "/api/v1/alerts?rule=domain-down&state=firing"),
        DEADLINE_S,
        "the downtime alert",
    )
    assert alert["object_id"] == "blog.localhost" and alert["severity"] == "critical"
    assert (value("uptime_percent") or 100.0) < 100.0
