"""Global operations over HTTP: load balancers and disaster-recovery configs.

(Routing has its own tests in test_routing.py.)
"""

from __future__ import annotations

from typing import Any

from conftest import Api

INV = "/api/v1/infrastructure"
LB = f"{INV}/loadbalancer"
DR = f"{INV}/dr-configs"


def created(r: Any) -> dict[str, Any]:
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def add_server(api: Api, server_id: str, location: str = "us-east", **kw: Any) -> dict[str, Any]:
    area = {
        "us-east": "americas",
        "us-west": "americas",
        "eu-central": "europe",
        "eu-west": "europe",
        "ap-northeast": "asia_pacific",
    }[location]
    body = {
        "id": server_id,
        "name": server_id,
        "type": "primary",
        "region": area,
        "location": location,
        "capacity": {"cpu": 16, "memory": 64, "storage": 500},
        **kw,
    }
    return created(api.post(f"{INV}/servers", json=body))


def add_dc(
    api: Api,
    dc_id: str,
    location: str = "us-east",
    tier: int = 3,
    cpu: float = 1000,
    region: str = "na",
) -> dict[str, Any]:
    body = {
        "id": dc_id,
        "name": dc_id,
        "region": region,
        "location": location,
        "tier": tier,
        "capacity": {"cpu": cpu, "memory": 4000, "storage": 10000},
    }
    return created(api.post(f"{INV}/datacenters", json=body))


# Load balancers ---------------------------------------------------------------------------


def test_load_balancer_as_in_the_guide(api: Api) -> None:
    add_server(api, "endpoint1")
    add_server(api, "endpoint2")
    lb = created(
        api.post(
            LB,
            json={
                "name": "NA Load Balancer",
                "type": "round_robin",
                "region": "na",
                "endpoints": ["endpoint1", "endpoint2"],
            },
        )
    )
    assert lb["id"].startswith("lb-")
    assert lb["name"] == "NA Load Balancer"
    assert lb["algorithm"] == "round_robin"
    assert lb["region"] == "na"
    assert lb["endpoints"] == ["endpoint1", "endpoint2"]
    hc = lb["health_check"]
    assert hc["protocol"] == "http" and hc["timeout_s"] < hc["interval_s"]
    assert api.get(f"{LB}/{lb['id']}").json() == lb
    r = api.get(LB)
    assert [x["id"] for x in r.json()["items"]] == [lb["id"]]
    assert r.json()["next_cursor"] is None


ALGORITHM_SPELLINGS = [
    ({"algorithm": "least_connections"}, "least_conn"),
    ({"type": "least_connections"}, "least_conn"),
    ({"type": "Least_Connections"}, "least_conn"),
    ({"algorithm": "leastconn"}, "least_conn"),
    ({"algorithm": "LEAST_CONN"}, "least_conn"),
    ({"type": "roundrobin"}, "round_robin"),
    ({"type": "ip_hash"}, "ip_hash"),
    ({"algorithm": "iphash"}, "ip_hash"),
    ({"type": "weighted"}, "weighted"),
    ({"type": "DYNAMIC"}, "dynamic"),
    ({}, "round_robin"),
]


def test_load_balancer_algorithm_spellings(api: Api) -> None:
    for i, (given, stored) in enumerate(ALGORITHM_SPELLINGS):
        lb = created(api.post(LB, json={"id": f"lb-{i}", "endpoints": ["10.0.0.1:80"], **given}))
        assert lb["algorithm"] == stored, given
        assert api.get(f"{LB}/lb-{i}").json()["algorithm"] == stored
    ids = [lb["id"] for lb in api.get(LB).json()["items"]]
    assert ids == sorted(f"lb-{i}" for i in range(len(ALGORITHM_SPELLINGS)))


def test_load_balancer_endpoint_forms(api: Api) -> None:
    add_server(api, "web-1")
    endpoints = [
        "web-1",
        "10.0.0.1:8080",
        "origin.example.com:443",
        "[2001:db8::1]:8443",
        "https://origin.example.com/app",
        "http://10.0.0.2:8000",
    ]
    lb = created(api.post(LB, json={"id": "mixed", "endpoints": endpoints}))
    assert lb["endpoints"] == endpoints
    assert lb["name"] == "mixed", "the name defaults to the id"


