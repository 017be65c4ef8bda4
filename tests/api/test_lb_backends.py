"""Load balancer backends over HTTP: CRUD, drain, weights, health, health check, endpoints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from conftest import Api
from edgeplane.store.actor import LOCAL
from edgeplane.store.tables import (
    BackendHealthRow,
    EdgeNodeRow,
    LoadBalancerRow,
    PurgeRow,
    RevisionRow,
)

INV = "/api/v1/infrastructure"
LB = f"{INV}/loadbalancer"


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def problem(r: Any, field: str, status: int = 422) -> dict[str, Any]:
    assert r.status_code == status, r.text
    doc: dict[str, Any] = r.json()
    assert doc.get("field") == field, doc
    return doc


def revision(api: Api) -> int:
    with api.db.read(LOCAL, "default") as tx:
        return int(tx.session.get(RevisionRow, 1).value)  # type: ignore[union-attr]


def add_server(api: Api, server_id: str) -> None:
    body = {
        "id": server_id,
        "name": server_id,
        "type": "primary",
        "region": "americas",
        "location": "us-east",
        "capacity": {"cpu": 4, "memory": 8, "storage": 50},
    }
    ok(api.post(f"{INV}/servers", json=body), 201)


def test_create_with_backends_and_options(api: Api) -> None:
    add_server(api, "web-1")
    body = {
        "id": "lb1",
        "algorithm": "least_conn",
        "endpoints": ["10.0.0.1:8080"],
        "backends": [
            {"address": "web-1", "port": 8000, "weight": 300},
            {"address": "http://10.0.0.9:80", "backup": True},
        ],
        "connect_timeout_s": 0.5,
        "read_timeout_s": 5,
        "retries": 2,
    }
    lb = ok(api.post(LB, json=body), 201)
    assert lb["endpoints"] == ["10.0.0.1:8080", "web-1", "http://10.0.0.9:80"]
    assert lb["backends"] == [
        {"address": "10.0.0.1:8080", "port": None, "weight": 100, "backup": False,
         "state": "active", "wait_for_check": False},
        {"address": "web-1", "port": 8000, "weight": 300, "backup": False, "state": "active",
         "wait_for_check": False},
        {"address": "http://10.0.0.9:80", "port": None, "weight": 100, "backup": True,
         "state": "active", "wait_for_check": False},
    ]  # fmt: skip
    assert (lb["connect_timeout_s"], lb["read_timeout_s"], lb["retries"]) == (0.5, 5, 2)
    assert ok(api.get(f"{LB}/lb1")) == lb
    with api.db.read(LOCAL, "default") as tx:
        row = tx.session.get(LoadBalancerRow, ("default", "lb1"))
        assert row is not None
        assert row.endpoints == lb["endpoints"]
        assert row.backends == lb["backends"]
        assert row.options == {"connect_timeout_s": 0.5, "read_timeout_s": 5, "retries": 2}

    # Defaults, and endpoints alone still work as before.
    plain = ok(api.post(LB, json={"id": "lb2", "endpoints": ["10.0.0.1:80"]}), 201)
    assert (plain["connect_timeout_s"], plain["read_timeout_s"], plain["retries"]) == (2, 30, 1)
    assert plain["backends"][0]["weight"] == 100


BAD_LBS = [
    ({"endpoints": ["10.0.0.1:80"], "backends": ["10.0.0.1:80"]}, "endpoints.0"),
    ({"backends": ["10.0.0.1:80", {"address": "10.0.0.1:80"}]}, "backends.1.address"),
    ({"backends": [{"address": "10.0.0.1:80", "weight": 0}]}, "backends.0.weight"),
    ({"backends": [{"address": "10.0.0.1:80", "weight": 1001}]}, "backends.0.weight"),
    ({"backends": [{"address": "10.0.0.1:80", "port": 81}]}, "backends.0.port"),
    ({"backends": [{"address": "no-such-server"}]}, "backends.0.address"),
    ({"backends": [{"address": "x y"}]}, "backends.0.address"),
    ({"backends": [{"address": "10.0.0.1:80", "state": "sleepy"}]}, "backends.0.state"),
    ({"connect_timeout_s": 0.01}, "connect_timeout_s"),
    ({"read_timeout_s": 4000}, "read_timeout_s"),
    ({"retries": 6}, "retries"),
]


def test_bad_load_balancers(api: Api) -> None:
    for body, field in BAD_LBS:
        rev = revision(api)
        problem(api.post(LB, json={"id": "bad", **body}), field)
        assert revision(api) == rev
        assert api.get(f"{LB}/bad").status_code == 404


def test_backend_operations(api: Api) -> None:
    add_server(api, "web-1")
    ok(api.post(LB, json={"id": "lb", "endpoints": ["10.0.0.1:80"]}), 201)
    base = f"{LB}/lb/backends"

    added = ok(api.post(base, json={"address": "10.0.0.2:80", "weight": 50}), 201)
    assert added == {"address": "10.0.0.2:80", "port": None, "weight": 50, "backup": False,
                     "state": "active", "wait_for_check": False}  # fmt: skip
    ok(api.post(base, json={"address": "web-1", "port": 9000, "backup": True}), 201)
    url = "https://origin.example.com:8443"
    ok(api.post(base, json={"address": url}), 201)
    listed = ok(api.get(base))
    assert [b["address"] for b in listed] == ["10.0.0.1:80", "10.0.0.2:80", "web-1", url]
    assert ok(api.get(f"{LB}/lb"))["endpoints"] == [b["address"] for b in listed]

    rev = revision(api)
    r = api.post(base, json={"address": "10.0.0.2:80"})
    assert r.status_code == 409 and "already" in r.json()["detail"], r.text
    problem(api.post(base, json={"address": "ghost"}), "address")
    problem(api.post(base, json={"address": "10.0.0.3:80", "weight": -1}), "weight")
    assert api.post(f"{LB}/nope/backends", json={"address": "10.0.0.3:80"}).status_code == 404
    assert revision(api) == rev

    # Update by address (URL-encoded); a server id with a port is named address:port.
    b = ok(api.patch(f"{base}/10.0.0.2:80", json={"weight": 700, "backup": True}))
    assert (b["weight"], b["backup"]) == (700, True)
    b = ok(api.patch(f"{base}/web-1:9000", json={"state": "disabled"}))
    assert b["state"] == "disabled" and b["port"] == 9000
    b = ok(api.patch(f"{base}/{quote(url, safe='')}", json={"weight": 2}))
    assert b["weight"] == 2
    b = ok(api.patch(f"{base}/{url}", json={"weight": 3}))
    assert b["weight"] == 3
    problem(api.patch(f"{base}/10.0.0.2:80", json={"weight": 0}), "weight")
    problem(api.patch(f"{base}/10.0.0.2:80", json={"address": "x:1"}), "address")
    problem(api.patch(f"{base}/10.0.0.2:80", json={"state": None}), "state")
    assert api.patch(f"{base}/10.9.9.9:80", json={"weight": 1}).status_code == 404

    # Drain: state draining, nothing else changes.
    drained = ok(api.post(f"{base}/10.0.0.1:80/drain"))
    assert drained["state"] == "draining" and drained["weight"] == 100
    assert api.post(f"{base}/10.9.9.9:80/drain").status_code == 404

    assert api.delete(f"{base}/{quote(url, safe='')}").status_code == 204
    assert api.delete(f"{base}/{quote(url, safe='')}").status_code == 404
    assert api.delete(f"{base}/web-1").status_code == 204, "a unique address names its backend"
    final = ok(api.get(f"{LB}/lb"))
    assert final["endpoints"] == ["10.0.0.1:80", "10.0.0.2:80"]
    assert [(b["state"], b["weight"], b["backup"]) for b in final["backends"]] == [
        ("draining", 100, False),
        ("active", 700, True),
    ]


def test_endpoints_patch_keeps_backend_settings(api: Api) -> None:
    ok(api.post(LB, json={"id": "lb", "endpoints": ["10.0.0.1:80", "10.0.0.2:80"]}), 201)
    ok(api.patch(f"{LB}/lb/backends/10.0.0.2:80", json={"weight": 9, "state": "draining"}))
    lb = ok(api.patch(f"{LB}/lb", json={"endpoints": ["10.0.0.2:80", "10.0.0.3:80"]}))
    assert lb["endpoints"] == ["10.0.0.2:80", "10.0.0.3:80"]
    assert [(b["weight"], b["state"]) for b in lb["backends"]] == [
        (9, "draining"),
        (100, "active"),
    ]
    lb = ok(api.patch(f"{LB}/lb", json={"retries": 0, "algorithm": "ip_hash"}))
    assert lb["retries"] == 0 and lb["backends"][0]["weight"] == 9
    lb = ok(api.patch(f"{LB}/lb", json={"backends": [{"address": "10.0.0.5:80", "backup": True}]}))
    assert lb["endpoints"] == ["10.0.0.5:80"] and lb["backends"][0]["backup"] is True
    problem(api.patch(f"{LB}/lb", json={"endpoints": ["nope"]}), "endpoints.0")
    assert ok(api.get(f"{LB}/lb"))["endpoints"] == ["10.0.0.5:80"]


def test_update_health_check_replaces_it(api: Api) -> None:
    body = {
        "id": "lb",
        "endpoints": ["10.0.0.1:80"],
        "health_check": {"path": "/old", "interval_s": 10, "unhealthy_threshold": 5},
    }
    ok(api.post(LB, json=body), 201)
    rev = revision(api)
    check = {"path": "/healthz", "interval_s": 1, "timeout_s": 0.5}
    r = api.call("PUT", f"{LB}/lb/health-check", json=check)
    hc = ok(r)["health_check"]
    assert (hc["path"], hc["interval_s"], hc["timeout_s"]) == ("/healthz", 1, 0.5)
    assert hc["unhealthy_threshold"] == 3, "a PUT replaces the check: defaults for the rest"
    assert revision(api) == rev + 1
    for bad, field in [
        ({"interval_s": 0.5}, "interval_s"),
        ({"interval_s": 2, "timeout_s": 3}, "timeout_s"),
        ({"expected_status": "2xx"}, "expected_status"),
        ({"path": "healthz"}, "path"),
        ({"healthy_threshold": 0}, "healthy_threshold"),
    ]:
        r = api.call("PUT", f"{LB}/lb/health-check", json=bad)
        assert r.status_code == 422 and r.json()["field"].endswith(field), r.text
    assert ok(api.get(f"{LB}/lb"))["health_check"]["path"] == "/healthz"
    assert api.call("PUT", f"{LB}/nope/health-check", json={}).status_code == 404


def test_backend_health_from_node_reports(api: Api) -> None:
    add_server(api, "web-1")
    body = {
        "id": "lb",
        "backends": [
            {"address": "10.0.0.1:80", "weight": 10},
            {"address": "web-1", "port": 8080, "backup": True},
            {"address": "10.0.0.3:80", "state": "draining"},
        ],
    }
    ok(api.post(LB, json=body), 201)
    now = datetime.now(UTC)
    pool = "lb.default.lb"
    with api.db.transaction(LOCAL, "default") as tx:
        for node in ("edge-a", "edge-b"):
            tx.session.add(EdgeNodeRow(id=node, name=node, region="us-east", last_seen_at=now))
        tx.session.flush()

        def health(node: str, backend: str, state: str, reason: str, ms: float | None) -> None:
            tx.session.add(
                BackendHealthRow(
                    node_id=node, pool=pool, backend=backend, project_id="default", state=state,
                    reason=reason, checked_at=now - timedelta(seconds=1), changed_at=now,
                    latency_ms=ms,
                )
            )  # fmt: skip

        health("edge-a", "10.0.0.1:80", "up", "HTTP 200", 1.5)
        health("edge-b", "10.0.0.1:80", "down", "connection refused", None)
        health("edge-a", "web-1:8080", "down", "timeout after 2 s", None)
        health("edge-b", "web-1:8080", "down", "HTTP 503 (expected 200-399)", 3.0)
        # Another pool's report is not this load balancer's.
        tx.session.add(
            BackendHealthRow(node_id="edge-a", pool="lb.default.other", backend="10.0.0.3:80",
                             project_id="default", state="up", reason="")
        )  # fmt: skip

    report = ok(api.get(f"{LB}/lb/health"))
    assert [h["backend"] for h in report] == ["10.0.0.1:80", "web-1:8080", "10.0.0.3:80"]
    first, second, third = report
    assert first["state"] == "up", "up when any node says up"
    assert (first["weight"], first["backup"], first["admin_state"]) == (10, False, "active")
    assert [(n["node"], n["state"], n["reason"]) for n in first["nodes"]] == [
        ("edge-a", "up", "HTTP 200"),
        ("edge-b", "down", "connection refused"),
    ]
    assert first["nodes"][0]["latency_ms"] == 1.5 and first["nodes"][0]["checked_at"]
    assert second["state"] == "down" and second["backup"] is True and second["port"] == 8080
    assert third["state"] == "unknown" and third["nodes"] == []
    assert third["admin_state"] == "draining"
    assert api.get(f"{LB}/nope/health").status_code == 404


def test_wait_for_check_is_stored_served_and_shown(api: Api) -> None:
    """The flag on create, add and PATCH; strict (a JSON boolean, the error naming it); in
    the edge snapshot's backend; in the health view, with a node's "awaiting" report. A load
    balancer always has a health check (null is refused), so the flag always has one."""
    from edgeplane.snapshot.build import resolve_backend
    from edgeplane.snapshot.load import load_state

    body = {
        "id": "gate",
        "backends": [
            {"address": "10.0.0.1:80"},
            {"address": "10.0.0.2:80", "wait_for_check": True},
        ],
    }
    created = ok(api.post(LB, json=body), 201)
    assert [b["wait_for_check"] for b in created["backends"]] == [False, True]
    base = f"{LB}/gate/backends"
    added = ok(api.post(base, json={"address": "10.0.0.3:80", "wait_for_check": True}), 201)
    assert added["wait_for_check"] is True
    b = ok(api.patch(f"{base}/10.0.0.2:80", json={"wait_for_check": False}))
    assert (b["wait_for_check"], b["weight"]) == (False, 100)
    b = ok(api.patch(f"{base}/10.0.0.1:80", json={"wait_for_check": True}))
    assert b["wait_for_check"] is True

    rev = revision(api)
    bad = {"id": "bad", "backends": [{"address": "10.0.0.1:80", "wait_for_check": "yes"}]}
    problem(api.post(LB, json=bad), "backends.0.wait_for_check")
    problem(api.post(base, json={"address": "10.0.0.4:80", "wait_for_check": 1}),
            "wait_for_check")  # fmt: skip
    problem(api.patch(f"{base}/10.0.0.1:80", json={"wait_for_check": None}), "wait_for_check")
    problem(api.patch(f"{LB}/gate", json={"health_check": None}), "health_check")
    problem(api.post(LB, json={"id": "bad", "health_check": None, **body}), "health_check")
    assert revision(api) == rev

    with api.db.read(LOCAL, "default") as tx:
        state = load_state(tx.session, tx.secrets, every_project=True)
    lb = state.load_balancers[("default", "gate")]
    assert lb.health_check is not None
    specs = [resolve_backend(state, "default", b) for b in lb.backends]
    assert {b.key: b.wait_for_check for b in specs if b is not None} == {
        "10.0.0.1:80": True, "10.0.0.2:80": False, "10.0.0.3:80": True}  # fmt: skip

    now = datetime.now(UTC)
    with api.db.transaction(LOCAL, "default") as tx:
        tx.session.add(EdgeNodeRow(id="edge-w", name="edge-w", region="us-east", last_seen_at=now))
        tx.session.flush()
        tx.session.add(
            BackendHealthRow(node_id="edge-w", pool="lb.default.gate", backend="10.0.0.3:80",
                             project_id="default", state="down",
                             reason="awaiting its first health check", checked_at=now)
        )  # fmt: skip
    report = {h["backend"]: h for h in ok(api.get(f"{LB}/gate/health"))}
    waiting = report["10.0.0.3:80"]
    assert (waiting["wait_for_check"], waiting["state"]) == (True, "down")
    assert waiting["nodes"][0]["reason"] == "awaiting its first health check"
    assert report["10.0.0.2:80"]["wait_for_check"] is False


# The SDK services, embedded on the same database -----------------------------------------


def test_sdk_services(api: Api) -> None:
    import asyncio

    from edgeplane import Backend, CacheKey, CDNService, HealthCheck, LoadBalancerService
    from edgeplane.sdk import embedded
    from edgeplane.sdk.client import Client
    from edgeplane.settings import Settings

    client = Client(Settings(home=api.tmp / "sdk", database_url=api.db.url))
    lbs = LoadBalancerService(client=client)
    cdn = CDNService(client=client)

    async def scenario() -> None:
        lb = await lbs.create_load_balancer(
            "default",
            "weighted",
            HealthCheck(path="/healthz", interval_s=2, timeout_s=1),
            name="web",
            backends=["127.0.0.1:9001", {"address": "127.0.0.1:9002", "weight": 300}],
            retries=2,
        )
        assert lb.algorithm == "weighted" and lb.retries == 2
        assert [b.weight for b in lb.backends] == [100, 300]
        added = await lbs.add_backend(lb.id, Backend(address="http://127.0.0.1:9003"), weight=7)
        assert added.weight == 7
        assert (await lbs.add_backend(lb.id, "127.0.0.1:9004", backup=True)).backup is True
        drained = await lbs.drain_backend(lb.id, "http://127.0.0.1:9003")
        assert drained.state == "draining"
        await lbs.remove_backend(lb.id, "127.0.0.1:9004")
        updated = await lbs.update_health_check(lb.id, {"path": "/up"})
        assert updated.health_check.path == "/up" and updated.health_check.interval_s == 5
        health = await lbs.get_backend_health(lb.id)
        assert [h.backend for h in health] == [
            "127.0.0.1:9001",
            "127.0.0.1:9002",
            "http://127.0.0.1:9003",
        ]
        assert all(h.state == "unknown" for h in health)
        assert [x.id for x in (await lbs.list_load_balancers()).items] == [lb.id]

        dep = await cdn.configure_cdn(
            "default",
            {"origins": [{"load_balancer": lb.id}], "cache_rules": [{"pattern": "/*"}]},
        )
        assert dep.origins[0].load_balancer == lb.id and dep.revision is not None
        rule = await cdn.create_cache_rule(
            "/static/*", 600, CacheKey(query="none"), position=0, bypass=False
        )
        assert rule.ttl == 600 and rule.cache_key.query == "none"
        assert [r.pattern for r in await cdn.list_cache_rules()] == ["/static/*", "/*"]
        await cdn.delete_cache_rule(rule.id)
        assert [r.pattern for r in (await cdn.get_cdn()).cache_rules] == ["/*"]
        result = await cdn.purge_cache("default", ["/static/*"])
        assert result.complete and result.purged_count == 0
        everything = await cdn.purge_cache("default")
        assert (await cdn.get_purge(everything.id)).id == everything.id
        stats = await cdn.get_cdn_analytics("default", "24h")
        assert stats.requests == 0 and stats.hit_ratio is None
        await client.aclose()

    try:
        asyncio.run(scenario())
    finally:
        app = embedded._apps.pop(api.db.url, None)
        if app is not None:
            app.state.db.dispose()
    with api.db.read(LOCAL, "default") as tx:
        purges = tx.session.query(PurgeRow).order_by(PurgeRow.created_at).all()
        assert [(p.paths, p.purge_all) for p in purges] == [(["/static/*"], False), ([], True)]
