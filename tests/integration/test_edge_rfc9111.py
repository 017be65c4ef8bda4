"""The edge's cache as RFC 9111 says (the origin hop, ``render_hop``): conditional
revalidation, stale only where the origin allows it, the origin's stale-if-error and
stale-while-revalidate, Age and Expires, Vary, invalidation by unsafe methods,
CDN-Cache-Control and Surrogate-Control, stored headers unchanged (one real nginx, real
origin processes sending the directives)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from nginx_edge import Edge, backend, edge_config, pool, running_edge, wait_for
from origins import Origin, start_origin

from edgeplane.protocol.config import CacheKeySpec, CacheRuleSpec, SiteSpec

pytestmark = pytest.mark.integration


def honour(rid: str, pattern: str, ttl: int = 0, **kw: object) -> CacheRuleSpec:
    return CacheRuleSpec(id=rid, pattern=pattern, ttl=ttl, origin_cache_control="honour", **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def origins() -> Iterator[dict[str, Origin]]:
    started = {name: start_origin(name) for name in ("main", "down")}
    yield started
    for origin in started.values():
        origin.terminate()


@pytest.fixture(scope="module")
def edge(origins: dict[str, Origin]) -> Iterator[Edge]:
    main = pool("origin.p1", backend(origins["main"]))
    down = pool("origin.p2", backend(origins["down"]))
    rules = (honour("nq", "/nq/*", cache_key=CacheKeySpec(query="none")), honour("all", "/*"))
    config = edge_config(
        [
            SiteSpec(id="p1", domains=("rfc.test",), pool=main.id, cache_rules=rules),
            SiteSpec(id="p2", domains=("stale.test",), pool=down.id),  # no rule: the default
            SiteSpec(
                id="p3",
                domains=("nostale.test",),
                pool=down.id,
                cache_rules=(honour("all", "/*", stale_if_error=False),),
            ),
        ],
        [main, down],
    )
    with running_edge(https=False) as e:
        e.apply(config)
        e.client()  # one client for the module (a new one costs ~100 ms): get() uses it
        yield e


def get(edge: Edge, host: str, path: str, **kw: object) -> httpx.Response:
    return edge.get(host, path, client=edge.clients[0], **kw)  # type: ignore[arg-type]


def q(**params: str | list[str]) -> str:
    parts = []
    for key, value in params.items():
        for v in value if isinstance(value, list) else [value]:
            parts.append(f"{key}={quote(v, safe='')}")
    return "&".join(parts)


def cache(edge: Edge, path: str, host: str = "rfc.test", **kw: object) -> str:
    return str(get(edge, host, path, **kw).headers["x-cache-status"])


def test_revalidation_with_validators(edge: Edge, origins: dict[str, Origin]) -> None:
    path = "/reval?" + q(
        cc="max-age=1", etag="v1", h="Last-Modified: Mon, 01 Jan 2024 00:00:00 GMT"
    )
    first = get(edge, "rfc.test", path)
    assert first.headers["x-cache-status"] == "MISS"
    assert cache(edge, path) == "HIT"
    before = origins["main"].hits()
    seen: list[httpx.Response] = []

    def refreshed() -> bool:
        seen.append(get(edge, "rfc.test", path))
        return origins["main"].hits() > before

    assert wait_for(refreshed, 5)
    again = seen[-1]
    # the origin was asked with If-None-Match and answered 304: the stored body is served
    assert origins["main"].hits() == before + 1
    assert again.status_code == 200 and again.text == first.text
    assert again.headers["x-cache-status"] == "HIT"  # REVALIDATED


def test_stale_only_where_the_origin_allows(edge: Edge, origins: dict[str, Origin]) -> None:
    forbidden = ["must-revalidate", "proxy-revalidate", "no-cache", "s-maxage=1"]
    paths = {
        "plain": "/s/plain?" + q(cc="max-age=1"),  # the rule's default allows stale
        "sie": "/s/sie?" + q(cc="max-age=1, stale-if-error=600"),
        **{f: f"/s/{f}?" + q(cc=f"max-age=1, {f}") for f in forbidden},
    }
    swr = "/s/swr?" + q(cc="max-age=1, stale-while-revalidate=600")
    for host in ("stale.test", "nostale.test"):
        for path in [*paths.values(), swr]:
            assert get(edge, host, path).status_code == 200
    # stale-while-revalidate: served stale at once while the origin is asked in the background
    got: list[str] = []
    assert wait_for(lambda: got.append(cache(edge, swr, "stale.test")) or got[-1] != "HIT", 5)
    assert got[-1] == "STALE"
    origins["down"].kill()

    def status(host: str, path: str) -> tuple[int, str]:
        """Once the stored response is stale (fresh, it is a HIT whatever the origin does)."""
        seen: list[httpx.Response] = []
        assert wait_for(lambda: seen.append(get(edge, host, path)) or seen[-1].headers[
            "x-cache-status"] != "HIT", 5)  # fmt: skip
        return seen[-1].status_code, seen[-1].headers["x-cache-status"]

    # the default (no rule) allows stale on errors where the origin did not forbid it
    assert status("stale.test", paths["plain"]) == (200, "STALE")
    assert status("stale.test", paths["sie"]) == (200, "STALE")
    for f in forbidden:
        assert status("stale.test", paths[f])[0] == 502, f
    # a rule without stale_if_error: only the origin's own stale-if-error
    assert status("nostale.test", paths["sie"]) == (200, "STALE")
    assert status("nostale.test", paths["plain"])[0] == 502


def test_age_and_expires(edge: Edge) -> None:
    assert [cache(edge, "/age/young?" + q(cc="max-age=600", h="Age: 30")) for _ in "12"] == [
        "MISS",
        "HIT",
    ]
    # older than its lifetime on arrival: stored stale, never served without validation
    old = "/age/old?" + q(cc="max-age=600", h="Age: 1200")
    assert [cache(edge, old) for _ in "12"] == ["MISS", "EXPIRED"]
    past = "/exp/past?" + q(h="Expires: Thu, 01 Jan 1970 00:00:00 GMT")
    assert [cache(edge, past) for _ in "12"] == ["MISS", "EXPIRED"]
    invalid = "/exp/invalid?" + q(h="Expires: Thu, 18 Aug 2050 02:01:18 UTC")  # not GMT
    assert [cache(edge, invalid) for _ in "12"] == ["MISS", "EXPIRED"]
    future = "/exp/future?" + q(h="Expires: Thu, 18 Aug 2050 02:01:18 GMT")
    r = [get(edge, "rfc.test", future) for _ in "12"]
    assert [x.headers["x-cache-status"] for x in r] == ["MISS", "HIT"]
    assert r[1].headers["expires"] == "Thu, 18 Aug 2050 02:01:18 GMT"  # unchanged


def test_vary(edge: Edge) -> None:
    path = "/vary/lang?" + q(cc="max-age=600", h="Vary: X-Lang")
    got = [cache(edge, path, headers={"X-Lang": lang}) for lang in ("fr", "fr", "de", "de")]
    assert got == ["MISS", "HIT", "MISS", "HIT"]
    for vary in ("*", "Accept, *", "*, *"):
        path = "/vary/star?" + q(cc="max-age=600", h=f"Vary: {vary}")
        assert [cache(edge, path) for _ in "12"] == ["MISS", "MISS"], vary


def test_unsafe_methods_invalidate(edge: Edge, origins: dict[str, Origin]) -> None:
    target = "/inv/a?" + q(cc="max-age=600")
    assert [cache(edge, target) for _ in "12"] == ["MISS", "HIT"]
    failed = edge.clients[0].post(target + "&status=500", headers={"Host": "rfc.test"})
    assert failed.status_code == 500
    assert cache(edge, target) == "HIT"  # a failed POST to another URI changes nothing
    for method in ("POST", "PUT", "DELETE"):
        assert cache(edge, target) == "HIT"
        r = edge.clients[0].request(method, target, headers={"Host": "rfc.test"})
        assert r.status_code == 200
        assert cache(edge, target) == "MISS", method
    # Location and Content-Location of the same host (a rule ignoring the query: key /nq/x)
    for header in ("Location", "Content-Location"):
        kept = "/nq/" + header.lower() + "?" + q(cc="max-age=600")
        assert [cache(edge, kept) for _ in "12"] == ["MISS", "HIT"]
        other = f"/inv/post?{q(h=f'{header}: http://elsewhere.test/nq/{header.lower()}')}"
        edge.clients[0].post(other, headers={"Host": "rfc.test"})
        assert cache(edge, kept) == "HIT", header  # another host: untouched
        same = f"/inv/post?{q(h=f'{header}: /nq/{header.lower()}', status='201')}"
        assert edge.clients[0].post(same, headers={"Host": "rfc.test"}).status_code == 201
        assert cache(edge, kept) == "MISS", header


def test_a_decoded_crlf_in_the_path_injects_nothing_toward_the_origin(edge: Edge) -> None:
    # The hop's cache key is its own: a key sent in a header would carry the decoded URI, and
    # %0d%0a would add header fields (or a whole request) on the hop's kept-alive connection.
    r = get(edge, "rfc.test", "/inj%0d%0aX-Injected:%20yes%0d%0a?echo=1&cc=no-store")
    assert r.status_code == 200, r.text
    assert "x-injected" not in r.headers["x-origin-request-headers"].split(",")
    assert "x-edge-key" not in r.headers["x-origin-request-headers"].split(",")
    # nor can a client's own X-Edge-Key make a POST invalidate another object
    target = "/inv/kept?" + q(cc="max-age=600")
    assert [cache(edge, target) for _ in "12"] == ["MISS", "HIT"]
    forged = {"Host": "rfc.test", "X-Edge-Key": f"p1|rfc.test|/inv/kept|{q(cc='max-age=600')}|"}
    assert edge.clients[0].post("/inv/other", headers=forged).status_code == 200
    assert cache(edge, target) == "HIT"


def test_targeted_cache_control(edge: Edge) -> None:
    path = "/cdn/fresh?" + q(cc="no-store", h="CDN-Cache-Control: max-age=600")
    r = [get(edge, "rfc.test", path) for _ in "12"]
    assert [x.headers["x-cache-status"] for x in r] == ["MISS", "HIT"]
    assert r[1].headers["cache-control"] == "no-store"  # the browsers' word, unchanged
    assert r[1].headers["cdn-cache-control"] == "max-age=600"
    never = "/cdn/nostore?" + q(cc="max-age=600", h="CDN-Cache-Control: no-store")
    assert [cache(edge, never) for _ in "12"] == ["MISS", "MISS"]
    invalid = "/cdn/invalid?" + q(cc="no-store", h='CDN-Cache-Control: max-age="600"')
    assert [cache(edge, invalid) for _ in "12"] == ["MISS", "MISS"]  # ignored: Cache-Control
    surrogate = "/sc?" + q(cc="no-store", h="Surrogate-Control: max-age=600")
    r = [get(edge, "rfc.test", surrogate) for _ in "12"]
    assert [x.headers["x-cache-status"] for x in r] == ["MISS", "HIT"]
    assert all("surrogate-control" not in x.headers for x in r)  # stripped


def test_stored_headers_unchanged(edge: Edge) -> None:
    path = "/hdr?" + q(
        cc="max-age=600, public", h=["X-Frame-Options: DENY", "Connection: x-a", "X-A: 1"]
    )
    r = [get(edge, "rfc.test", path) for _ in "12"]
    assert [x.headers["x-cache-status"] for x in r] == ["MISS", "HIT"]
    for x in r:
        assert x.headers.get_list("x-frame-options") == ["DENY"]
        assert x.headers.get_list("cache-control") == ["max-age=600, public"]
        assert "x-a" not in x.headers  # listed in Connection: hop-by-hop
        assert not any(h.lower().startswith("x-edge-") for h in x.headers)
        assert x.headers["date"] == r[0].headers["date"]  # the origin's, stored


def test_authorization_not_shared(edge: Edge) -> None:
    private = "/auth/private?" + q(cc="max-age=600")
    auth = {"Authorization": "Bearer x"}
    assert [cache(edge, private, headers=auth) for _ in "12"] == ["MISS", "MISS"]
    public = "/auth/public?" + q(cc="max-age=600, public")
    assert [cache(edge, public, headers=auth) for _ in "12"] == ["MISS", "HIT"]
