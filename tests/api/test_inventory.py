"""Inventory over HTTP: regions, data centers, servers and the services on them.

Create / read / list / PATCH / delete with caller-chosen ids (as in the guides: ``server-123``,
``dc-na-1``) and generated ones, and deletes refused while an object is still in use.
"""

from __future__ import annotations

from typing import Any

from conftest import Api
from edgeplane.services import servers
from edgeplane.store.actor import LOCAL

INV = "/api/v1/infrastructure"


def server_body(server_id: str | None = "server-123", **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "US East Primary",
        "type": "primary",
        "region": "americas",
        "location": "us-east",
        "capacity": {"cpu": 80.0, "memory": 160.0, "storage": 1000.0},
    }
    if server_id is not None:
        body["id"] = server_id
    body.update(kw)
    return body


def dc_body(dc_id: str | None = "dc-na-1", **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "NA Primary",
        "region": "na",
        "location": "us-east",
        "tier": "TIER_3",
        "capacity": {"cpu": 1000, "memory": 4000, "storage": 10000},
    }
    if dc_id is not None:
        body["id"] = dc_id
    body.update(kw)
    return body


def created(r: Any) -> dict[str, Any]:
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def ids(api: Api, path: str) -> list[str]:
    r = api.get(path)
    assert r.status_code == 200, r.text
    body = r.json()
    items = body["items"] if isinstance(body, dict) else body
    return [i.get("id", i.get("code")) for i in items]


def assert_conflict(r: Any, *words: str) -> None:
    assert r.status_code == 409, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    doc = r.json()
    assert doc["status"] == 409 and doc["type"].endswith("/conflict")
    for word in words:
        assert word in doc["detail"], doc


# Regions ----------------------------------------------------------------------------------


def test_catalog_regions_are_listed(api: Api) -> None:
    codes = ids(api, f"{INV}/regions")
    assert {"us-east", "eu-central", "ap-northeast", "sa-east"} <= set(codes)
    assert codes == sorted(codes)
    r = api.get(f"{INV}/regions/us-east")
    assert r.status_code == 200
    assert r.json()["area"] == "americas"


def test_region_crud_by_platform_admin(api: Api) -> None:
    region = created(
        api.post(
            f"{INV}/regions",
            json={
                "code": "eu-south",
                "name": "Europe South (Milan)",
                "latitude": 45.46,
                "longitude": 9.19,
            },
        )
    )
    assert region["code"] == "eu-south"
    assert region["area"] == "europe", "area is inferred from the coordinates"
    assert api.get(f"{INV}/regions/eu-south").json()["name"] == "Europe South (Milan)"
    assert "eu-south" in ids(api, f"{INV}/regions")

    r = api.patch(f"{INV}/regions/eu-south", json={"name": "Milan"})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Milan"
    assert r.json()["latitude"] == 45.46, "PATCH keeps the fields it does not name"

    r = api.patch(f"{INV}/regions/eu-south", json={"code": "eu-milan"})
    assert r.status_code == 422 and r.json()["field"] == "code"

    assert api.delete(f"{INV}/regions/eu-south").status_code == 204
    r = api.get(f"{INV}/regions/eu-south")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    assert api.delete(f"{INV}/regions/eu-south").status_code == 404


def test_region_delete_refused_while_in_use(api: Api) -> None:
    created(
        api.post(
            f"{INV}/regions",
            json={
                "code": "us-south",
                "name": "US South (Dallas)",
                "latitude": 32.78,
                "longitude": -96.8,
            },
        )
    )
    created(api.post(f"{INV}/servers", json=server_body("web-1", location="us-south")))
    assert_conflict(api.delete(f"{INV}/regions/us-south"), "us-south", "1 server")
    assert api.get(f"{INV}/regions/us-south").status_code == 200

    assert api.delete(f"{INV}/servers/web-1").status_code == 204
    created(api.post(f"{INV}/datacenters", json=dc_body("dc-1", location="us-south")))
    assert_conflict(api.delete(f"{INV}/regions/us-south"), "1 data center")

    assert api.delete(f"{INV}/datacenters/dc-1").status_code == 204
    assert api.delete(f"{INV}/regions/us-south").status_code == 204


# Data centers -----------------------------------------------------------------------------


