"""Authentication, roles and project scoping over HTTP.

Roles are per project: a viewer reads, an editor also writes the project's objects, an admin
also manages the project's tokens. Admins of the default project administer the platform
(regions, projects, tokens of any project). Tokens are stored as hashes only.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import select

from conftest import Api
from edgeplane.store.tables import Base

INV = "/api/v1/infrastructure"
SERVERS = f"{INV}/servers"


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if status != 204 else None


def server_body(server_id: str = "web-1", **kw: Any) -> dict[str, Any]:
    return {
        "id": server_id,
        "name": server_id,
        "type": "edge",
        "region": "europe",
        "location": "eu-central",
        "capacity": {"cpu": 8, "memory": 32, "storage": 100},
        **kw,
    }


def dc_body(dc_id: str, location: str = "eu-central") -> dict[str, Any]:
    return {
        "id": dc_id,
        "name": dc_id,
        "region": "eu",
        "location": location,
        "tier": 3,
        "capacity": {"cpu": 100, "memory": 400, "storage": 1000},
    }


def issue(api: Api, name: str, roles: dict[str, str], token: str | None = None) -> Any:
    return api.post("/api/v1/tokens", token=token, json={"name": name, "roles": roles})


def forbidden(r: Any) -> None:
    assert r.status_code == 403, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"].endswith("/forbidden")


def test_viewer_reads_but_does_not_write(api: Api) -> None:
    ok(api.post(f"{INV}/datacenters", json=dc_body("dc-eu-1")), 201)
    ok(api.post(SERVERS, json=server_body(data_center_id="dc-eu-1")), 201)
    ok(api.post(f"{INV}/services", json={"id": "cdn-1", "server_id": "web-1", "type": "cdn"}), 201)
    ok(api.post(f"{INV}/loadbalancer", json={"id": "lb-1", "endpoints": ["web-1"]}), 201)
    viewer = api.token("viewer")
    for path in (
        SERVERS,
        f"{SERVERS}/web-1",
        f"{SERVERS}/web-1/capacity",
        f"{SERVERS}/web-1/metrics",
        f"{INV}/datacenters",
        f"{INV}/datacenters/dc-eu-1/capacity",
        f"{INV}/services/cdn-1",
        f"{INV}/loadbalancer/lb-1",
        f"{INV}/dr-configs",
        f"{INV}/regions",
        "/api/v1/audit",
        "/api/v1/revision",
        "/api/v1/projects/default",
        f"{INV}/route?client_ip=81.2.69.142&service_type=cdn",
    ):
        assert api.get(path, token=viewer).status_code == 200, path
    forbidden(api.post(SERVERS, token=viewer, json=server_body("web-2")))
    forbidden(api.patch(f"{INV}/loadbalancer/lb-1", token=viewer, json={"algorithm": "ip_hash"}))
    forbidden(api.delete(f"{INV}/services/cdn-1", token=viewer))
    forbidden(issue(api, "mine", {"default": "viewer"}, token=viewer))
    assert api.get(f"{INV}/services/cdn-1").status_code == 200


def test_editor_writes_project_objects_only(api: Api) -> None:
    editor = api.token("editor")
    ok(api.post(f"{INV}/datacenters", token=editor, json=dc_body("dc-eu-1")), 201)
    ok(api.post(f"{INV}/datacenters", token=editor, json=dc_body("dc-eu-2", "eu-west")), 201)
    ok(api.post(SERVERS, token=editor, json=server_body(data_center_id="dc-eu-1")), 201)
    ok(
        api.post(
            f"{INV}/services", token=editor, json={"id": "web", "server_id": "web-1", "type": "web"}
        ),
        201,
    )
    ok(
        api.post(f"{INV}/loadbalancer", token=editor, json={"id": "lb-1", "endpoints": ["web-1"]}),
        201,
    )
    ok(
        api.post(
            f"{INV}/dr-configs",
            token=editor,
            json={
                "id": "dr-1",
                "name": "EU",
                "primary_dc": "dc-eu-1",
                "backup_dc": "dc-eu-2",
                "rpo": 5,
                "rto": 30,
            },
        ),
        201,
    )
    ok(api.patch(f"{SERVERS}/web-1", token=editor, json={"status": "degraded"}))
    ok(
        api.post(
            f"{SERVERS}/web-1/metrics", token=editor, json={"cpu_percent": 10, "memory_percent": 20}
        )
    )
    ok(api.delete(f"{INV}/dr-configs/dr-1", token=editor), 204)

    forbidden(
        api.post(
            f"{INV}/regions",
            token=editor,
            json={"code": "eu-south", "name": "Milan", "latitude": 45.5, "longitude": 9.2},
        )
    )
    forbidden(api.delete(f"{INV}/regions/eu-north", token=editor))
    forbidden(api.post("/api/v1/projects", token=editor, json={"id": "acme"}))
    forbidden(issue(api, "more", {"default": "viewer"}, token=editor))
    admin_id = ok(api.get("/api/v1/whoami"))["token_id"]
    forbidden(api.delete(f"/api/v1/tokens/{admin_id}", token=editor))
    tokens = ok(api.get("/api/v1/tokens", token=editor))
    assert [t["name"] for t in tokens] == ["editor-token"], "an editor sees its own token only"


def test_project_admin_manages_its_own_tokens(api: Api) -> None:
    ok(api.post("/api/v1/projects", json={"id": "acme", "name": "Acme Corp"}), 201)
    ok(api.post("/api/v1/projects", json={"id": "globex"}), 201)
    acme_admin = api.token("admin", project="acme")

    issued = ok(issue(api, "acme-ci", {"acme": "editor"}, token=acme_admin), 201)
    assert issued["roles"] == {"acme": "editor"}
    assert issued["token"].startswith("ep_")
    assert issued["prefix"] == issued["token"][:10]
    assert issued["created_by"].startswith("admin-token")
    forbidden(issue(api, "sneaky", {"default": "viewer"}, token=acme_admin))
    forbidden(issue(api, "sneaky", {"acme": "viewer", "globex": "viewer"}, token=acme_admin))
    forbidden(api.post("/api/v1/projects", token=acme_admin, json={"id": "initech"}))
    forbidden(
        api.post(
            f"{INV}/regions",
            token=acme_admin,
            json={"code": "eu-south", "name": "Milan", "latitude": 45.5, "longitude": 9.2},
        )
    )

    # Tokens with a role in acme: its own, the new one, and the platform admin's (which got
    # the admin role in acme by creating it); it may not revoke the latter.
    listed = ok(api.get("/api/v1/tokens", token=acme_admin))
    assert sorted(t["name"] for t in listed) == ["acme-ci", "admin", "admin-token"]
    platform_admin = next(t for t in listed if t["name"] == "admin")
    assert platform_admin["roles"] == {"acme": "admin"}, "no word of projects it can't see"
    forbidden(api.delete(f"/api/v1/tokens/{platform_admin['id']}", token=acme_admin))
    assert all("token" not in t for t in listed), "secrets are shown once, at creation"
    assert [p["id"] for p in ok(api.get("/api/v1/projects", token=acme_admin))] == ["acme"]
    assert api.get("/api/v1/projects/globex", token=acme_admin).status_code == 404
    platform = ok(api.get("/api/v1/projects"))
    assert [p["id"] for p in platform] == ["acme", "default", "globex"]

    # The new token works in its project, and only there.
    ci = issued["token"]
    ok(api.post(f"{SERVERS}?project=acme", token=ci, json=server_body()), 201)
    forbidden(api.get(SERVERS, token=ci))
    forbidden(api.get(f"{SERVERS}?project=globex", token=ci))
    who = ok(api.get("/api/v1/whoami", token=ci))
    assert who["roles"] == {"acme": "editor"} and who["actor"].startswith("acme-ci")

    # A token's own holder, or its project's admin, may revoke it.
    revoked = ok(api.delete(f"/api/v1/tokens/{issued['id']}", token=acme_admin))
    assert revoked["revoked_at"] is not None
    r = api.get(f"{SERVERS}?project=acme", token=ci)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]


def test_platform_admin_issues_tokens_for_any_project(api: Api) -> None:
    ok(api.post("/api/v1/projects", json={"id": "acme"}), 201)
    issued = ok(issue(api, "multi", {"acme": "viewer", "default": "editor"}), 201)
    assert issued["roles"] == {"acme": "viewer", "default": "editor"}
    tok = issued["token"]
    ok(api.post(SERVERS, token=tok, json=server_body()), 201)
    assert api.get(f"{SERVERS}?project=acme", token=tok).status_code == 200
    forbidden(api.post(f"{SERVERS}?project=acme", token=tok, json=server_body()))
    assert "multi" in {t["name"] for t in ok(api.get("/api/v1/tokens"))}


def test_tokens_are_stored_hashed_and_never_in_clear(api: Api) -> None:
    issued = ok(issue(api, "deploy", {"default": "editor"}), 201)
    secret = issued["token"]
    ok(api.post(SERVERS, token=secret, json=server_body()), 201)  # used: last_used_at moves
    ok(api.delete(f"/api/v1/tokens/{issued['id']}"), 200)  # revoking writes audit events too

    with api.db.engine.connect() as conn:
        rows = {
            table.name: [dict(r._mapping) for r in conn.execute(select(table))]
            for table in Base.metadata.sorted_tables
        }
    stored = next(t for t in rows["api_tokens"] if t["id"] == issued["id"])
    assert stored["secret_hash"] != secret
    assert stored["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert stored["prefix"] == secret[:10] and len(secret) > 30
    assert stored["last_used_at"] is not None and stored["revoked_at"] is not None
    everything = repr(rows)
    assert rows["audit_events"], "the token's creation and revocation are audited"
    for clear in (secret, secret[10:], api.admin_token, api.admin_token[10:]):
        assert clear not in everything, "a token secret is stored in clear"


def test_revoking(api: Api) -> None:
    issued = ok(issue(api, "short-lived", {"default": "editor"}), 201)
    secret = issued["token"]
    assert ok(api.get("/api/v1/whoami", token=secret))["token_id"] == issued["id"]
    # A token may revoke itself, even as an editor.
    first = ok(api.delete(f"/api/v1/tokens/{issued['id']}", token=secret))
    assert first["revoked_at"] is not None
    r = api.get("/api/v1/whoami", token=secret)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    again = ok(api.delete(f"/api/v1/tokens/{issued['id']}"))
    assert again["revoked_at"] == first["revoked_at"], "revoking twice changes nothing"
    r = api.delete("/api/v1/tokens/tok-000000000000")
    assert r.status_code == 404
    listed = {t["id"]: t for t in ok(api.get("/api/v1/tokens"))}
    assert listed[issued["id"]]["revoked_at"] == first["revoked_at"]


def test_project_scoping_isolates_objects(api: Api) -> None:
    ok(api.post("/api/v1/projects", json={"id": "acme"}), 201)
    acme = {**api.headers(), "X-Edgeplane-Project": "acme"}

    ok(api.post(f"{INV}/datacenters", json=dc_body("dc-1")), 201)
    ok(api.post(f"{INV}/datacenters?project=acme", json=dc_body("dc-1", "eu-west")), 201)
    # The same server id in two projects, once by query parameter and once by header.
    ok(api.post(SERVERS, json=server_body(name="default web", data_center_id="dc-1")), 201)
    r = api.client.post(
        SERVERS, headers=acme, json=server_body(name="acme web", location="eu-west")
    )
    assert r.status_code == 201, r.text
    assert r.json()["project"] == "acme"
    ok(
        api.post(
            f"{INV}/services?project=acme", json={"id": "svc", "server_id": "web-1", "type": "web"}
        ),
        201,
    )

    assert ok(api.get(f"{SERVERS}/web-1"))["name"] == "default web"
    assert ok(api.get(f"{SERVERS}/web-1?project=acme"))["name"] == "acme web"
    assert api.client.get(f"{SERVERS}/web-1", headers=acme).json()["location"] == "eu-west"
    assert [s["project"] for s in ok(api.get(SERVERS))["items"]] == ["default"]
    assert [s["project"] for s in ok(api.get(f"{SERVERS}?project=acme"))["items"]] == ["acme"]
    assert ok(api.get(f"{INV}/services"))["items"] == []
    assert ok(api.get(f"{SERVERS}/web-1/capacity?project=acme"))["allocated"]["cpu"] == 1
    assert ok(api.get(f"{SERVERS}/web-1/capacity"))["allocated"]["cpu"] == 0
    assert ok(api.get(f"{INV}/datacenters/dc-1"))["allocated"]["cpu"] == 8
    assert ok(api.get(f"{INV}/datacenters/dc-1?project=acme"))["allocated"]["cpu"] == 0

    # The query parameter wins over the header.
    both = api.client.get(f"{SERVERS}/web-1?project=default", headers=acme)
    assert both.json()["name"] == "default web"

    # A server of one project can't be used by another's objects.
    r = api.post(f"{INV}/services", json={"server_id": "missing", "type": "web"})
    assert r.status_code == 422
    r = api.post(f"{INV}/loadbalancer?project=acme", json={"endpoints": ["web-2"]})
    ok(api.post(SERVERS, json=server_body("web-2")), 201)
    r = api.post(f"{INV}/loadbalancer?project=acme", json={"endpoints": ["web-2"]})
    assert r.status_code == 422 and r.json()["field"] == "endpoints.0"

    # Deleting in one project leaves the other alone.
    ok(api.delete(f"{INV}/services/svc?project=acme"), 204)
    ok(api.delete(f"{SERVERS}/web-1?project=acme"), 204)
    assert api.get(f"{SERVERS}/web-1?project=acme").status_code == 404
    assert ok(api.get(f"{SERVERS}/web-1"))["name"] == "default web"

    # The audit trail is per project too.
    acme_events = ok(api.get("/api/v1/audit?project=acme"))["items"]
    assert {e["project"] for e in acme_events} == {"acme"}
    assert {e["object_id"] for e in acme_events} == {"dc-1", "web-1", "svc"}


def test_project_lifecycle(api: Api) -> None:
    project = ok(api.post("/api/v1/projects", json={"id": "acme", "name": "Acme"}), 201)
    assert project["name"] == "Acme"
    assert project["environments"] == ["dev", "staging", "prod"]
    assert ok(api.get("/api/v1/projects/acme"))["id"] == "acme"
    ok(api.post(f"{SERVERS}?project=acme", json=server_body()), 201)
    r = api.delete("/api/v1/projects/acme")
    assert r.status_code == 409 and "1 servers" in r.json()["detail"]
    ok(api.delete(f"{SERVERS}/web-1?project=acme"), 204)
    ok(api.delete("/api/v1/projects/acme"), 204)
    assert api.get("/api/v1/projects/acme").status_code == 404
    assert api.get(f"{SERVERS}?project=acme").status_code == 404
    r = api.delete("/api/v1/projects/default")
    assert r.status_code == 409


def test_whoami(api: Api) -> None:
    who = ok(api.get("/api/v1/whoami"))
    assert who["roles"] == {"default": "admin"}
    assert who["actor"].startswith("admin (tok-")
    assert who["token_id"] is not None
