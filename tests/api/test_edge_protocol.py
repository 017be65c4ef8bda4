"""The edge protocol: edge tokens, registration, long-poll, acks, health, purges, analytics."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from conftest import Api
from edgeplane.protocol.messages import UPSTREAM_MS_BUCKETS
from edgeplane.store.actor import LOCAL
from edgeplane.store.db import Database
from edgeplane.store.tables import BackendHealthRow, EdgeAnalyticsRow, PurgeRow, utcnow

EDGE = "/api/v1/edge"


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if status != 204 else None


def edge_token(api: Api, name: str = "edge-1") -> str:
    doc = ok(api.post("/api/v1/tokens", json={"name": name, "scope": "edge"}), 201)
    assert doc["scope"] == "edge" and doc["roles"] == {}
    return str(doc["token"])


def register(api: Api, token: str, name: str = "node-a", **kw: Any) -> dict[str, Any]:
    body = {"name": name, "region": "eu-central", "http_port": 8080, **kw}
    return ok(api.post(f"{EDGE}/nodes", token=token, json=body))  # type: ignore[no-any-return]


def bump(api: Api, project: str) -> int:
    """A change of desired state: a new project bumps the revision."""
    ok(api.post("/api/v1/projects", json={"id": project}), 201)
    return int(ok(api.get("/api/v1/revision"))["revision"])


def test_edge_tokens_open_the_edge_protocol_and_nothing_else(api: Api) -> None:
    token = edge_token(api)
    r = api.get("/api/v1/projects", token=token)
    assert r.status_code == 403 and "edge protocol only" in r.json()["detail"]
    assert api.get("/api/v1/whoami", token=token).status_code == 403
    # API tokens are refused by the edge protocol, even the admin's.
    r = api.post(f"{EDGE}/nodes", json={"name": "n1", "region": "eu-central"})
    assert r.status_code == 403 and "edge token" in r.json()["detail"]
    # Only platform admins issue edge tokens, and an edge token has no roles.
    editor = api.token("editor")
    r = api.post("/api/v1/tokens", token=editor, json={"name": "e", "scope": "edge"})
    assert r.status_code == 403
    r = api.post(
        "/api/v1/tokens", json={"name": "e", "scope": "edge", "roles": {"default": "viewer"}}
    )
    assert r.status_code == 422 and r.json()["field"] == "roles"
    r = api.post("/api/v1/tokens", json={"name": "e"})
    assert r.status_code == 422 and r.json()["field"] == "roles"
    r = api.post("/api/v1/tokens", json={"name": "e", "scope": "dns"})
    assert r.status_code == 422 and r.json()["field"] == "scope"
    listed = {t["id"]: t["scope"] for t in ok(api.get("/api/v1/tokens"))}
    assert "edge" in listed.values() and "api" in listed.values()
    # A revoked edge token stops working.
    token_id = next(t for t, s in listed.items() if s == "edge")
    ok(api.delete(f"/api/v1/tokens/{token_id}"))
    assert (
        api.post(
            f"{EDGE}/nodes", token=token, json={"name": "n1", "region": "eu-central"}
        ).status_code
        == 401
    )


def test_register_the_same_name_is_the_same_node(api: Api) -> None:
    token = edge_token(api)
    first = register(api, token, http_port=8080)
    again = register(api, token, http_port=9090, address="127.0.0.2")
    assert again["id"] == first["id"]
    assert again["http_port"] == 9090 and again["address"] == "127.0.0.2"
    assert again["registered_at"] == first["registered_at"]
    other = register(api, token, name="node-b")
    assert other["id"] != first["id"]
    nodes = ok(api.get(f"{EDGE}/nodes"))
    assert [n["name"] for n in nodes] == ["node-a", "node-b"]
    assert all(n["status"] == "online" for n in nodes)
    assert nodes[0]["desired_revision"] == ok(api.get("/api/v1/revision"))["revision"]
    # Registering does not change the desired state.
    rev = ok(api.get("/api/v1/revision"))["revision"]
    register(api, token, name="node-c")
    assert ok(api.get("/api/v1/revision"))["revision"] == rev
    r = api.post(f"{EDGE}/nodes", token=token, json={"name": "Bad Name", "region": "eu-central"})
    assert r.status_code == 422 and r.json()["field"] == "name"
    assert api.get(f"{EDGE}/nodes/node-nope").status_code == 404
    r = api.get(f"{EDGE}/nodes/node-nope/config", token=token, params={"wait": 0})
    assert r.status_code == 404


def test_poll_answers_at_once_when_newer_and_times_out_with_no_config(api: Api) -> None:
    token = edge_token(api)
    node = register(api, token)
    rev = bump(api, "p1")
    t0 = time.monotonic()
    doc = ok(api.get(f"{EDGE}/nodes/{node['id']}/config", token=token, params={"after": rev - 1}))
    assert time.monotonic() - t0 < 5
    assert doc["revision"] == rev and doc["config"]["revision"] == rev
    assert doc["config"]["node"] == {"id": node["id"], "name": "node-a", "region": "eu-central"}
    assert doc["hash"] and doc["purges"] == []
    t0 = time.monotonic()
    r = api.get(
        f"{EDGE}/nodes/{node['id']}/config", token=token, params={"after": rev, "wait": 0.3}
    )
    doc = ok(r)
    assert time.monotonic() - t0 >= 0.3
    assert doc["config"] is None and doc["revision"] == rev and doc["hash"]
    r = api.get(f"{EDGE}/nodes/{node['id']}/config", token=token, params={"wait": 500})
    assert r.status_code == 422 and r.json()["field"] == "wait"


def _poll_in_thread(api: Api, token: str, node_id: str, after: int) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def run() -> None:
        r = api.get(
            f"{EDGE}/nodes/{node_id}/config", token=token, params={"after": after, "wait": 20}
        )
        out["at"] = time.monotonic()
        out["doc"] = r.json()

    thread = threading.Thread(target=run)
    thread.start()
    out["thread"] = thread
    return out


def test_poll_waits_and_wakes_on_a_change(api: Api) -> None:
    token = edge_token(api)
    node = register(api, token)
    rev = ok(api.get("/api/v1/revision"))["revision"]
    waiting = _poll_in_thread(api, token, node["id"], rev)
    time.sleep(0.5)  # let the poll start waiting (it must not have answered yet)
    assert "doc" not in waiting
    changed = time.monotonic()
    new_rev = bump(api, "p2")
    waiting["thread"].join(15)
    assert waiting["doc"]["revision"] == new_rev and waiting["doc"]["config"] is not None
    woke_ms = (waiting["at"] - changed) * 1000
    print(f"in-process wake after {woke_ms:.0f} ms")
    assert woke_ms < 5000


def test_poll_wakes_on_a_change_made_by_another_replica(api: Api) -> None:
    token = edge_token(api)
    node = register(api, token)
    rev = ok(api.get("/api/v1/revision"))["revision"]
    waiting = _poll_in_thread(api, token, node["id"], rev)
    time.sleep(0.5)
    assert "doc" not in waiting
    # Another process's handle on the same database: no in-process hook, the watcher sees it.
    other = Database.for_tests(api.db.url)
    try:
        from edgeplane.services import access

        with other.transaction(LOCAL, "default") as tx:
            access.create_project(tx, {"id": "p3"})
        changed = time.monotonic()
    finally:
        other.dispose()
    waiting["thread"].join(15)
    assert waiting["doc"]["revision"] == rev + 1
    print(f"cross-replica wake after {(waiting['at'] - changed) * 1000:.0f} ms")


def test_ack_records_the_applied_revision_and_propagation(api: Api) -> None:
    token = edge_token(api)
    node = register(api, token)
    rev = bump(api, "p4")
    doc = ok(api.get(f"{EDGE}/nodes/{node['id']}/config", token=token, params={"after": -1}))
    body = {"revision": rev, "hash": doc["hash"], "ok": True, "apply_ms": 12.5,
            "stats": {"nginx_pss_mib": 10.0}}  # fmt: skip
    acked = ok(api.post(f"{EDGE}/nodes/{node['id']}/ack", token=token, json=body))
    assert acked["applied_revision"] == rev and acked["applied_hash"] == doc["hash"]
    assert acked["in_sync"] is True and acked["apply_ms"] == 12.5
    assert acked["propagation_ms"] is not None and 0 <= acked["propagation_ms"] < 60_000
    assert acked["stats"]["nginx_pss_mib"] == 10.0
    # A failed apply is reported without losing what is applied.
    fail = {"revision": rev + 1, "hash": "x", "ok": False, "apply_ms": 3,
            "error": "nginx: [emerg] unknown directive"}  # fmt: skip
    got = ok(api.post(f"{EDGE}/nodes/{node['id']}/ack", token=token, json=fail))
    assert got["last_error"] == "nginx: [emerg] unknown directive"
    assert got["failed_revision"] == rev + 1 and got["applied_revision"] == rev
    shown = ok(api.get(f"{EDGE}/nodes/{node['id']}"))
    assert shown["applied_revision"] == rev and shown["in_sync"] is True
    r = api.post(f"{EDGE}/nodes/{node['id']}/ack", token=token, json={**body, "apply_ms": -1})
    assert r.status_code == 422 and r.json()["field"] == "apply_ms"


def test_health_reports_are_validated_and_stored(api: Api) -> None:
    token = edge_token(api)
    node = register(api, token)
    url = f"{EDGE}/nodes/{node['id']}/health"
    now = utcnow().isoformat()
    good = {"pool": "lb.default.web", "backend": "127.0.0.1:9001", "state": "down",
            "reason": "connect refused", "checked_at": now, "latency_ms": 1.5}  # fmt: skip
    ok(api.post(url, token=token, json={"backends": [good]}), 204)
    r = api.post(url, token=token, json={"backends": [{**good, "pool": "nope"}]})
    assert r.status_code == 422 and r.json()["field"] == "backends.0.pool"
    r = api.post(url, token=token, json={"backends": [{**good, "state": "sideways"}]})
    assert r.status_code == 422 and r.json()["field"] == "backends.0.state"
    ok(api.post(url, token=token, json={"backends": [{**good, "state": "up", "reason": ""}]}), 204)
    with api.db.read(LOCAL, "default") as tx:
        rows = list(tx.session.scalars(select(BackendHealthRow)))
        got = [(r.pool, r.backend, r.state, r.project_id) for r in rows]
    assert got == [("lb.default.web", "127.0.0.1:9001", "up", "default")]


def test_analytics_are_validated_and_a_minute_sent_again_replaces_it(api: Api) -> None:
    token = edge_token(api)
    node = register(api, token)
    url = f"{EDGE}/nodes/{node['id']}/analytics"
    minute = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)
    hist = [0] * (len(UPSTREAM_MS_BUCKETS) + 1)
    hist[2] = 3
    m = {"site": "default", "domain": "a.test", "minute": minute.isoformat(), "requests": 5,
         "hits": 2, "misses": 3, "bytes_out": 500, "statuses": {"2xx": 5},
         "cache": {"HIT": 2, "MISS": 3}, "upstream_ms": hist}  # fmt: skip
    ok(api.post(url, token=token, json={"minutes": [m]}), 204)
    ok(api.post(url, token=token, json={"minutes": [{**m, "requests": 7}]}), 204)
    r = api.post(url, token=token, json={"minutes": [{**m, "upstream_ms": [1, 2]}]})
    assert r.status_code == 422 and r.json()["field"] == "minutes.0.upstream_ms"
    r = api.post(url, token=token, json={"minutes": [{**m, "requests": -1}]})
    assert r.status_code == 422 and r.json()["field"] == "minutes.0.requests"
    with api.db.read(LOCAL, "default") as tx:
        rows = [(r.requests, r.minute, r.upstream_ms) for r in tx.session.scalars(
            select(EdgeAnalyticsRow))]  # fmt: skip
    assert rows == [(7, minute.replace(second=0), hist)]


def _purge(db: Database, paths: list[str], purge_all: bool = False) -> str:
    """A purge as the CDN service writes it: a row, in a transaction that bumps the revision."""
    purge_id = f"purge-{time.monotonic_ns()}"
    with db.transaction(LOCAL, "default") as tx:
        tx.session.add(
            PurgeRow(
                id=purge_id,
                project_id="default",
                paths=paths,
                purge_all=purge_all,
                created_by="test",
            )
        )
        tx.record("purge", "cdn", purge_id, None, {"paths": paths})
    return purge_id


def test_purges_are_delivered_until_acknowledged(api: Api) -> None:
    token = edge_token(api)
    node = register(api, token)
    config_url = f"{EDGE}/nodes/{node['id']}/config"
    rev = ok(api.get("/api/v1/revision"))["revision"]
    waiting = _poll_in_thread(api, token, node["id"], rev)
    time.sleep(0.3)
    purge_id = _purge(api.db, ["/index.html", "/static/*", "/static/img/*"])
    waiting["thread"].join(15)
    tasks = waiting["doc"]["purges"]
    assert tasks == [{"id": purge_id, "site": "default", "paths": ["/index.html"],
                      "prefixes": ["/static/", "/static/img/"], "purge_all": False}]  # fmt: skip
    rev = waiting["doc"]["revision"]
    # Not acknowledged yet: the next poll answers at once with it again.
    doc = ok(api.get(config_url, token=token, params={"after": rev, "wait": 5}))
    assert [p["id"] for p in doc["purges"]] == [purge_id] and doc["config"] is None
    done = {"completed_at": utcnow().isoformat(), "purged_count": 4}
    ok(api.post(f"{EDGE}/nodes/{node['id']}/purges/{purge_id}", token=token, json=done), 204)
    doc = ok(api.get(config_url, token=token, params={"after": rev, "wait": 0.2}))
    assert doc["purges"] == []
    r = api.post(f"{EDGE}/nodes/{node['id']}/purges/purge-nope", token=token, json=done)
    assert r.status_code == 404
    # A node registered after a purge does not get it.
    late = register(api, token, name="node-late")
    all_id = _purge(api.db, [], purge_all=True)
    doc = ok(api.get(f"{EDGE}/nodes/{late['id']}/config", token=token, params={"after": rev}))
    assert [(p["id"], p["purge_all"]) for p in doc["purges"]] == [(all_id, True)]
    old = utcnow() - timedelta(minutes=11)
    with api.db.transaction(LOCAL, "default") as tx:
        tx.session.get(PurgeRow, all_id).created_at = old  # type: ignore[union-attr]
    doc = ok(api.get(f"{EDGE}/nodes/{late['id']}/config", token=token,
                     params={"after": doc["revision"], "wait": 0.1}))  # fmt: skip
    assert doc["purges"] == []
