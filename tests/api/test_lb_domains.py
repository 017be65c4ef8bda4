"""A load balancer's ``domains``: the project's active domains the edge serves through it (the
CDN config's origin, or the only load balancer of a project with no CDN config)."""

from __future__ import annotations

from typing import Any

from conftest import Api

INV = "/api/v1/infrastructure"
LB = f"{INV}/loadbalancer"


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def domains_of(api: Api) -> dict[str, list[str]]:
    return {lb["id"]: lb["domains"] for lb in ok(api.get(LB))["items"]}


def test_domains_follow_the_site_pool(api: Api) -> None:
    ok(api.post(f"{INV}/domains", json={"domain": "app.localhost"}), 201)
    one = ok(api.post(LB, json={"id": "one", "endpoints": ["127.0.0.1:8001"]}), 201)
    # The only load balancer of a project with no CDN config serves its domains.
    assert one["domains"] == ["app.localhost"]
    assert ok(api.get(f"{LB}/one"))["domains"] == ["app.localhost"]

    # Two: neither is chosen until the CDN config names one.
    two = ok(api.post(LB, json={"id": "two", "endpoints": ["127.0.0.1:8002"]}), 201)
    assert two["domains"] == []
    assert domains_of(api) == {"one": [], "two": []}

    body = {"origins": [{"load_balancer": "two"}], "security": {"force_https": False}}
    ok(api.post(f"{INV}/cdn", json=body), 201)
    assert domains_of(api) == {"one": [], "two": ["app.localhost"]}
    assert ok(api.patch(f"{LB}/two", json={"retries": 2}))["domains"] == ["app.localhost"]

    # URL origins: no load balancer serves the project.
    body = {"origins": [{"url": "http://127.0.0.1:8003"}], "security": {"force_https": False}}
    ok(api.post(f"{INV}/cdn", json=body))
    assert domains_of(api) == {"one": [], "two": []}


def test_domains_are_not_in_the_audit_trail(api: Api) -> None:
    ok(api.post(f"{INV}/domains", json={"domain": "audit.localhost"}), 201)
    ok(api.post(LB, json={"id": "solo", "endpoints": ["127.0.0.1:8001"]}), 201)
    entries = ok(api.get("/api/v1/audit", params={"kind": "load_balancer"}))
    items = entries["items"] if isinstance(entries, dict) else entries
    created = [e for e in items if e.get("object_id") == "solo"]
    assert created and "backends" in created[0]["after"], items
    assert all("domains" not in (e.get("after") or {}) for e in created)