def test_data_center_crud_with_caller_ids(api: Api) -> None:
    dc1 = created(api.post(f"{INV}/datacenters", json=dc_body("dc-na-1")))
    assert dc1["id"] == "dc-na-1"
    assert dc1["project"] == "default"
    assert dc1["tier"] == 3
    assert dc1["region"] == "na"
    assert dc1["environment"] == "prod"
    assert dc1["capacity"] == {"cpu": 1000, "memory": 4000, "storage": 10000}
    assert dc1["allocated"] == {"cpu": 0, "memory": 0, "storage": 0}
    dc2 = created(
        api.post(f"{INV}/datacenters", json=dc_body("dc-na-2", location="us-west", tier=2))
    )
    assert dc2["tier"] == 2

    assert api.get(f"{INV}/datacenters/dc-na-1").json()["name"] == "NA Primary"
    assert ids(api, f"{INV}/datacenters") == ["dc-na-1", "dc-na-2"]
    assert ids(api, f"{INV}/datacenters?region=na") == ["dc-na-1", "dc-na-2"]
    assert ids(api, f"{INV}/datacenters?region=eu") == []

    r = api.patch(f"{INV}/datacenters/dc-na-1", json={"tier": "tier_4", "name": "NA One"})
    assert r.status_code == 200, r.text
    dc = r.json()
    assert (dc["tier"], dc["name"]) == (4, "NA One")
    assert dc["capacity"]["cpu"] == 1000 and dc["location"] == "us-east"
    r = api.patch(f"{INV}/datacenters/dc-na-1", json={"capacity": {"cpu": 500}})
    assert r.status_code == 200, r.text
    assert r.json()["capacity"] == {"cpu": 500, "memory": 4000, "storage": 10000}, (
        "a PATCH is a JSON merge patch (RFC 7396): nested objects merge"
    )
    for fixed in ({"location": "us-west"}, {"region": "eu"}, {"id": "dc-x"}):
        r = api.patch(f"{INV}/datacenters/dc-na-1", json=fixed)
        assert r.status_code == 422, r.text
        assert r.json()["field"] == next(iter(fixed))

    assert api.delete(f"{INV}/datacenters/dc-na-2").status_code == 204
    assert api.get(f"{INV}/datacenters/dc-na-2").status_code == 404
    assert ids(api, f"{INV}/datacenters") == ["dc-na-1"]


def test_data_center_generated_id(api: Api) -> None:
    dc = created(api.post(f"{INV}/datacenters", json=dc_body(None, tier=1)))
    assert dc["id"].startswith("dc-") and len(dc["id"]) > 3
    assert api.get(f"{INV}/datacenters/{dc['id']}").json()["tier"] == 1
    other = created(api.post(f"{INV}/datacenters", json=dc_body(None)))
    assert other["id"] != dc["id"]


def test_data_center_delete_refused_with_servers_or_dr_configs(api: Api) -> None:
    created(api.post(f"{INV}/datacenters", json=dc_body("dc-na-1")))
    created(api.post(f"{INV}/datacenters", json=dc_body("dc-na-2", location="us-west")))
    created(api.post(f"{INV}/servers", json=server_body("web-1", data_center_id="dc-na-1")))
    assert_conflict(api.delete(f"{INV}/datacenters/dc-na-1"), "1 server")

    created(
        api.post(
            f"{INV}/dr-configs",
            json={
                "id": "dr-1",
                "name": "NA DR",
                "primary_dc": "dc-na-1",
                "backup_dc": "dc-na-2",
                "rpo": 15,
                "rto": 60,
            },
        )
    )
    assert_conflict(api.delete(f"{INV}/datacenters/dc-na-2"), "dr-1")
    assert api.delete(f"{INV}/servers/web-1").status_code == 204
    assert_conflict(api.delete(f"{INV}/datacenters/dc-na-1"), "dr-1")

    assert api.delete(f"{INV}/dr-configs/dr-1").status_code == 204
    assert api.delete(f"{INV}/datacenters/dc-na-1").status_code == 204
    assert api.delete(f"{INV}/datacenters/dc-na-2").status_code == 204


# Servers ----------------------------------------------------------------------------------


