"""The revision and the audit trail over HTTP.

Every successful change of the desired state bumps the revision by exactly one and writes one
audit event per object changed: who (the token's name), what (action, kind, object id) and the
object before and after. Refused changes write nothing.
"""

from __future__ import annotations

from typing import Any

from conftest import Api
from edgeplane.services import datacenters, servers
from edgeplane.store.actor import LOCAL

INV = "/api/v1/infrastructure"


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if status != 204 else None


def revision(api: Api) -> int:
    value: int = ok(api.get("/api/v1/revision"))["revision"]
    return value


def events(api: Api, query: str = "") -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = ok(api.get(f"/api/v1/audit?limit=1000{query}"))["items"]
    return items


def test_every_change_bumps_the_revision_once_and_is_audited(api: Api) -> None:
    bot = ok(
        api.post("/api/v1/tokens", json={"name": "deploy-bot", "roles": {"default": "editor"}}), 201
    )
    token = bot["token"]
    server = {
        "id": "server-123",
        "name": "US East Primary",
        "type": "primary",
        "region": "americas",
        "location": "us-east",
        "data_center_id": "dc-na-1",
        "capacity": {"cpu": 80, "memory": 160, "storage": 1000},
    }
    steps: list[tuple[str, str, dict[str, Any] | None, str, str, str]] = [
        # method, path, body, action, kind, object id
        (
            "POST",
            f"{INV}/datacenters",
            {
                "id": "dc-na-1",
                "name": "NA Primary",
                "region": "na",
                "location": "us-east",
                "tier": 3,
                "capacity": {"cpu": 1000, "memory": 4000, "storage": 10000},
            },
            "create",
            "data_center",
            "dc-na-1",
        ),
        (
            "POST",
            f"{INV}/datacenters",
            {
                "id": "dc-na-2",
                "name": "NA Backup",
                "region": "na",
                "location": "us-west",
                "tier": 3,
                "capacity": {"cpu": 1000, "memory": 4000, "storage": 10000},
            },
            "create",
            "data_center",
            "dc-na-2",
        ),
        ("POST", f"{INV}/servers", server, "create", "server", "server-123"),
        (
            "POST",
            f"{INV}/services",
            {
                "id": "cdn-1",
                "server_id": "server-123",
                "type": "cdn",
                "settings": {"provider": "cloudflare", "caching": "aggressive"},
            },
            "create",
            "service",
            "cdn-1",
        ),
        (
            "PATCH",
            f"{INV}/servers/server-123",
            {"status": "maintenance"},
            "update",
            "server",
            "server-123",
        ),
        (
            "PATCH",
            f"{INV}/services/cdn-1",
            {"settings": {"caching": "standard"}},
            "update",
            "service",
            "cdn-1",
        ),
        ("PATCH", f"{INV}/datacenters/dc-na-2", {"tier": 4}, "update", "data_center", "dc-na-2"),
        (
            "POST",
            f"{INV}/loadbalancer",
            {"id": "lb-na", "type": "least_connections", "endpoints": ["server-123"]},
            "create",
            "load_balancer",
            "lb-na",
        ),
        (
            "PATCH",
            f"{INV}/loadbalancer/lb-na",
            {"endpoints": ["10.0.0.1:80"]},
            "update",
            "load_balancer",
            "lb-na",
        ),
        (
            "POST",
            f"{INV}/dr-configs",
            {
                "id": "dr-na",
                "name": "NA DR",
                "primary_dc": "dc-na-1",
                "backup_dc": "dc-na-2",
                "rpo": 15,
                "rto": 60,
            },
            "create",
            "dr_config",
            "dr-na",
        ),
        ("PATCH", f"{INV}/dr-configs/dr-na", {"rto": 30}, "update", "dr_config", "dr-na"),
        ("DELETE", f"{INV}/dr-configs/dr-na", None, "delete", "dr_config", "dr-na"),
        ("DELETE", f"{INV}/loadbalancer/lb-na", None, "delete", "load_balancer", "lb-na"),
        ("DELETE", f"{INV}/services/cdn-1", None, "delete", "service", "cdn-1"),
        ("DELETE", f"{INV}/servers/server-123", None, "delete", "server", "server-123"),
        ("DELETE", f"{INV}/datacenters/dc-na-1", None, "delete", "data_center", "dc-na-1"),
    ]
    rev = revision(api)
    for method, path, body, action, kind, object_id in steps:
        before, r = rev, api.call(method, path, token=token, json=body)
        assert r.status_code in (200, 201, 204), (method, path, r.text)
        rev = revision(api)
        assert rev == before + 1, (method, path)
        latest = ok(api.get("/api/v1/audit?limit=1"))["items"][0]
        assert latest["revision"] == before + 1
        assert latest["actor"] == f"deploy-bot ({bot['id']})"
        assert (latest["action"], latest["kind"], latest["object_id"]) == (action, kind, object_id)
        assert latest["project"] == "default"
        if action == "create":
            assert latest["before"] is None
            assert latest["after"]["id"] == object_id
            assert latest["after"] == {k: v for k, v in r.json().items() if k in latest["after"]}, (
                "the event holds what was created"
            )
        elif action == "update":
            assert latest["before"]["id"] == latest["after"]["id"] == object_id
            assert latest["before"] != latest["after"]
            changed = {k for k in latest["after"] if latest["before"].get(k) != latest["after"][k]}
            assert set(body or {}) <= changed | {"settings"}, changed
            # "type" is stored as algorithm; endpoints are the addresses of the backends.
            assert changed - {"updated_at"} <= set(body or {}) | {"algorithm", "backends"}, changed
        else:
            assert latest["after"] is None
            assert latest["before"]["id"] == object_id

    trail = events(api, "&kind=server&object_id=server-123")
    assert [e["action"] for e in trail] == ["delete", "update", "create"], "newest first"
    assert trail[1]["before"]["status"] == "active"
    assert trail[1]["after"]["status"] == "maintenance"
    assert trail[0]["before"]["status"] == "maintenance"
    revisions = [e["revision"] for e in events(api)]
    assert revisions == sorted(revisions, reverse=True)
    assert len(set(revisions)) == len(revisions) == len(steps)


