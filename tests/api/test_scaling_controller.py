"""The scaling controller's passes on the API's database with the real local driver (origin
processes started and stopped here; no edge node, so instances never become healthy): the
schedule raises the floor, the data center's capacity bounds the growth, deleting a group
removes its instances and then the group."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import Api
from edgeplane.scaling import controller, drivers
from edgeplane.settings import Settings

INV = "/api/v1/infrastructure"
SG = f"{INV}/scaling-groups"
ORIGIN = {"command": f"{sys.executable} -m http.server {{port}} --bind 127.0.0.1",
          "stop_grace_s": 2}  # fmt: skip


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


@pytest.fixture
def world(api: Api) -> Iterator[tuple[Api, Settings]]:
    settings = Settings(home=api.tmp / "home", database_url=api.db.url)
    ok(api.post(f"{INV}/loadbalancer", json={"id": "web", "backends": []}), 201)
    try:
        yield api, settings
    finally:
        drivers.stop_local()


def dc(api: Api, cpu: float) -> None:
    ok(api.post(f"{INV}/datacenters", json={
        "id": "dc1", "name": "DC", "tier": 3, "location": "us-east",
        "capacity": {"cpu": cpu, "memory": 64, "storage": 500},
    }), 201)  # fmt: skip


def group(api: Api, **kw: Any) -> dict[str, Any]:
    body = {"id": "web", "load_balancer": "web", "data_center": "dc1", "template": ORIGIN, **kw}
    return dict(ok(api.post(SG, json=body), 201))


def run(api: Api, settings: Settings, passes: int = 1) -> dict[str, Any]:
    for _ in range(passes):
        controller.reconcile(api.db, settings, "default", "web")
    r = api.get(f"{SG}/web")
    return {} if r.status_code == 404 else dict(ok(r))


def test_a_scheduled_peak_raises_the_floor_at_once(world: tuple[Api, Settings]) -> None:
    api, settings = world
    dc(api, 64)
    group(api, min_size=1, schedule=[
        {"cron": "* * * * *", "duration_minutes": 5, "min_size": 3, "name": "launch day"},
    ])  # fmt: skip
    g = run(api, settings)
    assert g["floor"] == 3 and g["desired"] == 3
    last = g["last_action"]
    assert last["kind"] == "scale_out" and last["to_size"] == 3
    assert "launch day" in last["trigger"]
    assert len(g["instances"]) == 3
    assert {i["state"] for i in g["instances"]} <= {"starting", "registered"}
    # each instance is a server of the data center offering its service
    server = ok(api.get(f"{INV}/servers/{g['instances'][0]['server']}"))
    assert server["data_center_id"] == "dc1" and server["capacity"]["cpu"] == 1
    services = ok(api.get(f"{INV}/services", params={"server_id": server["id"]}))
    items = services["items"] if isinstance(services, dict) else services
    assert [s["type"] for s in items] == ["web"]


def test_growth_stops_at_the_data_centers_capacity(world: tuple[Api, Settings]) -> None:
    api, settings = world
    dc(api, 2.5)
    group(api, min_size=1, max_size=4)
    ok(api.patch(f"{SG}/web", json={"desired": 4}))
    g = run(api, settings, passes=2)
    assert g["desired"] == 4 and len(g["instances"]) == 2
    assert "cannot grow" in g["status_detail"] and "data center 'dc1'" in g["status_detail"]
    assert "instance_capacity.cpu" in g["status_detail"]
    steps = {s["name"] for s in g["last_action"]["steps"]}
    assert "capacity" in steps


def test_a_deleted_group_removes_its_instances_then_goes(world: tuple[Api, Settings]) -> None:
    api, settings = world
    dc(api, 64)
    g = group(api, min_size=2, max_size=2)
    g = run(api, settings)
    servers = [i["server"] for i in g["instances"]]
    assert len(servers) == 2
    assert api.delete(f"{SG}/web").status_code == 202
    assert ok(api.get(f"{SG}/web"))["status"] == "deleting"
    run(api, settings, passes=2)
    assert api.get(f"{SG}/web").status_code == 404
    for server in servers:
        assert api.get(f"{INV}/servers/{server}").status_code == 404
    assert ok(api.get(f"{INV}/loadbalancer/web/backends")) == []
    assert api.delete(f"{INV}/loadbalancer/web").status_code == 204


def test_a_groups_instances_are_its_own_not_the_project_files(world: tuple[Api, Settings]) -> None:
    """Export leaves out the servers, services and backends a group made, and a plan of the
    export with ``prune`` neither removes nor changes them (the group changes them)."""
    api, settings = world
    dc(api, 64)
    group(api, min_size=2, max_size=2)
    g = run(api, settings, passes=2)
    made = {i["server"] for i in g["instances"]}
    backends = ok(api.get(f"{INV}/loadbalancer/web/backends"))
    assert {b["address"] for b in backends} == made  # registered, waiting for the edge
    doc = ok(api.get("/api/v1/iac/export"))
    text = str(doc)
    assert not any(server in text for server in made)
    plan = ok(api.post("/api/v1/iac/plan", json={"document": doc, "prune": True}))
    assert plan["changes"] == [], plan["changes"]


def test_the_cloud_driver_makes_and_removes_the_groups_machines(
    world: tuple[Api, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The controller with the ``cloud`` driver on Libcloud's in-memory ``dummy`` provider:
    machines made (named for the group), their servers at the machines' addresses, registered
    in the load balancer, then removed with the group."""
    api, settings = world
    monkeypatch.setenv("EP_TEST_DUMMY_KEY", "0")
    dc(api, 64)
    template = {"provider": "dummy", "credentials": {"key": "env:EP_TEST_DUMMY_KEY"},
                "image": "i2", "size": "s1", "port": 8080}  # fmt: skip
    group(api, driver="cloud", template=template, min_size=2, max_size=2)
    g = run(api, settings, passes=2)
    assert [i["state"] for i in g["instances"]] == ["registered", "registered"]
    for inst in g["instances"]:
        assert inst["address"].endswith(":8080") and inst["driver_ref"]
        server = ok(api.get(f"{INV}/servers/{inst['server']}"))
        assert server["address"] == inst["address"].rsplit(":", 1)[0]
        assert server["labels"]["driver"] == "cloud"
    machines = drivers.driver_for("cloud", root=settings.home / "scaling").list("default/web")
    assert sorted(m.name for m in machines) == sorted(i["id"] for i in g["instances"])
    assert api.delete(f"{SG}/web").status_code == 202
    run(api, settings, passes=2)
    assert api.get(f"{SG}/web").status_code == 404
    assert drivers.driver_for("cloud", root=settings.home / "scaling").list("default/web") == []
