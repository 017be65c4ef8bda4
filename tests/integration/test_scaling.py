"""Auto-scaling end to end: ``edgeplane up`` with its local edge node (real nginx), a scaling
group on the local driver (real origin processes: ``edgeplane demo-origin``), real traffic from
wrk through the edge.

- Load from wrk (about 125 requests/s against a target of 50 per instance): the group grows
  from 1 to the 3 instances the load needs, each new instance serving only once the edge's
  checks passed, with no failed request; the load stopped, it shrinks back to 1 after its
  stabilisation window, draining each instance, with no failed request.
- An instance that exits on start is replaced, and after three failed launches the group
  stops and raises its alert.
- A load oscillating around the target does not make the group flap.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from edge_agents import Api, searchable_tmp, wait_for
from processes import ControlPlane, clean_env, start_up
from wrk_load import Wrk

pytestmark = [
    pytest.mark.integration,
    pytest.mark.serial,
    pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk (scripts/bootstrap)"),
]

INV = "/api/v1/infrastructure"
SG = f"{INV}/scaling-groups"
SITE = "scale.localhost"
ORIGIN = f"{sys.executable} -m edgeplane demo-origin --port {{port}}"
TARGET = 50.0


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[ControlPlane, Api]]:
    tmp = searchable_tmp("scaling-")
    env = clean_env(
        EDGEPLANE_SCALING_INTERVAL="0.5",
        EDGEPLANE_ANALYTICS_INTERVAL="1",
        EDGEPLANE_ALERT_INTERVAL="0.5",
    )
    cp = start_up(tmp / "cp", env=env, edge=True)
    api = Api(cp)
    try:
        wait_for(lambda: [n for n in api.nodes() if n["live"]], 30, "the local node is live")
        api.ok("POST", f"{INV}/datacenters", json={
            "id": "dc1", "name": "Local", "tier": 3, "location": "us-east",
            "capacity": {"cpu": 64, "memory": 256, "storage": 2000},
        })  # fmt: skip
        api.ok("POST", f"{INV}/domains", json={"domain": SITE})
        yield cp, api
    finally:
        api.close()
        cp.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def load_balancer(api: Api, lb_id: str) -> None:
    api.ok("POST", f"{INV}/loadbalancer", json={
        "id": lb_id, "backends": [],
        "health_check": {"path": "/health", "interval_s": 1, "timeout_s": 0.5,
                         "healthy_threshold": 1, "unhealthy_threshold": 2},
    })  # fmt: skip


def serve_from(api: Api, lb_id: str) -> None:
    api.ok("POST", f"{INV}/cdn", json={
        "origins": [{"load_balancer": lb_id}], "security": {"force_https": False},
    })  # fmt: skip


def group(api: Api, gid: str, **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": gid, "load_balancer": gid, "data_center": "dc1",
        "template": {"command": ORIGIN, "stop_grace_s": 5},
        "min_size": 1, "max_size": 4, "metric_window_s": 10, "cooldown_s": 3,
        "scale_in_stabilization_s": 15, "health_timeout_s": 20, "drain_s": 2,
        "policies": [{"type": "target_tracking", "metric": "requests_per_second",
                      "target": TARGET}],
    }  # fmt: skip
    body.update(kw)
    doc: dict[str, Any] = api.ok("POST", SG, json=body)
    return doc


def show(api: Api, gid: str) -> dict[str, Any]:
    doc: dict[str, Any] = api.ok("GET", f"{SG}/{gid}")
    return doc


def serving(api: Api, gid: str) -> list[dict[str, Any]]:
    return [i for i in show(api, gid)["instances"] if i["state"] == "serving"]


def history(api: Api, gid: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.ok("GET", f"{SG}/{gid}/actions", params={"limit": 100})[
        "items"
    ]
    return items


def settled(api: Api, gid: str, size: int) -> bool:
    g = show(api, gid)
    return (
        g["desired"] == size
        and len(g["instances"]) == size
        and all(i["state"] == "serving" for i in g["instances"])
    )


def test_the_group_grows_with_the_load_and_shrinks_after_it_with_no_failed_request(
    world: tuple[ControlPlane, Api],
) -> None:
    cp, api = world
    load_balancer(api, "web")
    serve_from(api, "web")
    group(api, "web")
    wait_for(lambda: settled(api, "web", 1), 60, "the first instance serving")
    url = f"http://127.0.0.1:{cp.http_port}/"
    first = serving(api, "web")[0]
    server = api.ok("GET", f"{INV}/servers/{first['server']}")
    assert server["data_center_id"] == "dc1" and server["labels"]["scaling_group"] == "web"
    # it offers its service in the inventory, measured: route_request finds it
    route = wait_for(
        lambda: (
            (r := api.http.get(
                f"{INV}/route", params={"client_ip": "8.8.8.8", "service_type": "web"}
            ).json()).get("server", {}).get("metrics") and r
        ),
        15,
        "route_request finds the instance, with its metrics",
    )  # fmt: skip
    assert route["id"] == first["server"], route
    assert route["server"]["metrics"]["memory_percent"] > 0

    with Wrk(url, SITE, connections=5, delay_ms=38) as load:
        started = time.monotonic()
        grown = wait_for(
            lambda: (g := show(api, "web"))["desired"] >= 3 and g, 60, "the group asks for 3"
        )
        wait_for(lambda: settled(api, "web", 3), 60, "three instances serving")
        took = time.monotonic() - started
        time.sleep(8)  # the three share the load: the size holds
        held = show(api, "web")
        rate = load.stop().rate
    result = load.result
    assert result is not None
    print(f"\nload {rate:.0f} req/s: 3 instances serving after {took:.1f} s; "
          f"{result.requests} requests, failed {result.errors}")  # fmt: skip
    assert result.failed == 0, result.errors
    needed = math.ceil(rate / TARGET)
    assert grown["desired"] == needed == 3 and held["desired"] == 3, (rate, held["metrics"])
    assert held["metrics"]["requests_per_second"] < TARGET
    out = next(a for a in history(api, "web") if a["kind"] == "scale_out" and a["to_size"] == 3)
    assert out["metric"] == "requests_per_second" and out["value"] > TARGET
    assert out["status"] == "succeeded"
    names = [s["name"] for s in out["steps"]]
    assert names == ["triggered", "provisioned", "registered", "healthy", "done"], names
    # every instance of the group is a backend waiting for the edge's check, and a server
    backends = api.ok("GET", f"{INV}/loadbalancer/web/backends")
    assert len(backends) == 3 and all(b["wait_for_check"] for b in backends)

    # The load stops: back to 1 after the scale-in window, each instance drained first.
    with Wrk(url, SITE, connections=1, delay_ms=100) as trickle:
        wait_for(lambda: settled(api, "web", 1), 60, "back to one instance")
        quiet = trickle.stop()
    print(f"scale-in under {quiet.rate:.0f} req/s: {quiet.requests} requests, "
          f"failed {quiet.errors}")  # fmt: skip
    assert quiet.failed == 0, quiet.errors
    ins = [a for a in history(api, "web") if a["kind"] == "scale_in"]
    assert ins and all(a["status"] == "succeeded" for a in ins), [
        (a["from_size"], a["to_size"], a["status"], a["detail"], [s["name"] for s in a["steps"]])
        for a in ins
    ]
    assert {"drained", "deregistered", "deleted"} <= {s["name"] for s in ins[0]["steps"]}
    gone = [i for i in api.ok("GET", f"{SG}/web/instances", params={"ended": "true"})
            if i["state"] == "deleted"]  # fmt: skip
    assert len(gone) == 2
    for inst in gone:
        assert api.http.get(f"{INV}/servers/{inst['server']}").status_code == 404


def test_an_instance_that_exits_on_start_is_replaced_and_the_group_stops_after_three(
    world: tuple[ControlPlane, Api],
) -> None:
    _cp, api = world
    load_balancer(api, "broken")
    group(api, "broken", template={"command": 'sh -c "exit 3" {port}'}, max_failures=3)
    stopped = wait_for(
        lambda: (g := show(api, "broken"))["status"] == "stopped" and g, 30, "the group stops"
    )
    assert stopped["failures"] == 3 and "3 launches failed in a row" in stopped["status_detail"]
    assert "status 3" in stopped["status_detail"]
    ended = api.ok("GET", f"{SG}/broken/instances", params={"ended": "true"})
    assert [i["state"] for i in ended] == ["failed"] * 3
    assert all("exited on start" in i["detail"] for i in ended)
    alerts = api.ok("GET", "/api/v1/alerts", params={"kind": "scaling_failed"})
    assert [a["object_id"] for a in alerts] == ["broken"]
    time.sleep(2)  # it stays stopped: no fourth launch
    assert len(api.ok("GET", f"{SG}/broken/instances", params={"ended": "true"})) == 3
    api.ok("DELETE", f"{SG}/broken")


def test_a_load_oscillating_around_the_target_does_not_make_the_group_flap(
    world: tuple[ControlPlane, Api],
) -> None:
    cp, api = world
    load_balancer(api, "wave")
    serve_from(api, "wave")
    group(api, "wave", scale_in_stabilization_s=30, metric_window_s=10)
    wait_for(lambda: settled(api, "wave", 1), 60, "the first instance serving")
    before = len(history(api, "wave"))
    url = f"http://127.0.0.1:{cp.http_port}/"
    # 3 connections: about 75 req/s for 5 s, then about 30 for 5 s, for 35 s
    with Wrk(url, SITE, connections=3, delay_ms=38, slow_ms=100, period_s=5) as wave:
        time.sleep(35)
        result = wave.stop()
    actions = history(api, "wave")[: len(history(api, "wave")) - before]
    print(
        f"\noscillating load, {result.rate:.0f} req/s on average: {len(actions)} action(s): "
        + ", ".join(f"{a['kind']} {a['from_size']}->{a['to_size']}" for a in actions)
    )
    assert result.failed == 0, result.errors
    assert len(actions) <= 2, actions
    assert all(a["kind"] == "scale_out" for a in actions), actions


def test_an_instance_never_healthy_by_the_edge_is_replaced_then_the_group_stops(
    world: tuple[ControlPlane, Api],
) -> None:
    _cp, api = world
    load_balancer(api, "sick")  # checks /health, which this origin answers 404
    serve_from(api, "sick")  # the edge checks the pools it serves
    sick = f"{sys.executable} -m http.server {{port}} --bind 127.0.0.1"
    group(api, "sick", template={"command": sick}, health_timeout_s=5, max_failures=2)
    stopped = wait_for(
        lambda: (g := show(api, "sick"))["status"] == "stopped" and g, 40, "the group stops"
    )
    ended = api.ok("GET", f"{SG}/sick/instances", params={"ended": "true"})
    assert [i["state"] for i in ended] == ["failed", "failed"]
    for inst in ended:
        assert "not healthy by the edge's checks after" in inst["detail"], inst
        assert "404" in inst["detail"], inst  # the edge node's reason
    assert "2 launches failed in a row" in stopped["status_detail"]
    assert [a["object_id"] for a in api.ok("GET", "/api/v1/alerts",
                                           params={"kind": "scaling_failed"})
            if a["object_id"] == "sick"] == ["sick"]  # fmt: skip
    assert api.ok("GET", f"{INV}/loadbalancer/sick/backends") == []  # none left behind
    api.ok("DELETE", f"{SG}/sick")
