"""The nginx renderer: golden files for representative snapshots, the cache-rule compiler and
purge matching. Regenerate the golden files with ``EDGEPLANE_UPDATE_GOLDEN=1``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgeplane.node.nginx.local import LocalHealth, NodeLocal
from edgeplane.node.nginx.purge import key_matches, purge_cache
from edgeplane.node.nginx.render import render, render_release
from edgeplane.node.nginx.render_cache import (
    CACHE_KEY_PLAIN,
    CACHE_KEY_RULES,
    CACHE_KEY_VARIABLE,
    compile_rules,
)
from edgeplane.node.nginx.render_jump import dominant_location, jump_maps
from edgeplane.node.nginx.render_shards import Shards
from edgeplane.node.nginx.render_tls import name_matches
from edgeplane.node.nginx.render_upstreams import ProxyProfile, in_rotation, render_upstream
from edgeplane.protocol.config import (
    BackendSpec,
    BundleSpec,
    CacheKeySpec,
    CacheRuleSpec,
    CertSpec,
    EdgeConfig,
    FunctionRouteSpec,
    FunctionSpec,
    HealthCheckSpec,
    NodeSpec,
    PoolSpec,
    RateLimitSpec,
    SiteSpec,
)
from edgeplane.protocol.headers import HeaderRuleSpec, HeadersSpec
from edgeplane.protocol.messages import PurgeTask

GOLDEN = Path(__file__).parent / "golden" / "nginx"
LOCAL = NodeLocal(
    prefix=Path("/srv/edge/nginx"),
    node_name="edge-1",
    http_port=8080,
    https_port=8443,
    user="www-data",
    js_module="/usr/lib/nginx/modules/ngx_http_js_module.so",
)
NODE = NodeSpec(id="n1", name="edge-1", region="eu-west")


def rule(rid: str, pattern: str, ttl: int = 60, **kw: object) -> CacheRuleSpec:
    return CacheRuleSpec(id=rid, pattern=pattern, ttl=ttl, **kw)  # type: ignore[arg-type]


def be(key: str, port: int, **kw: object) -> BackendSpec:
    return BackendSpec(key=key, host="10.0.0.1", port=port, **kw)  # type: ignore[arg-type]


CERT = CertSpec(
    id="c0ffee",
    names=("shop.test", "*.shop.test"),
    cert_pem="CERT\n",
    key_pem="KEY\n",
    not_after="2030-01-01T00:00:00Z",
)

SNAPSHOTS: dict[str, EdgeConfig] = {
    "empty": EdgeConfig(revision=1, node=NODE),
    "one_origin": EdgeConfig(
        revision=2,
        node=NODE,
        sites=(SiteSpec(id="p1", domains=("app.test",), pool="origin.p1"),),
        pools=(
            PoolSpec(id="origin.p1", algorithm="round_robin", backends=(be("10.0.0.1:80", 80),)),
        ),
    ),
    "full": EdgeConfig(
        revision=3,
        node=NODE,
        sites=(
            SiteSpec(
                id="p1",
                domains=("shop.test", "www.shop.test"),
                pool="lb.p1.7",
                cache_rules=(
                    rule("r1", "/static/img/*", 600),
                    rule("r2", "/static/*", 300, cache_key=CacheKeySpec(query=("v", "lang"))),
                    rule(
                        "r3",
                        "*.css",
                        30,
                        origin_cache_control="honour",
                        stale_while_revalidate=True,
                    ),
                    rule("r4", "/api/*", 0, bypass=True),
                    rule(
                        "r5",
                        "/robots.txt",
                        3600,
                        cache_key=CacheKeySpec(
                            host=False, query="none", headers=("x-lang",), cookies=("theme",)
                        ),
                    ),
                ),
                force_https=True,
                hsts_max_age=31536000,
                hsts_include_subdomains=True,
                rate_limit=RateLimitSpec(rate=50, burst=20),
                ip_deny=("192.0.2.0/24",),
            ),
            SiteSpec(
                id="p2",
                domains=("blog.test",),
                pool="origin.p2",
                ip_allow=("10.1.0.0/16",),
                rate_limit=RateLimitSpec(rate=50, burst=20),
                headers=HeadersSpec(
                    rules=(
                        HeaderRuleSpec(name="X-Frame-Options", action="set", value="DENY"),
                        HeaderRuleSpec(name="X-Content-Type-Options", action="remove"),
                        HeaderRuleSpec(name="Referrer-Policy", action="keep", value="no-referrer"),
                        HeaderRuleSpec(name="Permissions-Policy", action="keep"),
                        HeaderRuleSpec(
                            name="Content-Security-Policy",
                            action="set",
                            value="default-src 'self'",
                        ),
                    ),
                    remove_leaking=False,
                ),
            ),
            SiteSpec(id="p3", domains=("parked.test",), pool=None),
        ),
        pools=(
            PoolSpec(
                id="lb.p1.7",
                algorithm="ip_hash",
                backends=(be("a", 8001, weight=3), be("b", 8002), be("c", 8003, backup=True)),
                read_timeout_s=5,
                retries=2,
            ),
            PoolSpec(
                id="origin.p2",
                algorithm="least_conn",
                backends=(be("x", 9001), be("y", 9002, backup=True, state="draining")),
            ),
        ),
        certs=(CERT,),
    ),
    "bundles": EdgeConfig(
        revision=4,
        node=NODE,
        sites=(
            SiteSpec(id="app", domains=("app.example.com",), pool="origin.app"),
            SiteSpec(id="docs", domains=("docs.example.com",), pool=None),
        ),
        pools=(PoolSpec(id="origin.app", algorithm="round_robin", backends=(be("o", 9000),)),),
        bundles=(
            BundleSpec(
                site="app",
                deployment="dep-a",
                version=3,
                hash="a" * 64,
                size=10,
                spa=True,
                origin_paths=("/api/",),
            ),
            BundleSpec(site="docs", deployment="dep-d", version=1, hash="d" * 64, size=10),
        ),
        prefetch=("e" * 64,),
    ),
    "functions": EdgeConfig(
        revision=5,
        node=NODE,
        sites=(
            SiteSpec(id="app", domains=("app.example.com", "www.example.com"), pool="origin.app"),
            SiteSpec(id="plain", domains=("plain.example.com",), pool="origin.app"),
        ),
        pools=(PoolSpec(id="origin.app", algorithm="round_robin", backends=(be("o", 9000),)),),
        bundles=(BundleSpec(site="app", deployment="dep-a", version=3, hash="a" * 64, size=10),),
        functions=(
            FunctionSpec(
                site="app",
                name="api",
                version=2,
                id="fnv-1",
                sha256="1" * 64,
                code="export default {}",
                secrets={"TOKEN": "s3cret"},
                routes=(
                    FunctionRouteSpec(host="*", path="/api/*"),
                    FunctionRouteSpec(host="app.example.com", path="/api/v2/*", methods=("POST",)),
                ),
            ),
            FunctionSpec(
                site="app",
                name="hello",
                version=1,
                id="fnv-2",
                sha256="2" * 64,
                code="export default {}",
                routes=(FunctionRouteSpec(host="www.example.com", path="/hello"),),
            ),
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(SNAPSHOTS))
def test_golden(name: str) -> None:
    files = render(SNAPSHOTS[name], LOCAL, LocalHealth())
    folder = GOLDEN / name
    if os.environ.get("EDGEPLANE_UPDATE_GOLDEN"):
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        for rel, content in files.items():
            (folder / rel).write_bytes(content)
    expected = {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
    assert sorted(files) == sorted(expected)
    for rel, content in files.items():
        assert content.decode() == expected[rel].decode(), rel


def test_render_is_deterministic_and_ignores_revision() -> None:
    config = SNAPSHOTS["full"]
    first = render_release(config, LOCAL, LocalHealth())
    again = render_release(config.model_copy(update={"revision": 99}), LOCAL, LocalHealth())
    assert first == again
    down = render_release(config, LOCAL, LocalHealth(down=frozenset({("lb.p1.7", "a")})))
    assert down.marker != first.marker
    assert first.marker.encode() in first.files["status.conf"]


def _site_rules(rules: tuple[CacheRuleSpec, ...]) -> dict[str, str]:
    """The site's combination map (key -> rule), or its one rule under the key "s"."""
    text = compile_rules([("s", rules, ProxyProfile(1000, 5000, 2))]).maps
    gate = text[text.index("$rule {") :]
    value = gate[: gate.index("}")].splitlines()[2].split()[1].rstrip(";")
    if not value.startswith("$"):
        return {"s": value.strip('"')}
    combo = text[text.index(f"{value} {{") :]
    combo = combo[: combo.index("}")]
    out = {}
    for line in combo.splitlines()[2:]:
        key, value = line.strip().rstrip(";").split(" ")
        out[key.strip('"')] = value.strip('"')
    return out