def test_server_crud_with_caller_id(api: Api) -> None:
    server = created(api.post(f"{INV}/servers", json=server_body("server-123")))
    assert server["id"] == "server-123"
    assert server["type"] == "primary"
    assert server["region"] == "americas"
    assert server["location"] == "us-east"
    assert server["capacity"] == {"cpu": 80.0, "memory": 160.0, "storage": 1000.0}
    assert server["allocated"] == {"cpu": 0, "memory": 0, "storage": 0}
    assert server["status"] == "active"
    assert server["profile"] == "standard"
    assert server["data_center_id"] is None
    assert server["metrics"] is None

    got = api.get(f"{INV}/servers/server-123").json()
    assert got == server
    assert ids(api, f"{INV}/servers") == ["server-123"]

    r = api.patch(
        f"{INV}/servers/server-123",
        json={"status": "maintenance", "labels": {"rack": "a1"}, "address": "10.0.0.5"},
    )
    assert r.status_code == 200, r.text
    s = r.json()
    assert s["status"] == "maintenance"
    assert s["labels"] == {"rack": "a1"}
    assert s["address"] == "10.0.0.5"
    assert (s["name"], s["type"], s["capacity"]) == (
        server["name"],
        server["type"],
        server["capacity"],
    ), "PATCH keeps the fields it does not name"
    assert s["created_at"] == server["created_at"]
    assert api.get(f"{INV}/servers/server-123").json()["status"] == "maintenance"

    r = api.patch(f"{INV}/servers/server-123", json={"address": None})
    assert r.status_code == 200 and r.json()["address"] is None

    r = api.patch(f"{INV}/servers/server-123", json={"id": "server-456"})
    assert r.status_code == 422 and r.json()["field"] == "id"
    r = api.patch(f"{INV}/servers/server-123", json={"id": "server-123", "name": "Same id"})
    assert r.status_code == 200, "repeating the unchanged id is fine"

    assert api.delete(f"{INV}/servers/server-123").status_code == 204
    assert api.get(f"{INV}/servers/server-123").status_code == 404
    assert api.patch(f"{INV}/servers/server-123", json={"name": "x"}).status_code == 404
    assert api.delete(f"{INV}/servers/server-123").status_code == 404
    assert ids(api, f"{INV}/servers") == []


def test_server_generated_id_and_spec_enum_spellings(api: Api) -> None:
    server = created(
        api.post(
            f"{INV}/servers",
            json=server_body(None, type="EDGE", region="AMERICAS", location="us-west"),
        )
    )
    assert server["id"].startswith("srv-")
    assert server["type"] == "edge" and server["region"] == "americas"
    assert api.get(f"{INV}/servers/{server['id']}").status_code == 200


def test_server_in_data_center_and_moving_it(api: Api) -> None:
    created(api.post(f"{INV}/datacenters", json=dc_body("dc-na-1")))
    created(
        api.post(
            f"{INV}/datacenters",
            json=dc_body("dc-eu-1", region="eu", location="eu-central"),
        )
    )
    s = created(api.post(f"{INV}/servers", json=server_body("web-1", data_center_id="dc-na-1")))
    assert s["data_center_id"] == "dc-na-1"
    assert ids(api, f"{INV}/servers?data_center_id=dc-na-1") == ["web-1"]

    # Moving to another data center means moving location and region area with it.
    r = api.patch(
        f"{INV}/servers/web-1",
        json={"data_center_id": "dc-eu-1", "location": "eu-central", "region": "europe"},
    )
    assert r.status_code == 200, r.text
    assert api.get(f"{INV}/datacenters/dc-eu-1").json()["allocated"]["cpu"] == 80
    assert api.get(f"{INV}/datacenters/dc-na-1").json()["allocated"]["cpu"] == 0

    r = api.patch(f"{INV}/servers/web-1", json={"data_center_id": None})
    assert r.status_code == 200 and r.json()["data_center_id"] is None
    assert api.get(f"{INV}/datacenters/dc-eu-1").json()["allocated"]["cpu"] == 0


def test_server_delete_refused_while_it_runs_services(api: Api) -> None:
    created(api.post(f"{INV}/servers", json=server_body("server-123")))
    created(
        api.post(f"{INV}/services", json={"id": "cdn-1", "server_id": "server-123", "type": "cdn"})
    )
    assert_conflict(api.delete(f"{INV}/servers/server-123"), "cdn-1")
    assert api.get(f"{INV}/servers/server-123").status_code == 200
    assert api.delete(f"{INV}/services/cdn-1").status_code == 204
    assert api.delete(f"{INV}/servers/server-123").status_code == 204


def test_server_delete_refused_while_a_load_balancer_uses_it(api: Api) -> None:
    created(api.post(f"{INV}/servers", json=server_body("endpoint1")))
    created(api.post(f"{INV}/loadbalancer", json={"id": "lb-1", "endpoints": ["endpoint1"]}))
    assert_conflict(api.delete(f"{INV}/servers/endpoint1"), "lb-1")
    r = api.patch(f"{INV}/loadbalancer/lb-1", json={"endpoints": ["10.0.0.1:8080"]})
    assert r.status_code == 200, r.text
    assert api.delete(f"{INV}/servers/endpoint1").status_code == 204


