"""CDN behaviour of the rendered nginx: rules, TTLs, keys, bypass, stale, purge (real nginx and
real origin processes)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from nginx_edge import Edge, backend, edge_config, pool, running_edge, wait_for
from origins import Origin, start_origin

from edgeplane.protocol.config import CacheKeySpec, CacheRuleSpec, SiteSpec
from edgeplane.protocol.messages import PurgeTask

pytestmark = pytest.mark.integration


def rule(rid: str, pattern: str, ttl: int = 60, **kw: object) -> CacheRuleSpec:
    return CacheRuleSpec(id=rid, pattern=pattern, ttl=ttl, **kw)  # type: ignore[arg-type]


RULES = (
    rule("bypass", "/nocache/*", bypass=True),
    rule("short", "/short/*", ttl=1),
    rule("qnone", "/qnone/*", cache_key=CacheKeySpec(query="none")),
    rule("qlist", "/qlist/*", cache_key=CacheKeySpec(query=("v", "lang"))),
    rule("vary", "/vary/*", cache_key=CacheKeySpec(headers=("x-lang",), cookies=("theme",))),
    rule("honour", "/honour/*", origin_cache_control="honour"),
    rule("override", "/override/*"),
    rule("first", "/first/*", bypass=True),
    rule("stale", "/stale/*", ttl=1, stale_if_error=True),
    rule("css", "*.css"),
    rule("all", "/*"),
)


@pytest.fixture(scope="module")
def origins() -> Iterator[dict[str, Origin]]:
    started = {name: start_origin(name) for name in ("main", "stale")}
    yield started
    for origin in started.values():
        origin.terminate()


@pytest.fixture(scope="module")
def edge(origins: dict[str, Origin]) -> Iterator[Edge]:
    main = pool("origin.p1", backend(origins["main"]))
    stale = pool("origin.p2", backend(origins["stale"]))
    config = edge_config(
        [
            SiteSpec(id="p1", domains=("cache.test",), pool=main.id, cache_rules=RULES),
            SiteSpec(id="p2", domains=("stale.test",), pool=stale.id, cache_rules=RULES),
            SiteSpec(id="p3", domains=("plain.test",), pool=main.id),
        ],
        [main, stale],
    )
    with running_edge(https=False) as e:
        e.apply(config)
        yield e


def statuses(
    edge: Edge, path: str, n: int = 2, host: str = "cache.test", **kw: object
) -> list[str]:
    return [edge.get(host, path, **kw).headers["x-cache-status"] for _ in range(n)]  # type: ignore[arg-type]


def test_miss_then_hit_same_body(edge: Edge) -> None:
    first = edge.get("cache.test", "/all/a")
    second = edge.get("cache.test", "/all/a")
    assert (first.headers["x-cache-status"], second.headers["x-cache-status"]) == ("MISS", "HIT")
    assert first.text == second.text
    assert second.headers["x-served-by"] == "edge-1"


def test_ttl_expiry(edge: Edge) -> None:
    assert statuses(edge, "/short/x") == ["MISS", "HIT"]
    started = time.monotonic()
    seen: list[str] = []
    assert wait_for(lambda: seen.append(statuses(edge, "/short/x", 1)[0]) or seen[-1] != "HIT", 4)
    assert seen[-1] == "EXPIRED"
    assert time.monotonic() - started >= 0.5  # not expired at once
    assert statuses(edge, "/short/x", 1) == ["HIT"]


def test_bypass_hits_origin_every_time(edge: Edge, origins: dict[str, Origin]) -> None:
    before = origins["main"].hits()
    assert statuses(edge, "/nocache/x", 3) == ["BYPASS"] * 3
    assert origins["main"].hits() - before == 3


def test_query_all(edge: Edge) -> None:
    assert [statuses(edge, f"/all/q?a={a}", 1)[0] for a in (1, 2, 1)] == ["MISS", "MISS", "HIT"]


def test_query_none(edge: Edge) -> None:
    assert [statuses(edge, f"/qnone/q?a={a}", 1)[0] for a in (1, 2)] == ["MISS", "HIT"]


def test_query_listed_order_independent(edge: Edge) -> None:
    got = [
        statuses(edge, f"/qlist/q?{q}", 1)[0] for q in ("v=1&x=1", "x=9&v=1", "lang=fr&v=1", "v=2")
    ]
    assert got == ["MISS", "HIT", "MISS", "MISS"]
    assert statuses(edge, "/qlist/q?v=1&lang=fr", 1) == ["HIT"]


def test_header_and_cookie_keys(edge: Edge) -> None:
    def one(headers: dict[str, str]) -> str:
        return edge.get("cache.test", "/vary/k", headers=headers).headers["x-cache-status"]

    assert one({"X-Lang": "fr"}) == "MISS"
    assert one({"X-Lang": "fr"}) == "HIT"
    assert one({"X-Lang": "de"}) == "MISS"
    assert one({"X-Lang": "fr", "Cookie": "theme=dark"}) == "MISS"
    assert one({"X-Lang": "fr", "Cookie": "x=1; theme=dark"}) == "HIT"


def test_honour_vs_override(edge: Edge) -> None:
    assert statuses(edge, "/honour/a?cc=no-store") == ["MISS", "MISS"]
    assert statuses(edge, "/override/a?cc=no-store") == ["MISS", "HIT"]
    assert statuses(edge, "/honour/silent") == ["MISS", "HIT"]  # rule TTL when origin is silent


def test_no_rule_follows_origin_headers(edge: Edge) -> None:
    assert statuses(edge, "/x", host="plain.test") == ["MISS", "MISS"]
    assert statuses(edge, "/y?cc=max-age=60", host="plain.test") == ["MISS", "HIT"]


def test_first_match_wins(edge: Edge) -> None:
    assert statuses(edge, "/first/a.css") == ["BYPASS", "BYPASS"]
    assert statuses(edge, "/other/a.css") == ["MISS", "HIT"]


def test_unknown_host_and_headers(edge: Edge) -> None:
    r = edge.get("nowhere.test", "/")
    assert r.status_code == 404
    assert r.headers["x-served-by"] == "edge-1"
    assert r.headers["x-cache-status"] == "BYPASS"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "strict-transport-security" not in r.headers


def test_stale_if_error(edge: Edge, origins: dict[str, Origin]) -> None:
    first = edge.get("stale.test", "/stale/s")
    assert first.headers["x-cache-status"] == "MISS"
    origins["stale"].kill()
    got: list[str] = []
    assert wait_for(
        lambda: got.append(statuses(edge, "/stale/s", 1, "stale.test")[0]) or got[-1] == "STALE", 4
    )
    stale = edge.get("stale.test", "/stale/s")
    assert stale.status_code == 200
    assert stale.text == first.text
    assert edge.get("stale.test", "/stale/never").status_code == 502


def _warm(edge: Edge, host: str, paths: list[str]) -> None:
    for path in paths:
        edge.get(host, path)
        assert statuses(edge, path, 1, host) == ["HIT"]


def test_purge_path_prefix_all(edge: Edge) -> None:
    paths = ["/all/p/a", "/all/p/b?x=1", "/static/s1", "/static/s2", "/all/keep"]
    _warm(edge, "cache.test", paths)
    n = edge.engine.purge(PurgeTask(id="1", site="p1", paths=["/all/p/a"]))
    assert n == 1
    assert statuses(edge, "/all/p/a", 1) == ["MISS"]
    assert statuses(edge, "/all/p/b?x=1", 1) == ["HIT"]
    n = edge.engine.purge(PurgeTask(id="2", site="p1", prefixes=["/static/"]))
    assert n == 2
    assert statuses(edge, "/static/s1", 1) + statuses(edge, "/static/s2", 1) == ["MISS", "MISS"]
    assert statuses(edge, "/all/keep", 1) == ["HIT"]
    _warm(edge, "plain.test", ["/z?cc=max-age=60"])  # site p3: untouched by p1's purge all
    assert edge.engine.purge(PurgeTask(id="3", site="p1", purge_all=True)) >= 4
    assert statuses(edge, "/all/keep", 1) == ["MISS"]
    assert statuses(edge, "/all/p/b?x=1", 1) == ["MISS"]
    assert statuses(edge, "/z?cc=max-age=60", 1, "plain.test") == ["HIT"]
