"""The CDN over HTTP: config, cache rules, purges and analytics (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conftest import Api
from edgeplane.protocol.messages import UPSTREAM_MS_BUCKETS
from edgeplane.store.actor import LOCAL
from edgeplane.store.tables import (
    DomainRow,
    EdgeAnalyticsRow,
    EdgeNodeRow,
    PurgeAckRow,
    PurgeRow,
    RevisionRow,
)

INV = "/api/v1/infrastructure"
CDN = f"{INV}/cdn"
LB = f"{INV}/loadbalancer"


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def problem(r: Any, field: str, status: int = 422) -> dict[str, Any]:
    assert r.status_code == status, r.text
    doc: dict[str, Any] = r.json()
    assert doc["field"] == field, doc
    return doc


def revision(api: Api) -> int:
    with api.db.read(LOCAL, "default") as tx:
        return int(tx.session.get(RevisionRow, 1).value)  # type: ignore[union-attr]


def add_domain(api: Api, name: str, project: str = "default") -> None:
    with api.db.transaction(LOCAL, project) as tx:
        tx.session.add(
            DomainRow(name=name, project_id=project, environment="prod", status="active")
        )


def add_node(api: Api, node_id: str, *, seen: datetime | None = None) -> None:
    now = datetime.now(UTC)
    with api.db.transaction(LOCAL, "default") as tx:
        tx.session.add(
            EdgeNodeRow(
                id=node_id,
                name=node_id,
                region="us-east",
                registered_at=now - timedelta(minutes=5),
                last_seen_at=seen or now,
            )
        )


CONFIG = {
    "origins": [{"url": "http://127.0.0.1:9001"}, {"url": "http://127.0.0.1:9002", "weight": 3}],
    "cache_rules": [
        {"id": "static", "pattern": "/static/*", "ttl": 86400},
        {"pattern": "/api/*", "bypass": True},
        {
            "pattern": "*.css",
            "ttl": 60,
            "cache_key": {"query": ["v"], "headers": ["Accept-Language"], "cookies": ["lang"]},
        },
    ],
    "security": {"hsts_max_age": 31536000, "rate_limit": {"rate": 10, "burst": 20}},
}


def test_configure_get_replace_delete(api: Api) -> None:
    add_domain(api, "shop.test")
    assert api.get(CDN).status_code == 404
    rev0 = revision(api)
    r = api.post(CDN, json=CONFIG)
    dep = ok(r, 201)["cdn_deployment"]
    assert dep["project"] == "default"
    assert dep["domains"] == ["shop.test"]
    assert [o["url"] for o in dep["origins"]] == ["http://127.0.0.1:9001", "http://127.0.0.1:9002"]
    assert dep["origins"][1]["weight"] == 3
    rules = dep["cache_rules"]
    assert [r["pattern"] for r in rules] == ["/static/*", "/api/*", "*.css"]
    assert rules[0]["id"] == "static" and rules[1]["id"].startswith("rule-")
    assert rules[1]["bypass"] is True and rules[0]["ttl"] == 86400
    assert rules[2]["cache_key"] == {
        "host": True,
        "query": ["v"],
        "headers": ["accept-language"],
        "cookies": ["lang"],
    }
    assert dep["security"]["rate_limit"] == {"rate": 10, "burst": 20}
    assert dep["security"]["force_https"] is True
    assert dep["revision"] == rev0 + 1 == revision(api)

    got = ok(api.get(CDN))
    assert got == dep

    # Replacing: the whole config changes, 200.
    r = api.post(CDN, json={"origins": [{"url": "https://origin.example.com"}]})
    dep2 = ok(r, 200)["cdn_deployment"]
    assert dep2["cache_rules"] == [] and dep2["revision"] == rev0 + 2
    assert dep2["security"]["hsts_max_age"] == 0
    assert dep2["created_at"] == dep["created_at"]

    assert api.delete(CDN).status_code == 204
    assert api.get(CDN).status_code == 404
    assert api.delete(CDN).status_code == 404
    assert revision(api) == rev0 + 3


def test_load_balancer_origin(api: Api) -> None:
    ok(api.post(LB, json={"id": "web", "endpoints": ["127.0.0.1:9001"]}), 201)
    dep = ok(api.post(CDN, json={"origins": [{"load_balancer": "web"}]}), 201)["cdn_deployment"]
    assert dep["origins"][0]["load_balancer"] == "web"
    # The load balancer cannot go while the CDN sends traffic to it.
    r = api.delete(f"{LB}/web")
    assert r.status_code == 409, r.text
    assert "CDN" in r.json()["detail"]
    ok(api.post(CDN, json={"origins": []}))
    assert api.delete(f"{LB}/web").status_code == 204


BAD_CONFIGS = [
    ({"origins": [{"load_balancer": "nope"}]}, "origins.0.load_balancer"),
    ({"origins": [{"url": "http://a:1"}, {"load_balancer": "web"}]}, "origins.1"),
    ({"origins": [{"load_balancer": "web"}, {"load_balancer": "web"}]}, "origins.1.load_balancer"),
    ({"origins": [{"url": "http://a:1"}, {"url": "http://a:1"}]}, "origins.1.url"),
    ({"origins": [{"url": "http://a:1", "backup": True}]}, "origins"),
    ({"origins": [{"url": "ftp://a"}]}, "origins.0.url"),
    ({"origins": [{"url": "http://a/path"}]}, "origins.0.url"),
    ({"origins": [{}]}, "origins.0"),
    ({"origins": [{"url": "http://a:1", "weight": 0}]}, "origins.0.weight"),
    ({"cache_rules": [{"pattern": "static/*"}]}, "cache_rules.0.pattern"),
    ({"cache_rules": [{"pattern": "/a/b/c/*"}]}, "cache_rules.0.pattern"),
    ({"cache_rules": [{"pattern": "/a*"}]}, "cache_rules.0.pattern"),
    ({"cache_rules": [{"pattern": "/*", "ttl": -1}]}, "cache_rules.0.ttl"),
    ({"cache_rules": [{"pattern": "/*", "cache_key": {"query": "some"}}]}, None),
    ({"cache_rules": [{"pattern": "/*", "cache_key": {"headers": ["bad header"]}}]}, None),
    ({"cache_rules": [{"id": "x", "pattern": "/a"}, {"id": "x", "pattern": "/b"}]}, None),
    ({"cache_rules": [{"pattern": "/*", "origin_cache_control": "maybe"}]}, None),
    ({"security": {"ip_allow": ["10.0.0.300"]}}, "security.ip_allow.0"),
    ({"security": {"rate_limit": {"rate": 0}}}, "security.rate_limit.rate"),
    ({"security": {"hsts_max_age": -5}}, "security.hsts_max_age"),
    ({"surprise": 1}, "surprise"),
]


@pytest.mark.parametrize("body, field", BAD_CONFIGS)
def test_bad_config_is_refused_with_no_partial_state(
    api: Api, body: dict[str, Any], field: str | None
) -> None:
    ok(api.post(LB, json={"id": "web", "endpoints": ["127.0.0.1:9001"]}), 201)
    before = ok(api.post(CDN, json=CONFIG), 201)["cdn_deployment"]
    rev = revision(api)
    r = api.post(CDN, json=body)
    assert r.status_code == 422, r.text
    doc = r.json()
    if field is not None:
        assert doc["field"] == field, doc
    else:
        assert doc["field"].startswith("cache_rules.0") or doc["field"].startswith(
            "cache_rules.1"
        ), doc
    assert doc["detail"]
    assert ok(api.get(CDN)) == before
    assert revision(api) == rev


def test_cache_rules_crud_and_order(api: Api) -> None:
    # A rule in a project with no CDN config creates an empty one.
    a = ok(api.post(f"{CDN}/rules", json={"id": "a", "pattern": "/a/*", "ttl": 10}), 201)
    assert a["id"] == "a" and a["ttl"] == 10 and a["stale_if_error"] is True
    assert ok(api.get(CDN))["origins"] == []
    ok(api.post(f"{CDN}/rules", json={"id": "c", "pattern": "/c"}), 201)
    ok(api.post(f"{CDN}/rules?position=1", json={"id": "b", "pattern": "/b"}), 201)
    ok(api.post(f"{CDN}/rules?position=0", json={"id": "first", "pattern": "*.png"}), 201)
    gen = ok(api.post(f"{CDN}/rules", json={"pattern": "/*", "ttl": 5}), 201)
    assert gen["id"].startswith("rule-")
    order = [r["id"] for r in ok(api.get(f"{CDN}/rules"))]
    assert order == ["first", "a", "b", "c", gen["id"]]

    r = api.patch(f"{CDN}/rules/b", json={"ttl": 99, "cache_key": {"query": "none"}})
    b = ok(r)
    assert b["ttl"] == 99 and b["pattern"] == "/b" and b["cache_key"]["query"] == "none"
    assert b["cache_key"]["host"] is True, "the cache key merges"
    ok(api.patch(f"{CDN}/rules/b?position=0", json={}))
    assert [r["id"] for r in ok(api.get(f"{CDN}/rules"))][:2] == ["b", "first"]
    assert ok(api.get(f"{CDN}/rules/b"))["ttl"] == 99

    rev = revision(api)
    problem(api.patch(f"{CDN}/rules/b", json={"pattern": "nope"}), "pattern")
    problem(api.patch(f"{CDN}/rules/b", json={"id": "other"}), "id")
    problem(api.patch(f"{CDN}/rules/b?position=9", json={}), "position")
    problem(api.post(f"{CDN}/rules", json={"id": "a", "pattern": "/x"}), "id")
    problem(api.post(f"{CDN}/rules?position=7", json={"pattern": "/x"}), "position")
    problem(api.post(f"{CDN}/rules", json={"pattern": "/x", "ttl": "long"}), "ttl")
    assert revision(api) == rev
    assert len(ok(api.get(f"{CDN}/rules"))) == 5

    assert api.delete(f"{CDN}/rules/b").status_code == 204
    assert api.delete(f"{CDN}/rules/b").status_code == 404
    assert api.get(f"{CDN}/rules/b").status_code == 404
    assert api.patch(f"{CDN}/rules/zzz", json={"ttl": 1}).status_code == 404
    assert [r["id"] for r in ok(api.get(f"{CDN}/rules"))] == ["first", "a", "c", gen["id"]]


def test_viewer_cannot_change_the_cdn(api: Api) -> None:
    viewer = api.token("viewer")
    r = api.post(CDN, json=CONFIG, token=viewer)
    assert r.status_code == 403
    r = api.post(f"{CDN}/purge", json={"purge_all": True}, token=viewer)
    assert r.status_code == 403
    assert api.get(f"{CDN}/rules", token=viewer).status_code == 200


# Purges -----------------------------------------------------------------------------------


BAD_PURGES = [
    ({}, None),
    ({"paths": []}, None),
    ({"paths": ["static/a.css"]}, "paths.0"),
    ({"paths": ["/ok", "/st*"]}, "paths.1"),
    ({"paths": ["/a/*/b"]}, "paths.0"),
    ({"paths": ["/a b"]}, "paths.0"),
    ({"paths": ["/*", "/x?y=1"]}, "paths.1"),
    ({"paths": ["/a"], "timeout_s": 0}, "timeout_s"),
    ({"paths": ["/a"], "extra": 1}, "extra"),
]


@pytest.mark.parametrize("body, field", BAD_PURGES)
def test_bad_purges(api: Api, body: dict[str, Any], field: str | None) -> None:
    rev = revision(api)
    r = api.post(f"{CDN}/purge", json=body)
    assert r.status_code == 422, r.text
    if field is not None:
        assert r.json()["field"] == field, r.json()
    assert revision(api) == rev
    with api.db.read(LOCAL, "default") as tx:
        assert tx.session.query(PurgeRow).count() == 0


def test_purge_without_edge_nodes_completes_at_once(api: Api) -> None:
    rev = revision(api)
    r = api.post(f"{CDN}/purge", json={"paths": ["/index.html", "/static/*"], "wait": True})
    doc = ok(r, 200)
    assert doc["purged_count"] == 0 and doc["complete"] is True and doc["nodes"] == []
    assert doc["id"].startswith("purge-")
    assert revision(api) == rev + 1, "a purge bumps the revision (edge long-polls wake)"
    with api.db.read(LOCAL, "default") as tx:
        row = tx.session.get(PurgeRow, doc["id"])
        assert row is not None
        assert row.paths == ["/index.html", "/static/*"] and row.purge_all is False
        assert row.revision == rev + 1
    assert ok(api.get(f"{CDN}/purges/{doc['id']}"))["id"] == doc["id"]
    assert api.get(f"{CDN}/purges/purge-nope").status_code == 404
    assert api.get(f"{CDN}/purges/{doc['id']}?project=other").status_code == 404


def test_purge_result_lists_nodes_and_their_acks(api: Api) -> None:
    add_node(api, "edge-a")
    add_node(api, "edge-b")
    add_node(api, "edge-gone", seen=datetime.now(UTC) - timedelta(minutes=5))
    doc = ok(api.post(f"{CDN}/purge", json={"purge_all": True}), 202)
    assert doc["complete"] is False
    assert [n["node"] for n in doc["nodes"]] == ["edge-a", "edge-b"], "offline nodes are skipped"
    assert all(n["completed_at"] is None for n in doc["nodes"])

    with api.db.transaction(LOCAL, "default") as tx:
        purge = tx.session.get(PurgeRow, doc["id"])
        assert purge is not None and purge.purge_all is True and purge.paths == []
        done = purge.created_at + timedelta(milliseconds=40)
        tx.session.add(
            PurgeAckRow(purge_id=doc["id"], node_id="edge-a", completed_at=done, purged_count=7)
        )
    # Waiting on a purge that one node never does ends at the timeout, incomplete.
    part = ok(api.get(f"{CDN}/purges/{doc['id']}"))
    assert part["complete"] is False and part["purged_count"] == 7
    a = part["nodes"][0]
    assert a["node"] == "edge-a" and a["purged_count"] == 7
    assert a["latency_ms"] == pytest.approx(40, abs=1)

    with api.db.transaction(LOCAL, "default") as tx:
        tx.session.add(
            PurgeAckRow(purge_id=doc["id"], node_id="edge-b", completed_at=done, purged_count=5)
        )
    full = ok(api.get(f"{CDN}/purges/{doc['id']}"))
    assert full["complete"] is True and full["purged_count"] == 12
    assert [n["purged_count"] for n in full["nodes"]] == [7, 5]


def test_purge_wait_times_out_when_a_node_never_acks(api: Api) -> None:
    add_node(api, "edge-a")
    r = api.post(f"{CDN}/purge", json={"paths": ["/x"], "wait": True, "timeout_s": 0.3})
    doc = ok(r, 202)
    assert doc["complete"] is False and doc["nodes"][0]["completed_at"] is None


# Analytics --------------------------------------------------------------------------------


def _hist(**at_ms: int) -> list[int]:
    """Counts per bucket: {"b10": 3} puts 3 in the bucket whose upper bound is 10 ms."""
    counts = [0] * (len(UPSTREAM_MS_BUCKETS) + 1)
    for key, n in at_ms.items():
        bound = key[1:]
        index = (
            len(UPSTREAM_MS_BUCKETS) if bound == "inf" else UPSTREAM_MS_BUCKETS.index(float(bound))
        )
        counts[index] += n
    return counts


def test_analytics_aggregation(api: Api) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    m1, m2 = now - timedelta(minutes=10), now - timedelta(minutes=9)
    old = now - timedelta(hours=3)

    def row(node: str, domain: str, minute: datetime, project: str = "default", **kw: Any) -> Any:
        return EdgeAnalyticsRow(
            node_id=node, domain=domain, minute=minute, project_id=project, **kw
        )

    with api.db.transaction(LOCAL, "default") as tx:
        tx.session.add_all(
            [
                row(
                    "n1",
                    "a.test",
                    m1,
                    requests=100,
                    hits=80,
                    misses=20,
                    bytes_out=1000,
                    statuses={"2xx": 95, "5xx": 5},
                    cache={"HIT": 80, "MISS": 20},
                    upstream_ms=_hist(b10=10, b20=10),
                ),
                row(
                    "n2",
                    "a.test",
                    m1,
                    requests=50,
                    hits=10,
                    misses=30,
                    bytes_out=500,
                    statuses={"2xx": 50},
                    cache={"HIT": 10, "MISS": 30, "BYPASS": 10},
                    upstream_ms=_hist(b10=20, b100=10),
                ),
                row(
                    "n1",
                    "b.test",
                    m2,
                    requests=10,
                    hits=0,
                    misses=0,
                    bytes_out=10,
                    statuses={"4xx": 10},
                    cache={},
                    upstream_ms=[],
                ),
                row("n1", "a.test", old, requests=1000, hits=1000, misses=0, bytes_out=1),
                row("n1", "other.test", m1, project="other", requests=7, hits=7),
            ]
        )

    doc = ok(api.get(f"{CDN}/analytics?timeframe=1h"))
    assert doc["project"] == "default"
    assert doc["requests"] == 160 and doc["hits"] == 90 and doc["misses"] == 50
    assert doc["hit_ratio"] == pytest.approx(90 / 140)
    assert doc["bytes_out"] == 1510
    assert doc["statuses"] == {"2xx": 145, "4xx": 10, "5xx": 5}
    assert doc["cache"] == {"BYPASS": 10, "HIT": 90, "MISS": 50}
    # 50 upstream times: 30 in (7, 10], 10 in (15, 20], 10 in (70, 100].
    up = doc["upstream_ms"]
    assert up["p50"] == pytest.approx(7 + 3 * 25 / 30)
    assert up["p95"] == pytest.approx(70 + 30 * 7.5 / 10)
    assert up["p99"] == pytest.approx(70 + 30 * 9.5 / 10)
    by = {d["domain"]: d for d in doc["domains"]}
    assert set(by) == {"a.test", "b.test"}
    assert by["a.test"]["requests"] == 150 and by["b.test"]["hit_ratio"] is None
    assert by["b.test"]["upstream_ms"] == {"p50": None, "p95": None, "p99": None}

    # Explicit bounds: [start, end) includes m1, excludes m2.
    params = {"start": m1.isoformat(), "end": m2.isoformat()}
    part = ok(api.get(f"{CDN}/analytics", params=params))
    assert part["requests"] == 150 and [d["domain"] for d in part["domains"]] == ["a.test"]

    assert ok(api.get(f"{CDN}/analytics?timeframe=24h"))["requests"] == 1160
    problem(api.get(f"{CDN}/analytics?timeframe=2w"), "timeframe")
    bad = {"start": m2.isoformat(), "end": m1.isoformat()}
    problem(api.get(f"{CDN}/analytics", params=bad), "start")
    empty = ok(
        api.get(
            f"{CDN}/analytics?timeframe=1h&project=default&end="
            f"{(old - timedelta(hours=2)).isoformat().replace('+', '%2B')}"
        )
    )
    assert empty["requests"] == 0 and empty["hit_ratio"] is None and empty["domains"] == []


def test_purge_waits_for_a_node_acking_through_the_edge_protocol(api: Api) -> None:
    """A registered node long-polls, gets the purge, acknowledges it; the waiting call sees it."""
    import threading

    from edgeplane.services.access import create_edge_token

    edge = create_edge_token(api.db, "edge-test")
    r = api.post("/api/v1/edge/nodes", token=edge, json={"name": "edge-1", "region": "us-east"})
    assert r.status_code in (200, 201), r.text
    node = r.json()
    base = f"/api/v1/edge/nodes/{node['id']}"
    first = ok(api.get(f"{base}/config?after=-1&wait=0", token=edge))
    done: list[int] = []

    def agent() -> None:
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        while not done and datetime.now(UTC) < deadline:
            poll = api.get(f"{base}/config?after={first['revision']}&wait=2", token=edge).json()
            for task in poll.get("purges", []):
                assert task["site"] == "default" and task["prefixes"] == ["/static/"]
                ack = {"completed_at": datetime.now(UTC).isoformat(), "purged_count": 3}
                r = api.post(f"{base}/purges/{task['id']}", token=edge, json=ack)
                assert r.status_code == 204, r.text
                done.append(1)

    thread = threading.Thread(target=agent, daemon=True)
    thread.start()
    try:
        r = api.post(f"{CDN}/purge", json={"paths": ["/static/*"], "wait": True, "timeout_s": 8})
    finally:
        thread.join(timeout=15)
    doc = ok(r, 200)
    assert doc["complete"] is True and doc["purged_count"] == 3
    [n] = doc["nodes"]
    assert n["node"] == "edge-1" and n["purged_count"] == 3
    assert 0 <= n["latency_ms"] < 8000


def test_analytics_bad_windows(api: Api) -> None:
    problem(api.get(f"{CDN}/analytics", params={"start": "2026-01-01T00:00:00"}), "start")
    problem(
        api.get(f"{CDN}/analytics", params={"timeframe": "1h", "end": "2026-01-01T00:00"}), "end"
    )
    both = {"timeframe": "1h", "start": "2026-01-01T00:00:00Z"}
    problem(api.get(f"{CDN}/analytics", params=both), "timeframe")
    span = {"start": "2020-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}
    problem(api.get(f"{CDN}/analytics", params=span), "start")
    assert api.get(f"{CDN}/analytics?start=yesterday").status_code == 422
