"""Capacity accounting over HTTP: what data centers and servers have, hold and have left.

A data center's allocation is the sum of its servers' capacities; a server's is the sum of its
services' resources (a default per type when not given). Nothing may be over-allocated, even
by requests racing each other.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from conftest import Api

INV = "/api/v1/infrastructure"
SERVERS = f"{INV}/servers"
SERVICES = f"{INV}/services"
DCS = f"{INV}/datacenters"


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if status != 204 else None


def cap(cpu: float, memory: float, storage: float) -> dict[str, float]:
    return {"cpu": cpu, "memory": memory, "storage": storage}


def add_dc(api: Api, dc_id: str, capacity: dict[str, float]) -> None:
    ok(
        api.post(
            DCS,
            json={
                "id": dc_id,
                "name": dc_id,
                "region": "na",
                "location": "us-east",
                "tier": 3,
                "capacity": capacity,
            },
        ),
        201,
    )


def add_server(api: Api, server_id: str, capacity: dict[str, float], dc: str | None = None) -> None:
    ok(
        api.post(
            SERVERS,
            json={
                "id": server_id,
                "name": server_id,
                "type": "primary",
                "region": "americas",
                "location": "us-east",
                "capacity": capacity,
                "data_center_id": dc,
            },
        ),
        201,
    )


def test_data_center_allocation_is_the_sum_of_its_servers(api: Api) -> None:
    add_dc(api, "dc-na-1", cap(100, 400, 4000))
    assert ok(api.get(f"{DCS}/dc-na-1/capacity")) == {
        "total": cap(100, 400, 4000),
        "allocated": cap(0, 0, 0),
        "free": cap(100, 400, 4000),
    }
    add_server(api, "a", cap(10, 40, 500), "dc-na-1")
    add_server(api, "b", cap(20.5, 64, 1000), "dc-na-1")
    add_server(api, "c", cap(1, 1, 1))  # not in the data center
    report = ok(api.get(f"{DCS}/dc-na-1/capacity"))
    assert report["allocated"] == cap(30.5, 104, 1500)
    assert report["free"] == cap(69.5, 296, 2500)
    assert ok(api.get(f"{DCS}/dc-na-1"))["allocated"] == cap(30.5, 104, 1500)
    listed = ok(api.get(DCS))["items"]
    assert listed[0]["allocated"] == cap(30.5, 104, 1500)

    # Resizing a server counts it once: b may grow into everything that is free.
    ok(api.patch(f"{SERVERS}/b", json={"capacity": cap(90, 360, 3500)}))
    assert ok(api.get(f"{DCS}/dc-na-1/capacity"))["free"] == cap(0, 0, 0)
    r = api.post(
        SERVERS,
        json={
            "id": "d",
            "name": "d",
            "type": "edge",
            "region": "americas",
            "location": "us-east",
            "capacity": cap(0.5, 0, 0),
            "data_center_id": "dc-na-1",
        },
    )
    assert r.status_code == 409 and r.json()["field"] == "capacity.cpu"
    # A server with no capacity fits anywhere.
    add_server(api, "zero", cap(0, 0, 0), "dc-na-1")

    ok(api.delete(f"{SERVERS}/a"), 204)
    assert ok(api.get(f"{DCS}/dc-na-1/capacity"))["allocated"] == cap(90, 360, 3500)
    ok(api.patch(f"{SERVERS}/b", json={"data_center_id": None}))
    assert ok(api.get(f"{DCS}/dc-na-1/capacity"))["allocated"] == cap(0, 0, 0)
    # The data center may now shrink to nothing.
    ok(api.patch(f"{DCS}/dc-na-1", json={"capacity": cap(0, 0, 0)}))


def test_server_allocation_is_the_sum_of_its_services(api: Api) -> None:
    add_server(api, "server-123", cap(16, 64, 1000))
    ok(api.post(SERVICES, json={"id": "cdn", "server_id": "server-123", "type": "cdn"}), 201)
    ok(api.post(SERVICES, json={"id": "dns", "server_id": "server-123", "type": "dns"}), 201)
    ok(
        api.post(
            SERVICES,
            json={
                "id": "api",
                "server_id": "server-123",
                "type": "api",
                "resources": cap(3, 10, 0),
            },
        ),
        201,
    )
    # cdn default 2/4/50 + dns default 0.5/1/1 + api as given 3/10/0
    expected = cap(5.5, 15, 51)
    report = ok(api.get(f"{SERVERS}/server-123/capacity"))
    assert report == {"total": cap(16, 64, 1000), "allocated": expected, "free": cap(10.5, 49, 949)}
    assert ok(api.get(f"{SERVERS}/server-123"))["allocated"] == expected
    assert ok(api.get(SERVERS))["items"][0]["allocated"] == expected

    # Exactly what is free fits; a hair more does not.
    ok(
        api.post(
            SERVICES,
            json={
                "id": "fill",
                "server_id": "server-123",
                "type": "compute",
                "resources": cap(10.5, 49, 949),
            },
        ),
        201,
    )
    assert ok(api.get(f"{SERVERS}/server-123/capacity"))["free"] == cap(0, 0, 0)
    r = api.post(
        SERVICES, json={"server_id": "server-123", "type": "web", "resources": cap(0, 0, 0.01)}
    )
    assert r.status_code == 409 and r.json()["field"] == "resources.storage"
    assert r.json()["type"].endswith("/capacity-exceeded")

    # A service resized counts itself once; a disabled one still holds its reservation.
    ok(api.patch(f"{SERVICES}/api", json={"resources": cap(3, 10, 0), "status": "disabled"}))
    assert ok(api.get(f"{SERVERS}/server-123/capacity"))["free"] == cap(0, 0, 0)

    # The server can't shrink below what its services hold, but can grow and then shrink back.
    r = api.patch(f"{SERVERS}/server-123", json={"capacity": cap(16, 63, 1000)})
    assert r.status_code == 409 and r.json()["field"] == "capacity.memory"
    ok(api.patch(f"{SERVERS}/server-123", json={"capacity": cap(32, 128, 2000)}))
    ok(api.patch(f"{SERVERS}/server-123", json={"capacity": cap(16, 64, 1000)}))

    ok(api.delete(f"{SERVICES}/fill"), 204)
    assert ok(api.get(f"{SERVERS}/server-123/capacity"))["allocated"] == expected


def test_capacity_of_unknown_objects(api: Api) -> None:
    for path in (f"{SERVERS}/nope/capacity", f"{DCS}/nope/capacity"):
        r = api.get(path)
        assert r.status_code == 404 and "'nope'" in r.json()["detail"]


def race(n: int, attempt: Any) -> list[int]:
    """Run ``attempt(i)`` in ``n`` threads released together; their HTTP statuses."""
    barrier = threading.Barrier(n)
    statuses: list[int] = [0] * n

    def run(i: int) -> None:
        barrier.wait()
        statuses[i] = attempt(i).status_code

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return statuses


def test_concurrent_services_do_not_over_allocate_a_server(api: Api) -> None:
    # Room for exactly five 1-CPU services; eight requests race for it.
    add_server(api, "web-1", cap(5, 100, 100))
    rev = ok(api.get("/api/v1/revision"))["revision"]
    statuses = race(
        8,
        lambda i: api.post(
            SERVICES,
            json={"id": f"svc-{i}", "server_id": "web-1", "type": "web", "resources": cap(1, 1, 1)},
        ),
    )
    assert Counter(statuses) == {201: 5, 409: 3}, statuses
    assert ok(api.get(f"{SERVERS}/web-1/capacity"))["allocated"] == cap(5, 5, 5)
    assert len(ok(api.get(SERVICES))["items"]) == 5
    assert ok(api.get("/api/v1/revision"))["revision"] == rev + 5


def test_concurrent_servers_do_not_over_allocate_a_data_center(api: Api) -> None:
    add_dc(api, "dc-na-1", cap(30, 100, 100))
    statuses = race(
        8,
        lambda i: api.post(
            SERVERS,
            json={
                "id": f"s-{i}",
                "name": f"s-{i}",
                "type": "edge",
                "region": "americas",
                "location": "us-east",
                "capacity": cap(10, 1, 1),
                "data_center_id": "dc-na-1",
            },
        ),
    )
    assert Counter(statuses) == {201: 3, 409: 5}, statuses
    assert ok(api.get(f"{DCS}/dc-na-1/capacity"))["allocated"] == cap(30, 3, 3)


def test_concurrent_creation_of_one_id(api: Api) -> None:
    # Eight clients create the same server id at once: one wins, the others get a clean 409.
    statuses = race(
        8,
        lambda i: api.post(
            SERVERS,
            json={
                "id": "web-1",
                "name": f"attempt {i}",
                "type": "edge",
                "region": "americas",
                "location": "us-east",
                "capacity": cap(1, 1, 1),
            },
        ),
    )
    assert Counter(statuses) == {201: 1, 409: 7}, statuses
    assert [s["id"] for s in ok(api.get(SERVERS))["items"]] == ["web-1"]
    r = api.post(
        SERVERS,
        json={
            "id": "web-1",
            "name": "late",
            "type": "edge",
            "region": "americas",
            "location": "us-east",
            "capacity": cap(1, 1, 1),
        },
    )
    assert r.status_code == 409 and r.json()["field"] == "id"

    # Objects outside projects too.
    statuses = race(4, lambda i: api.post("/api/v1/projects", json={"id": "acme"}))
    assert Counter(statuses) == {201: 1, 409: 3}, statuses