def test_first_match_wins_in_combination_map() -> None:
    combo = _site_rules(
        (
            rule("1", "/static/img/*"),
            rule("2", "/static/*"),
            rule("3", "*.css"),
            rule("4", "/robots.txt"),
        )
    )
    # keys: site|exact|2 segments|1 segment|extension (the kinds some rule uses)
    assert combo["s|||2|3"] == "s#2"  # /static/a.css
    assert combo["s||1|2|3"] == "s#1"  # /static/img/a.css
    assert combo["s||||3"] == "s#3"  # /img/a.css
    assert combo["s|4|||"] == "s#4"  # /robots.txt
    assert "s||||" not in combo  # nothing matches: the site's default location


def test_catch_all_shadows_later_rules() -> None:
    combo = _site_rules((rule("1", "*.css"), rule("2", "/*"), rule("3", "/late/*")))
    # /late/* can never match: not compiled, so the key has the extension only (site|ext)
    assert combo == {"s|": "s#2", "s|1": "s#1"}
    # a catch-all alone: the rule is known from the site, nothing is looked up
    assert _site_rules((rule("1", "/*"), rule("2", "*.css"))) == {"s": "s#1"}


def test_rule_maps_only_for_what_the_rules_use() -> None:
    """A request pays no regex for a kind of pattern no rule uses, and nothing of the rules
    when no site has any (the cache key stays the same string)."""
    proxy = ProxyProfile(1000, 5000, 2)
    exact_only = compile_rules([("s", (rule("1", "/robots.txt"),), proxy), ("t", (), proxy)])
    assert "~" not in exact_only.maps  # no regex map at all
    assert 'map "$site_id|$r_exact" $rule_exact' in exact_only.maps
    # each site evaluates the kinds it has, whatever the other sites have
    two = compile_rules(
        [("s", (rule("1", "/robots.txt"),), proxy), ("u", (rule("1", "*.css"),), proxy)]
    )
    assert '"s" $rule_exact;' in two.maps and '"u" $rule_ext;' in two.maps
    assert 'map "$site_id|$r_exact" $rule_exact' in two.maps
    assert 'map "$site_id|$r_ext" $rule_ext' in two.maps
    assert '"t"' not in exact_only.maps.split("$rule {")[1].split("}")[0]  # t: "" at once
    assert exact_only.cache_key == CACHE_KEY_PLAIN  # its rule changes no part of the key
    css = rule("1", "*.css", cache_key=CacheKeySpec(query="none"))
    keyed = compile_rules([("s", (css,), proxy), ("t", (), proxy)])
    assert keyed.cache_key == CACHE_KEY_VARIABLE  # per site: only s builds it from the rules
    key_map = keyed.maps.split(f"map $site_id {CACHE_KEY_VARIABLE} {{")[1].split("}")[0]
    assert f"default {CACHE_KEY_PLAIN};" in key_map and f'"s" {CACHE_KEY_RULES};' in key_map
    assert '"t"' not in key_map
    ext = compile_rules([("s", (rule("1", "*.css"),), proxy)])
    assert "$ext {" in ext.maps and "$seg1" not in ext.maps and "$seg2" not in ext.maps
    none = compile_rules([("s", (), proxy)])
    assert "$rule" not in none.maps.replace("$rule_loc", "")
    assert none.cache_key == CACHE_KEY_PLAIN == '"$site_id|$host|$uri|$args|"'