def test_global_objects_are_audited_without_a_project(api: Api) -> None:
    start = revision(api)
    ok(
        api.post(
            f"{INV}/regions",
            json={"code": "eu-south", "name": "Milan", "latitude": 45.46, "longitude": 9.19},
        ),
        201,
    )
    ok(api.patch(f"{INV}/regions/eu-south", json={"name": "Milano"}))
    ok(api.delete(f"{INV}/regions/eu-south"), 204)
    ok(api.post("/api/v1/projects", json={"id": "acme"}), 201)
    issued = ok(api.post("/api/v1/tokens", json={"name": "ci", "roles": {"acme": "viewer"}}), 201)
    ok(api.delete(f"/api/v1/tokens/{issued['id']}"))
    assert revision(api) == start + 6

    assert events(api) == [], "global events are not part of a project's trail"
    trail = events(api, "&include_global=true")
    assert [(e["action"], e["kind"], e["object_id"]) for e in trail[:6]] == [
        ("revoke", "token", issued["id"]),
        ("create", "token", issued["id"]),
        ("create", "project", "acme"),
        ("delete", "region", "eu-south"),
        ("update", "region", "eu-south"),
        ("create", "region", "eu-south"),
    ]
    assert all(e["project"] is None for e in trail)
    assert trail[4]["before"]["name"] == "Milan" and trail[4]["after"]["name"] == "Milano"
    assert trail[0]["after"]["revoked_at"] is not None and trail[0]["before"]["revoked_at"] is None
    assert "token" not in trail[1]["after"], "the secret is never audited"
    assert all(e["actor"].startswith("admin (") for e in trail[:6])

    # Only platform admins see global events.
    editor = api.token("editor")
    assert ok(api.get("/api/v1/audit?include_global=true", token=editor))["items"] == []


def test_failed_changes_write_nothing(api: Api) -> None:
    ok(
        api.post(
            f"{INV}/servers",
            json={
                "id": "web-1",
                "name": "w",
                "type": "edge",
                "region": "americas",
                "location": "us-east",
                "capacity": {"cpu": 2, "memory": 2, "storage": 2},
            },
        ),
        201,
    )
    start, trail = revision(api), events(api, "&include_global=true")
    viewer = api.token("viewer")
    assert revision(api) == start + 1, "issuing a token is a change (of the platform)"
    start, trail = revision(api), events(api, "&include_global=true")
    failures = [
        api.post(f"{INV}/servers", json={"id": "web-1"}),  # 422
        api.post(
            f"{INV}/services",
            json={"server_id": "web-1", "type": "database", "settings": {"engine": "redis"}},
        ),  # 409 capacity
        api.patch(f"{INV}/servers/web-1", token=viewer, json={"name": "x"}),  # 403
        api.delete(f"{INV}/servers/nope"),  # 404
        api.post(
            f"{INV}/regions", json={"code": "us-east", "name": "x", "latitude": 0, "longitude": 0}
        ),  # 409 duplicate
        api.patch(f"{INV}/servers/web-1", json={"capacity": {"cpu": -1}}),  # 422
    ]
    assert [r.status_code for r in failures] == [422, 409, 403, 404, 409, 422]
    assert revision(api) == start
    assert events(api, "&include_global=true") == trail