# Services on servers ----------------------------------------------------------------------


def test_service_crud_as_in_the_guide(api: Api) -> None:
    created(api.post(f"{INV}/servers", json=server_body("server-123")))
    svc = created(
        api.post(
            f"{INV}/services",
            json={
                "server_id": "server-123",
                "type": "cdn",
                "settings": {"provider": "cloudflare", "zone": "us-east", "caching": "aggressive"},
            },
        )
    )
    assert svc["id"].startswith("svc-")
    assert svc["server_id"] == "server-123"
    assert svc["type"] == "cdn"
    assert svc["status"] == "active"
    assert svc["settings"] == {
        "provider": "cloudflare",
        "zone": "us-east",
        "caching": "aggressive",
        "default_ttl": 3600,
    }, "settings are validated per type and defaults are filled in"
    assert svc["resources"] == {"cpu": 2, "memory": 4, "storage": 50}, "the cdn default"
    assert api.get(f"{INV}/services/{svc['id']}").json() == svc

    api_svc = created(
        api.post(
            f"{INV}/services",
            json={
                "id": "api-1",
                "server_id": "server-123",
                "type": "api",
                "settings": {"port": 9000},
                "resources": {"cpu": 4, "memory": 8},
            },
        )
    )
    assert api_svc["resources"] == {"cpu": 4, "memory": 8, "storage": 0}
    assert ids(api, f"{INV}/services") == sorted([svc["id"], "api-1"])
    assert ids(api, f"{INV}/services?type=api") == ["api-1"]
    assert ids(api, f"{INV}/services?server_id=server-123") == sorted([svc["id"], "api-1"])
    assert ids(api, f"{INV}/services?server_id=nope") == []

    # PATCH merges settings key by key and re-validates them.
    r = api.patch(f"{INV}/services/{svc['id']}", json={"settings": {"caching": "standard"}})
    assert r.status_code == 200, r.text
    assert r.json()["settings"]["provider"] == "cloudflare"
    assert r.json()["settings"]["caching"] == "standard"
    r = api.patch(f"{INV}/services/{svc['id']}", json={"status": "disabled"})
    assert r.status_code == 200 and r.json()["status"] == "disabled"
    assert r.json()["resources"] == svc["resources"]
    for fixed in ({"type": "web"}, {"server_id": "server-999"}):
        r = api.patch(f"{INV}/services/{svc['id']}", json=fixed)
        assert r.status_code == 422, r.text
        assert r.json()["field"] == next(iter(fixed))

    assert api.delete(f"{INV}/services/{svc['id']}").status_code == 204
    assert api.get(f"{INV}/services/{svc['id']}").status_code == 404
    assert ids(api, f"{INV}/services") == ["api-1"]


def test_every_service_type_has_defaults(api: Api) -> None:
    created(
        api.post(
            f"{INV}/servers",
            json=server_body("big", capacity={"cpu": 100, "memory": 400, "storage": 5000}),
        )
    )
    settings: dict[str, dict[str, Any]] = {"database": {"engine": "postgresql"}}
    types = [
        "cdn",
        "web",
        "api",
        "database",
        "cache",
        "dns",
        "storage",
        "compute",
        "edge_function",
        "load_balancer",
        "monitoring",
    ]
    for t in types:
        r = api.post(
            f"{INV}/services",
            json={
                "id": f"s-{t.replace('_', '-')}",
                "server_id": "big",
                "type": t,
                "settings": settings.get(t, {}),
            },
        )
        assert r.status_code == 201, (t, r.text)
        assert r.json()["resources"]["cpu"] > 0
    assert len(ids(api, f"{INV}/services")) == len(types)


# Pagination -------------------------------------------------------------------------------


def _seed_servers(api: Api, n: int) -> None:
    """Many servers in one transaction through the service layer (HTTP is what is tested)."""
    kinds = ["primary", "secondary", "edge", "cache"]
    places = [("us-east", "americas"), ("eu-central", "europe"), ("ap-northeast", "asia_pacific")]
    with api.db.transaction(LOCAL, "default") as tx:
        for i in range(n):
            location, area = places[i % 3]
            servers.create(
                tx,
                {
                    "id": f"s-{i:04d}",
                    "name": f"server {i}",
                    "type": kinds[i % 4],
                    "region": area,
                    "location": location,
                    "status": "maintenance" if i % 10 == 0 else "active",
                    "capacity": {"cpu": 4, "memory": 8, "storage": 100},
                },
            )