def test_unsupported_pattern_is_refused() -> None:
    with pytest.raises(ValueError, match="deeper than two segments"):
        compile_rules([("s", (rule("1", "/a/b/c/*"),), ProxyProfile(1, 1, 1))])


def test_key_parts_per_rule() -> None:
    maps = compile_rules(
        [("s", SNAPSHOTS["full"].sites[0].cache_rules, ProxyProfile(1, 1, 1))]
    ).maps
    assert '"s#2" "v=${arg_v}&lang=${arg_lang}";' in maps
    assert '"s#5" "";' in maps  # query none and no host
    assert '"s#5" "h:x-lang=${http_x_lang}|c:theme=${cookie_theme}";' in maps


def test_ip_hash_backup_rendered_down_until_primaries_are_out() -> None:
    pool = SNAPSHOTS["full"].pools[0]
    normal = render_upstream(pool, LocalHealth())
    assert "backup" not in normal
    assert "10.0.0.1:8003 weight=1 max_fails=1 fail_timeout=10s down;" in normal
    out = render_upstream(pool, LocalHealth(down=frozenset({(pool.id, "a"), (pool.id, "b")})))
    assert "10.0.0.1:8003 weight=1 max_fails=1 fail_timeout=10s;" in out
    assert out.count(" down;") == 2


