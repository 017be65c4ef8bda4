"""route_request: nearest healthy server with spare capacity, by the client's location."""

from __future__ import annotations

from typing import Any

from conftest import Api

BASE = "/api/v1/infrastructure"
LONDON = "81.2.69.142"  # GeoLite2: Willesden, GB
AMSTERDAM_V6 = "2a02:2770::21a:4aff:fe1b:4d21"  # NL
US = "1.2.3.4"  # US country point
SYDNEY = "1.1.1.1"  # AU


def server(api: Api, sid: str, location: str, region: str, **extra: Any) -> None:
    body = {
        "id": sid,
        "name": sid,
        "type": "edge",
        "region": region,
        "location": location,
        "capacity": {"cpu": 16, "memory": 64, "storage": 500},
        **extra,
    }
    r = api.post(f"{BASE}/servers", json=body)
    assert r.status_code == 201, r.text
    r = api.post(f"{BASE}/services", json={"server_id": sid, "type": "cdn"})
    assert r.status_code == 201, r.text


def route(api: Api, ip: str, service: str = "cdn") -> dict[str, Any]:
    r = api.get(f"{BASE}/route", params={"client_ip": ip, "service_type": service})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def world(api: Api) -> None:
    server(api, "us-1", "us-east", "americas")
    server(api, "eu-1", "eu-central", "europe")
    server(api, "uk-1", "uk-south", "europe")
    server(api, "ap-1", "au-southeast", "asia_pacific")


def test_europe_gets_a_european_server(api: Api) -> None:
    world(api)
    d = route(api, LONDON)
    assert d["id"] == "uk-1"
    assert d["client"]["country"] == "GB"
    assert d["distance_km"] < 50
    assert "uk-south" in d["reason"] and "nearest" in d["reason"]
    assert route(api, AMSTERDAM_V6)["id"] in {"uk-1", "eu-1"}
    assert route(api, US)["id"] == "us-1"
    assert route(api, SYDNEY)["id"] == "ap-1"


def test_unhealthy_server_is_skipped_with_a_reason(api: Api) -> None:
    world(api)
    assert api.patch(f"{BASE}/servers/uk-1", json={"status": "offline"}).status_code == 200
    d = route(api, LONDON)
    assert d["id"] == "eu-1"
    assert {"server_id": "uk-1", "reason": "status is offline"} in d["skipped"]
    assert "1 nearer server(s) skipped" in d["reason"]


def test_full_server_is_skipped(api: Api) -> None:
    world(api)
    r = api.post(f"{BASE}/servers/uk-1/metrics", json={"cpu_percent": 97, "memory_percent": 40})
    assert r.status_code == 200, r.text
    d = route(api, LONDON)
    assert d["id"] == "eu-1"
    assert d["skipped"] == [{"server_id": "uk-1", "reason": "cpu at 97% (limit 80%)"}]
    # Once it has room again it is chosen again.
    api.post(f"{BASE}/servers/uk-1/metrics", json={"cpu_percent": 20, "memory_percent": 40})
    assert route(api, LONDON)["id"] == "uk-1"


def test_stale_metrics_do_not_count(api: Api) -> None:
    world(api)
    r = api.post(
        f"{BASE}/servers/uk-1/metrics",
        json={"cpu_percent": 99, "memory_percent": 99, "at": "2020-01-01T00:00:00Z"},
    )
    assert r.status_code == 200
    assert route(api, LONDON)["id"] == "uk-1"


def test_least_loaded_server_in_the_nearest_location(api: Api) -> None:
    world(api)
    server(api, "uk-2", "uk-south", "europe")
    api.post(f"{BASE}/servers/uk-1/metrics", json={"cpu_percent": 60, "memory_percent": 50})
    api.post(f"{BASE}/servers/uk-2/metrics", json={"cpu_percent": 10, "memory_percent": 20})
    assert route(api, LONDON)["id"] == "uk-2"


def test_disabled_service_and_other_service_types(api: Api) -> None:
    world(api)
    svc = api.get(f"{BASE}/services", params={"server_id": "uk-1"}).json()["items"][0]
    api.patch(f"{BASE}/services/{svc['id']}", json={"status": "disabled"})
    assert route(api, LONDON)["id"] == "eu-1"
    r = api.get(f"{BASE}/route", params={"client_ip": LONDON, "service_type": "database"})
    assert r.status_code == 404
    assert "database" in r.json()["detail"]


def test_private_client_gets_least_loaded_server(api: Api) -> None:
    world(api)
    for sid, cpu in (("us-1", 50), ("eu-1", 5), ("uk-1", 30), ("ap-1", 70)):
        api.post(f"{BASE}/servers/{sid}/metrics", json={"cpu_percent": cpu, "memory_percent": cpu})
    d = route(api, "10.1.2.3")
    assert d["id"] == "eu-1"
    assert d["client"]["source"] == "private"
    assert d["distance_km"] is None
    assert "least-loaded" in d["reason"]


def test_ipv6_client(api: Api) -> None:
    world(api)
    d = route(api, "2001:4860:4860::8888")  # Mountain View
    assert d["id"] == "us-1"
    assert d["client"]["city"] == "Mountain View"