def test_load_balancer_patch(api: Api) -> None:
    add_server(api, "endpoint1")
    add_server(api, "endpoint2")
    created(
        api.post(
            LB,
            json={
                "id": "lb-na",
                "name": "NA",
                "type": "round_robin",
                "endpoints": ["endpoint1"],
                "health_check": {"path": "/healthz", "interval_s": 10, "timeout_s": 3},
            },
        )
    )
    r = api.patch(f"{LB}/lb-na", json={"type": "least_connections"})
    assert r.status_code == 200, r.text
    assert r.json()["algorithm"] == "least_conn"
    assert r.json()["endpoints"] == ["endpoint1"]

    r = api.patch(f"{LB}/lb-na", json={"health_check": {"unhealthy_threshold": 5}})
    assert r.status_code == 200, r.text
    hc = r.json()["health_check"]
    assert (hc["path"], hc["interval_s"], hc["timeout_s"], hc["unhealthy_threshold"]) == (
        "/healthz",
        10,
        3,
        5,
    ), "a health check PATCH merges into the current one"

    r = api.patch(
        f"{LB}/lb-na", json={"endpoints": ["endpoint1", "endpoint2"], "algorithm": "weighted"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["endpoints"] == ["endpoint1", "endpoint2"]
    assert r.json()["name"] == "NA"
    assert api.get(f"{LB}/lb-na").json()["algorithm"] == "weighted"

    r = api.patch(f"{LB}/lb-na", json={"endpoints": ["endpoint3"]})
    assert r.status_code == 422 and r.json()["field"] == "endpoints.0"
    assert api.get(f"{LB}/lb-na").json()["endpoints"] == ["endpoint1", "endpoint2"]

    assert api.delete(f"{LB}/lb-na").status_code == 204
    assert api.get(f"{LB}/lb-na").status_code == 404
    assert api.delete("/api/v1/infrastructure/servers/endpoint1").status_code == 204


# DR configs -------------------------------------------------------------------------------


def test_dr_config_as_in_the_guide(api: Api) -> None:
    add_dc(api, "dc-na-1", "us-east", tier=3)
    add_dc(api, "dc-na-2", "us-west", tier=3)
    dr = created(
        api.post(
            DR,
            json={
                "name": "NA DR Config",
                "primary_dc": "dc-na-1",
                "backup_dc": "dc-na-2",
                "rpo": 15,
                "rto": 60,
            },
        )
    )
    assert dr["id"].startswith("dr-")
    assert (dr["primary_dc"], dr["backup_dc"], dr["rpo"], dr["rto"]) == (
        "dc-na-1",
        "dc-na-2",
        15,
        60,
    )
    assert dr["warnings"] == [], "a different location, same tier and room enough: no warning"
    assert api.get(f"{DR}/{dr['id']}").json() == dr
    assert [d["id"] for d in api.get(DR).json()["items"]] == [dr["id"]]

    r = api.patch(f"{DR}/{dr['id']}", json={"rpo": 5})
    assert r.status_code == 200, r.text
    assert (r.json()["rpo"], r.json()["rto"], r.json()["name"]) == (5, 60, "NA DR Config")

    # Swapping roles is a PATCH too.
    r = api.patch(f"{DR}/{dr['id']}", json={"primary_dc": "dc-na-2", "backup_dc": "dc-na-1"})
    assert r.status_code == 200, r.text
    assert r.json()["primary_dc"] == "dc-na-2"

    assert api.delete(f"{DR}/{dr['id']}").status_code == 204
    assert api.get(f"{DR}/{dr['id']}").status_code == 404


def test_dr_config_warnings(api: Api) -> None:
    add_dc(api, "dc-na-1", "us-east", tier=4, cpu=100)
    add_dc(api, "dc-na-2", "us-east", tier=2, cpu=10)
    add_server(api, "db-1", data_center_id="dc-na-1")  # uses 16 CPU of the primary
    dr = created(
        api.post(
            DR,
            json={
                "id": "dr-na",
                "name": "NA DR",
                "primary_dc": "dc-na-1",
                "backup_dc": "dc-na-2",
                "rpo": 15,
                "rto": 60,
            },
        )
    )
    text = " | ".join(dr["warnings"])
    assert len(dr["warnings"]) == 3, dr["warnings"]
    assert "same location" in text and "us-east" in text
    assert "10 CPU cores" in text and "16" in text, "backup smaller than what the primary uses"
    assert "tier 2" in text and "tier 4" in text

    # Warnings are derived from the current state, so they follow it.
    r = api.patch(
        f"{INV}/datacenters/dc-na-2",
        json={"tier": 4, "capacity": {"cpu": 100, "memory": 4000, "storage": 10000}},
    )
    assert r.status_code == 200, r.text
    warnings = api.get(f"{DR}/dr-na").json()["warnings"]
    assert len(warnings) == 1 and "same location" in warnings[0]


def test_dr_config_with_caller_id(api: Api) -> None:
    add_dc(api, "dc-na-1", "us-east")
    add_dc(api, "dc-eu-1", "eu-central", region="eu")
    dr = created(
        api.post(
            DR,
            json={
                "id": "na-to-eu",
                "name": "NA to EU",
                "primary_dc": "dc-na-1",
                "backup_dc": "dc-eu-1",
                "rpo": 1,
                "rto": 10080,
                "environment": "staging",
            },
        )
    )
    assert dr["id"] == "na-to-eu" and dr["environment"] == "staging"