def test_a_waiting_backend_is_rendered_down_and_read_back_out_of_rotation() -> None:
    """The health checker's decision puts a new wait_for_check backend out of rotation before
    any check (nginx's ``down``); ``in_rotation`` reads a rendered upstreams.conf back as
    nginx serves it: what the agent seeds its checks from after a restart."""
    import asyncio

    from edgeplane.node.agent.health import HealthChecker

    pool = PoolSpec(
        id="lb.p1.w",
        algorithm="least_conn",
        backends=(be("a", 8001), be("b", 8002, wait_for_check=True),
                  be("c", 8003, backup=True), be("d", 8004, state="draining")),
        health_check=HealthCheckSpec(),
    )  # fmt: skip

    async def decide() -> frozenset[tuple[str, str]]:
        checker = HealthChecker()
        checker.update([pool])
        try:
            return checker.decision()[0]
        finally:
            await checker.close()  # before any check ran

    down = asyncio.run(decide())
    assert down == frozenset({(pool.id, "b")})
    text = render_upstream(pool, LocalHealth(down=down))
    assert "server 10.0.0.1:8002 weight=1 max_fails=1 fail_timeout=10s down;  # b\n" in text
    assert in_rotation(text) == {(pool.id, "a"), (pool.id, "c")}
    assert in_rotation(render_upstream(pool, LocalHealth())) == {
        (pool.id, k) for k in "abc"}  # fmt: skip

    # A whole release: every pool, the origin hops' upstreams (no backends) beside them, an
    # ip_hash backup rendered down while the primaries serve.
    files = render(SNAPSHOTS["full"], LOCAL, LocalHealth(down=frozenset({("lb.p1.7", "a")})))
    assert b"origin hop" in files["upstreams.conf"]
    assert in_rotation(files["upstreams.conf"].decode()) == {
        ("lb.p1.7", "b"), ("origin.p2", "x")}  # fmt: skip
    assert in_rotation("") == frozenset()


def test_cert_names() -> None:
    assert name_matches("*.shop.test", "www.shop.test")
    assert not name_matches("*.shop.test", "shop.test")
    assert not name_matches("*.shop.test", "a.b.shop.test")
    assert name_matches("Shop.test", "shop.TEST")


@pytest.mark.parametrize(
    ("key", "task", "expected"),
    [
        ("p1|a.test|/x|q=1|", PurgeTask(id="1", site="p1", paths=["/x"]), True),
        ("p1|a.test|/x/y||", PurgeTask(id="1", site="p1", paths=["/x"]), False),
        ("p1||/static/a.css||", PurgeTask(id="1", site="p1", prefixes=["/static/"]), True),
        ("p1|a.test|/staticx||", PurgeTask(id="1", site="p1", prefixes=["/static/"]), False),
        ("p10|a.test|/x||", PurgeTask(id="1", site="p1", purge_all=True), False),
        ("p1|a.test|/anything||", PurgeTask(id="1", site="p1", purge_all=True), True),
    ],
)
def test_purge_matching(key: str, task: PurgeTask, expected: bool) -> None:
    assert key_matches(key, task) is expected