def test_metrics_do_not_bump_the_revision(api: Api) -> None:
    # Metrics are observations of the running system, not desired state: nothing an edge node
    # renders depends on them, so they must not wake every agent's long-poll with a new
    # revision (that would happen on every sample) nor flood the audit trail.
    ok(
        api.post(
            f"{INV}/servers",
            json={
                "id": "web-1",
                "name": "w",
                "type": "edge",
                "region": "americas",
                "location": "us-east",
                "capacity": {"cpu": 2, "memory": 2, "storage": 2},
            },
        ),
        201,
    )
    start, trail = revision(api), events(api)
    server = ok(
        api.post(f"{INV}/servers/web-1/metrics", json={"cpu_percent": 42.5, "memory_percent": 60})
    )
    assert server["metrics"]["cpu_percent"] == 42.5
    ok(
        api.post(
            f"{INV}/servers/web-1/metrics",
            json=[
                {"cpu_percent": 10, "memory_percent": 10, "at": "2020-01-01T00:00:00Z"},
                {"cpu_percent": 20, "memory_percent": 20, "at": "2020-01-01T00:01:00Z"},
            ],
        )
    )
    assert revision(api) == start
    assert events(api) == trail
    latest = ok(api.get(f"{INV}/servers/web-1"))["metrics"]
    assert latest["cpu_percent"] == 42.5, "an older sample does not replace a newer one"
    history = ok(api.get(f"{INV}/servers/web-1/metrics"))
    assert [m["cpu_percent"] for m in history] == [42.5, 20, 10], "newest first"


def test_one_transaction_is_one_revision(api: Api) -> None:
    start = revision(api)
    with api.db.transaction(LOCAL, "default") as tx:
        datacenters.create(
            tx,
            {
                "id": "dc-1",
                "name": "dc",
                "region": "na",
                "location": "us-east",
                "tier": 2,
                "capacity": {"cpu": 10, "memory": 10, "storage": 10},
            },
        )
        servers.create(
            tx,
            {
                "id": "s-1",
                "name": "s",
                "type": "edge",
                "region": "americas",
                "location": "us-east",
                "data_center_id": "dc-1",
                "capacity": {"cpu": 1, "memory": 1, "storage": 1},
            },
        )
    assert revision(api) == start + 1
    trail = events(api)
    assert [(e["revision"], e["object_id"], e["actor"]) for e in trail] == [
        (start + 1, "s-1", "local"),
        (start + 1, "dc-1", "local"),
    ]

    # A transaction that fails part-way leaves nothing behind.
    try:
        with api.db.transaction(LOCAL, "default") as tx:
            servers.create(
                tx,
                {
                    "id": "s-2",
                    "name": "s",
                    "type": "edge",
                    "region": "americas",
                    "location": "us-east",
                    "capacity": {"cpu": 1, "memory": 1, "storage": 1},
                },
            )
            servers.create(
                tx,
                {
                    "id": "s-3",
                    "name": "s",
                    "type": "mainframe",
                    "region": "americas",
                    "location": "us-east",
                    "capacity": {"cpu": 1, "memory": 1, "storage": 1},
                },
            )
    except Exception as exc:
        assert type(exc).__name__ == "InvalidInput"
    else:
        raise AssertionError("the second create should have failed")
    assert revision(api) == start + 1
    assert api.get(f"{INV}/servers/s-2").status_code == 404
    assert events(api) == trail


def test_audit_pages_filters_and_access(api: Api) -> None:
    with api.db.transaction(LOCAL, "default") as tx:
        for i in range(5):
            servers.create(
                tx,
                {
                    "id": f"s-{i}",
                    "name": "s",
                    "type": "edge",
                    "region": "americas",
                    "location": "us-east",
                    "capacity": {"cpu": 1, "memory": 1, "storage": 1},
                },
            )
    for i in range(5):
        ok(api.patch(f"{INV}/servers/s-{i}", json={"name": f"renamed {i}"}))
    seen: list[int] = []
    cursor = ""
    while True:
        page = ok(api.get(f"/api/v1/audit?limit=3{cursor}"))
        seen += [e["id"] for e in page["items"]]
        if not page["next_cursor"]:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert len(seen) == len(set(seen)) == 10
    assert seen == sorted(seen, reverse=True)
    assert [e["action"] for e in events(api, "&object_id=s-3")] == ["update", "create"]
    assert len(events(api, "&kind=server")) == 10
    assert events(api, "&kind=load_balancer") == []

    viewer = api.token("viewer")
    assert len(ok(api.get("/api/v1/audit", token=viewer))["items"]) == 10
    ok(api.post("/api/v1/projects", json={"id": "acme"}), 201)
    outsider = api.token("admin", project="acme")
    assert api.get("/api/v1/audit", token=outsider).status_code == 403
    assert ok(api.get("/api/v1/audit?project=acme", token=outsider))["items"] == []
    r = api.get("/api/v1/audit?cursor=abc")
    assert r.status_code == 422 and r.json()["field"] == "cursor"
