"""What the cheaper hot path of a cached hit could break, on one node serving sites that use
the rendering's different paths at once: a site with no rule (served in ``location /``), one
with a catch-all rule alone (its rule known from the site), sites with their own kinds of
pattern (their own combination maps), a site on another pool (a named location), an HSTS site,
an allow list and a rate limit. Real nginx, real origin processes, the analytics of the agent
reading nginx's access log."""

from __future__ import annotations

import os
import signal
import ssl
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from nginx_edge import Edge, backend, edge_config, pool, running_edge
from origins import Origin, start_origin
from test_edge_tls import make_certs

from edgeplane.node.agent.analytics import TrafficAggregator
from edgeplane.protocol.config import CacheKeySpec, CacheRuleSpec, RateLimitSpec, SiteSpec
from edgeplane.protocol.messages import MinuteTraffic

pytestmark = pytest.mark.integration

ONCE = ("x-served-by", "x-cache-status", "x-content-type-options", "x-frame-options",
        "referrer-policy")  # fmt: skip


def rule(rid: str, pattern: str, ttl: int = 60, **kw: object) -> CacheRuleSpec:
    return CacheRuleSpec(id=rid, pattern=pattern, ttl=ttl, **kw)  # type: ignore[arg-type]


SITES = [
    SiteSpec(id="plain", domains=("plain.test",), pool="origin.a"),
    SiteSpec(id="all", domains=("all.test",), pool="origin.a", cache_rules=(rule("1", "/*"),)),
    SiteSpec(
        id="exact",
        domains=("exact.test",),
        pool="origin.a",
        cache_rules=(
            rule("1", "/robots.txt", ttl=60),
            rule("2", "*.css", cache_key=CacheKeySpec(query="none")),
        ),
    ),
    SiteSpec(
        id="segments",
        domains=("segments.test",),
        pool="origin.a",
        cache_rules=(rule("1", "/api/*", bypass=True), rule("2", "/static/v1/*")),
    ),
    SiteSpec(id="other", domains=("other.test",), pool="origin.b"),
    SiteSpec(id="hsts", domains=("hsts.test",), pool="origin.a", hsts_max_age=600),
    SiteSpec(id="acl", domains=("acl.test",), pool="origin.a", ip_allow=("10.0.0.0/8",)),
    SiteSpec(
        id="limited",
        domains=("limited.test",),
        pool="origin.a",
        rate_limit=RateLimitSpec(rate=1, burst=0),
    ),
]


@pytest.fixture(scope="module")
def origins() -> Iterator[dict[str, Origin]]:
    started = {name: start_origin(name) for name in ("a", "b")}
    yield started
    for o in started.values():
        o.terminate()


@pytest.fixture(scope="module")
def tls() -> tuple[str, object]:
    return make_certs(["hsts.test", "plain.test"])


@pytest.fixture(scope="module")
def edge(origins: dict[str, Origin], tls: tuple[str, object]) -> Iterator[Edge]:
    pools = [pool("origin.a", backend(origins["a"])), pool("origin.b", backend(origins["b"]))]
    with running_edge() as e:
        e.apply(edge_config(SITES, pools, certs=(tls[1],)))
        yield e


def cache(edge: Edge, host: str, path: str, n: int = 2) -> list[str]:
    return [edge.get(host, path).headers["x-cache-status"] for _ in range(n)]


def test_each_path_of_the_rules(edge: Edge) -> None:
    assert cache(edge, "plain.test", "/p?cc=max-age%3D60") == ["MISS", "HIT"]  # origin's say
    assert cache(edge, "plain.test", "/q") == ["MISS", "MISS"]  # the origin says nothing
    assert cache(edge, "all.test", "/anything") == ["MISS", "HIT"]  # the catch-all's TTL
    assert cache(edge, "exact.test", "/robots.txt") == ["MISS", "HIT"]
    assert cache(edge, "exact.test", "/a.css?v=1") == ["MISS", "HIT"]
    assert cache(edge, "exact.test", "/a.css?v=2", n=1) == ["HIT"]  # query not in the key
    assert cache(edge, "exact.test", "/other") == ["MISS", "MISS"]  # no rule: origin's say
    assert cache(edge, "segments.test", "/api/x?cc=max-age%3D60") == ["BYPASS", "BYPASS"]
    assert cache(edge, "segments.test", "/static/v1/app.js") == ["MISS", "HIT"]
    assert cache(edge, "segments.test", "/static/v2/app.js") == ["MISS", "MISS"]
    r = edge.get("other.test", "/o?cc=max-age%3D60")
    assert r.headers["x-origin"] == "b"  # the other pool, through its named location
    assert cache(edge, "other.test", "/o?cc=max-age%3D60", n=1) == ["HIT"]
    assert edge.get("all.test", "/anything").headers["x-origin"] == "a"


def _once(r: httpx.Response) -> None:
    for name in ONCE:
        assert len(r.headers.get_list(name)) == 1, (name, r.headers.get_list(name))