def test_pagination_of_250_servers(api: Api) -> None:
    _seed_servers(api, 250)
    seen: list[str] = []
    sizes = []
    cursor = None
    for _ in range(10):
        path = f"{INV}/servers" + (f"?cursor={cursor}" if cursor else "")
        r = api.get(path)
        assert r.status_code == 200, r.text
        page = r.json()
        sizes.append(len(page["items"]))
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sizes == [100, 100, 50]
    assert len(seen) == len(set(seen)) == 250
    assert seen == sorted(seen) == [f"s-{i:04d}" for i in range(250)]

    # The order is stable: the same cursor gives the same page again.
    first = api.get(f"{INV}/servers").json()
    again = api.get(f"{INV}/servers?cursor={first['next_cursor']}").json()
    assert [s["id"] for s in again["items"]] == seen[100:200]

    r = api.get(f"{INV}/servers?limit=7")
    assert len(r.json()["items"]) == 7 and r.json()["next_cursor"] == "s-0006"
    r = api.get(f"{INV}/servers?limit=1000")
    assert len(r.json()["items"]) == 250 and r.json()["next_cursor"] is None


def test_server_list_filters(api: Api) -> None:
    _seed_servers(api, 60)

    def all_ids(query: str) -> list[str]:
        out: list[str] = []
        cursor = ""
        while True:
            page = api.get(f"{INV}/servers?{query}&limit=10{cursor}").json()
            out += [s["id"] for s in page["items"]]
            if not page["next_cursor"]:
                return out
            cursor = f"&cursor={page['next_cursor']}"

    assert all_ids("type=edge") == [f"s-{i:04d}" for i in range(60) if i % 4 == 2]
    assert all_ids("type=EDGE") == all_ids("type=edge")
    assert all_ids("location=eu-central") == [f"s-{i:04d}" for i in range(60) if i % 3 == 1]
    assert all_ids("status=maintenance") == [f"s-{i:04d}" for i in range(0, 60, 10)]
    assert all_ids("type=primary&location=us-east&status=active") == [
        f"s-{i:04d}" for i in range(60) if i % 4 == 0 and i % 3 == 0 and i % 10
    ]
    assert all_ids("region=asia_pacific") == all_ids("location=ap-northeast")
    r = api.get(f"{INV}/servers?type=mainframe")
    assert r.status_code == 422 and r.json()["field"] == "type"


# The API surface --------------------------------------------------------------------------


def test_openapi_docs_and_healthz(api: Api) -> None:
    r = api.client.get("/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    for path in (
        "/api/v1/infrastructure/regions",
        "/api/v1/infrastructure/datacenters",
        "/api/v1/infrastructure/datacenters/{dc_id}/capacity",
        "/api/v1/infrastructure/servers",
        "/api/v1/infrastructure/servers/{server_id}",
        "/api/v1/infrastructure/servers/{server_id}/capacity",
        "/api/v1/infrastructure/servers/{server_id}/metrics",
        "/api/v1/infrastructure/services",
        "/api/v1/infrastructure/loadbalancer",
        "/api/v1/infrastructure/dr-configs",
        "/api/v1/infrastructure/route",
        "/api/v1/revision",
        "/api/v1/audit",
        "/api/v1/tokens",
        "/api/v1/projects",
    ):
        assert path in paths, path
    assert set(paths["/api/v1/infrastructure/servers/{server_id}"]) >= {"get", "patch", "delete"}
    docs = api.client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    health = api.client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"


def test_patch_is_a_json_merge_patch(api: Api) -> None:
    body = {
        "id": "lab-1", "name": "lab", "type": "cache", "region": "europe",
        "location": "eu-west", "capacity": {"cpu": 4, "memory": 8, "storage": 50},
        "labels": {"team": "edge", "tier": "gold"},
    }
    assert api.post(f"{INV}/servers", json=body).status_code == 201
    r = api.patch(f"{INV}/servers/lab-1", json={"labels": {"tier": None, "zone": "a"}})
    assert r.status_code == 200, r.text
    assert r.json()["labels"] == {"team": "edge", "zone": "a"}
    r = api.patch(f"{INV}/servers/lab-1", json={"name": None})
    assert r.status_code == 422 and r.json()["field"] == "name"
