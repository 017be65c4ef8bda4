"""``GET /api/v1/infrastructure/cdn/state``: the project's CDN config, or that it has none,
answered 200 either way (``GET /cdn`` answers 404 without one), with the active domains a
config serves; for any role of the project."""

from __future__ import annotations

from typing import Any

from conftest import Api
from edgeplane.model.enums import Role
from edgeplane.store.actor import LOCAL
from edgeplane.store.tables import DomainRow

CDN = "/api/v1/infrastructure/cdn"


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if status != 204 else None


def add_domain(api: Api, name: str, status: str = "active") -> None:
    with api.db.transaction(LOCAL, "default") as tx:
        tx.session.add(
            DomainRow(name=name, project_id="default", environment="prod", status=status)
        )


def test_state_without_and_with_a_config(api: Api) -> None:
    add_domain(api, "b.example.com")
    add_domain(api, "a.example.com")
    add_domain(api, "pending.example.com", status="pending")
    assert api.get(CDN).status_code == 404
    viewer = api.token(Role.VIEWER)
    state = ok(api.call("GET", f"{CDN}/state", viewer))
    assert state == {
        "configured": False,
        "cdn_deployment": None,
        "domains": ["a.example.com", "b.example.com"],
    }
    body = {"origins": [{"url": "http://10.0.0.5:8080"}], "cache_rules": [{"pattern": "/*"}]}
    created = ok(api.post(CDN, json=body), 201)["cdn_deployment"]
    state = ok(api.call("GET", f"{CDN}/state", viewer))
    assert state["configured"] is True
    assert state["cdn_deployment"] == ok(api.get(CDN)) == created
    assert state["domains"] == created["domains"] == ["a.example.com", "b.example.com"]
    ok(api.delete(CDN), 204)
    assert ok(api.get(f"{CDN}/state"))["configured"] is False


def test_state_needs_a_role_in_the_project(api: Api) -> None:
    ok(api.post("/api/v1/projects", json={"id": "other", "name": "other"}), 201)
    viewer = api.token(Role.VIEWER)
    r = api.call("GET", f"{CDN}/state", viewer, params={"project": "other"})
    assert r.status_code == 403, r.text
    assert api.client.get(f"{CDN}/state").status_code == 401