def test_purge_cache_files(tmp_path: Path) -> None:
    def cached(name: str, key: str) -> Path:
        path = tmp_path / name[-1] / name[-3:-1] / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x05\x00binary-header\nKEY: " + key.encode() + b"\nHTTP/1.1 200 OK\r\n")
        return path

    a = cached("aaa1", "p1|h|/static/a||")
    b = cached("bbb2", "p1|h|/other||")
    temp = cached("ccc3.0000000001", "p1|h|/static/b||")  # being written: left alone
    removed = purge_cache(tmp_path, PurgeTask(id="1", site="p1", prefixes=["/static/"]))
    assert removed == 1 and not a.exists() and b.exists() and temp.exists()


def test_in_place_location_names_a_pool_only_where_that_is_cheaper() -> None:
    """``location /`` names the pool of most sites of its profile when the other sites' jumps
    cost less than a variable ``proxy_pass`` for all; else it takes the pool by variable."""
    pools = {p: PoolSpec(id=p, algorithm="round_robin", backends=(be(p, 80),)) for p in "abc"}

    def inline(*site_pools: str) -> str | None:
        sites = [SiteSpec(id=f"s{i}", domains=(f"s{i}.test",), pool=p)
                 for i, p in enumerate(site_pools)]  # fmt: skip
        chosen = dominant_location(sites, pools)
        assert chosen is not None
        return chosen.pool.id if chosen.pool else None

    assert inline("a") == "a"
    assert inline("a", "a", "a", "b") == "a"  # one jump (6.5) < 4 variable passes (11.6)
    assert inline("a", "b") is None
    assert inline("a", "a", "b", "c") is None
    assert dominant_location([], pools) is None


def test_jump_map_per_site_and_rule() -> None:
    pools = {p: PoolSpec(id=p, algorithm="round_robin", backends=(be(p, 80),)) for p in "ab"}
    sites = [
        SiteSpec(id="plain", domains=("plain.test",), pool="a"),
        SiteSpec(id="other", domains=("other.test",), pool="b"),
        SiteSpec(id="other2", domains=("other2.test",), pool="b"),
        SiteSpec(id="ruled", domains=("ruled.test",), pool="a",
                 cache_rules=(rule("1", "/api/*", bypass=True), rule("2", "/*", ttl=5))),
        SiteSpec(id="bundled", domains=("bundled.test",), pool="a"),
        SiteSpec(id="none", domains=("none.test",), pool=None),
    ]  # fmt: skip
    proxy = ProxyProfile.of(pools["a"])
    compiled = compile_rules([(s.id, s.cache_rules, proxy) for s in sites if s.pool])
    chosen = dominant_location(sites, pools)
    assert chosen is not None and chosen.pool is None  # a: 2 sites, b: 2
    text = jump_maps(chosen, sites, pools, compiled, {"bundled"}, Shards())
    site_map = text.split("$edge_jump {")[1].split("}")[0]
    assert '"plain" 0;' in site_map and '"other" 0;' in site_map
    assert '"ruled" $rule_jump;' in site_map
    assert "bundled" not in site_map and "none" not in site_map  # default 1: they jump
    rule_map = text.split("$rule_jump {")[1].split("}")[0]
    assert "default 1;" in rule_map and '"ruled#1"' not in rule_map  # bypass: jumps
    assert '"ruled#2"' not in rule_map  # its catch-all has another TTL: jumps


def test_headers_policy_costs_only_what_sites_use() -> None:
    """Default policies: no $site_id lookup and nothing for the headers left to the origin;
    a site with its own: per-site maps for the headers whose rules differ."""
    plain = render(SNAPSHOTS["one_origin"], LOCAL, LocalHealth())
    headers = plain["headers.conf"].decode()
    assert "Content-Security-Policy" not in headers and "Permissions-Policy" not in headers
    assert "$hp_x_frame_options_mode" not in plain["sites.map"].decode()
    assert "proxy_hide_header X-Powered-By;" in headers
    full = render(SNAPSHOTS["full"], LOCAL, LocalHealth())
    maps = full["sites.map"].decode()
    assert "map $site_id $hp_x_frame_options_mode" in maps
    assert "map $site_id $hp_permissions_policy_mode" not in maps  # the same rule everywhere
    assert "map $site_id $hp_keep_leaking" in maps
    for name in ("X-Frame-Options", "Content-Security-Policy", "X-Powered-By"):
        assert full["headers.conf"].decode().count(f"proxy_hide_header {name};") == 1