def test_headers_exactly_once(edge: Edge, tls: tuple[str, object]) -> None:
    for host, path in [
        ("plain.test", "/h?cc=max-age%3D60"),  # location / (twice: a HIT)
        ("plain.test", "/h?cc=max-age%3D60"),
        ("other.test", "/h?cc=max-age%3D60"),  # a named location
        ("segments.test", "/api/h"),  # bypass
        ("nowhere.test", "/"),  # unknown host: 404
        ("acl.test", "/"),  # 403
    ]:
        r = edge.get(host, path)
        _once(r)
        assert "strict-transport-security" not in r.headers  # plain HTTP: never
    assert edge.get("acl.test", "/").status_code == 403
    ca = tls[0]
    with httpx.Client(
        base_url=f"https://127.0.0.1:{edge.local.https_port}",
        verify=ssl.create_default_context(cadata=ca),
        timeout=10,
    ) as c:
        ext = {"sni_hostname": "hsts.test"}
        r = c.get("/h", headers={"Host": "hsts.test"}, extensions=ext)
        _once(r)
        assert r.headers.get_list("strict-transport-security") == ["max-age=600"]
        r = c.get("/h", headers={"Host": "plain.test"}, extensions={"sni_hostname": "plain.test"})
        _once(r)
        assert "strict-transport-security" not in r.headers


def test_rate_limit_still_enforced(edge: Edge) -> None:
    codes = [edge.get("limited.test", "/r").status_code for _ in range(5)]
    assert codes[0] == 200 and 429 in codes
    assert all(edge.get("plain.test", "/r").status_code == 200 for _ in range(5))  # others not


def per_site(agg: TrafficAggregator) -> dict[str, MinuteTraffic]:
    """The aggregator's minutes summed per site (the requests may straddle a minute)."""
    got: dict[str, MinuteTraffic] = {}
    for m in agg.changed():
        if m.site not in got:
            got[m.site] = m
            continue
        s = got[m.site]
        got[m.site] = s.model_copy(
            update={
                "requests": s.requests + m.requests,
                "hits": s.hits + m.hits,
                "bytes_out": s.bytes_out + m.bytes_out,
                "cache": dict(Counter(s.cache) + Counter(m.cache)),
                "request_ms": [a + b for a, b in zip(s.request_ms, m.request_ms, strict=True)],
                "upstream_ms": [a + b for a, b in zip(s.upstream_ms, m.upstream_ms, strict=True)],
            }
        )
    return got


def test_analytics_count_every_request(edge: Edge) -> None:
    log = edge.local.prefix / "logs" / "access.json"
    edge.get("all.test", "/count")  # warm: a MISS, then only HITs
    time.sleep(1.2)  # the buffered log is flushed every second
    start = log.stat().st_size
    for _ in range(30):
        assert edge.get("all.test", "/count").status_code == 200
    for _ in range(7):
        edge.get("segments.test", "/api/count")
    pid = int((edge.local.prefix / "nginx.pid").read_text())
    os.kill(pid, signal.SIGUSR1)  # reopen the logs: the workers flush their buffers
    deadline = time.monotonic() + 5
    agg = TrafficAggregator()
    while time.monotonic() < deadline:
        time.sleep(0.3)
        agg = TrafficAggregator()
        with log.open("rb") as f:
            f.seek(start)
            for line in f.read().splitlines():
                agg.add_line(line)
        got = per_site(agg)
        if sum(m.requests for m in got.values()) >= 37:
            break
    assert agg.skipped == 0
    assert got["all"].requests == 30 and got["all"].hits == 30
    assert got["all"].cache == {"HIT": 30}
    assert got["all"].bytes_out > 0 and sum(got["all"].request_ms) == 30
    assert got["segments"].requests == 7 and got["segments"].hits == 0
    assert got["segments"].cache == {"BYPASS": 7}
    assert sum(got["segments"].upstream_ms) == 7  # they reached the origin


def test_in_place_location_with_the_pool_by_variable(origins: dict[str, Origin]) -> None:
    """Sites of one profile spread over several pools: ``location /`` serves all of them in
    place, with the site's pool taken by variable; each request reaches its own site's
    origin, and a site whose rule needs another profile still jumps."""
    pools = [
        pool("pa", backend(origins["a"])),
        pool("pb", backend(origins["b"])),
        pool("pc", backend(origins["a"])),
    ]
    sites = [
        SiteSpec(id="va", domains=("va.test",), pool="pa"),
        SiteSpec(id="vb", domains=("vb.test",), pool="pb"),
        SiteSpec(id="vc", domains=("vc.test",), pool="pc"),
        SiteSpec(
            id="vr",
            domains=("vr.test",),
            pool="pb",
            cache_rules=(rule("1", "/api/*", bypass=True),),
        ),
    ]
    with running_edge(https=False) as e:
        e.apply(edge_config(sites, pools))
        servers = (e.local.prefix / "current" / "servers.conf").read_text()
        # in place: the origin hop of the profile, which takes the site's pool by variable
        assert "proxy_pass http://hop_" in servers.split("location / {")[1]
        assert "proxy_pass $site_pass;" in servers.split("the origin hop of proxy profile")[1]
        for host, name in [("va.test", "a"), ("vb.test", "b"), ("vc.test", "a"), ("vr.test", "b")]:
            first = e.get(host, "/v?cc=max-age%3D60")
            assert first.headers["x-origin"] == name, host
            _once(first)
            assert cache(e, host, "/v?cc=max-age%3D60", n=1) == ["HIT"], host
        assert cache(e, "vr.test", "/api/v") == ["BYPASS", "BYPASS"]  # jumps to its rule
        assert e.get("nowhere.test", "/").status_code == 404  # unknown host: jumps too
