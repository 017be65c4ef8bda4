"""The WAF's rendering (pure) and the agent's reading of ModSecurity's audit log lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeplane.node.agent.waf_log import SiteResolver, WafCounts, WafMatches, reduce
from edgeplane.node.nginx.local import LocalHealth, NodeLocal, WafEngine
from edgeplane.node.nginx.render import render
from edgeplane.node.nginx.render_waf import profile_name, profile_rules
from edgeplane.protocol.config import (
    BackendSpec,
    CacheRuleSpec,
    EdgeConfig,
    NodeSpec,
    PoolSpec,
    SiteSpec,
    WafExclusionSpec,
    WafSpec,
)

ENGINE = WafEngine(("/m/ndk.so", "/m/modsec.so"), "/crs/rules")
LOCAL = NodeLocal(prefix=Path("/srv/edge/nginx"), node_name="edge-1", http_port=8080,
                  user="www-data", waf=ENGINE)  # fmt: skip
POOL = PoolSpec(id="origin.p", algorithm="round_robin",
                backends=(BackendSpec(key="a", host="10.0.0.1", port=80),))  # fmt: skip
EXCLUDE = WafExclusionSpec(rules=("942100", "941000-941999"), path="/api/search")


def config(*sites: SiteSpec) -> EdgeConfig:
    return EdgeConfig(revision=1, node=NodeSpec(id="n", name="edge-1", region="r"),
                      sites=sites, pools=(POOL,))  # fmt: skip


def site(name: str, waf: WafSpec | None = None) -> SiteSpec:
    return SiteSpec(id=name, domains=(f"{name}.test",), pool=POOL.id, waf=waf)


def test_without_a_waf_site_nothing_of_modsecurity_is_rendered() -> None:
    plain = config(site("a"), site("b"))
    with_module = render(plain, LOCAL, LocalHealth())
    without = render(plain, NodeLocal(**{**LOCAL.__dict__, "waf": None}), LocalHealth())
    assert with_module == without
    assert not any(b"modsecurity" in content for content in with_module.values())


def test_waf_sites_get_locations_of_their_profile_and_are_never_served_in_place() -> None:
    files = render(
        config(site("a"), site("b"), site("c", WafSpec(mode="block", exclusions=(EXCLUDE,)))),
        LOCAL,
        LocalHealth(),
    )
    text = {k: v.decode() for k, v in files.items()}
    assert text["nginx.conf"].count("load_module") == 2
    assert "load_module /m/modsec.so;" in text["nginx.conf"]
    assert "modsecurity off;" in text["base.conf"]
    assert "modsecurity_transaction_id $request_id;" in text["base.conf"]
    assert "Include /crs/rules/REQUEST-*.conf" in text["base.conf"]
    assert "RESPONSE-" not in text["base.conf"]
    name = profile_name(WafSpec(mode="block", exclusions=(EXCLUDE,)))
    assert name.startswith("wb1t5x")
    assert f"__{name} {{" in text["locations.conf"]
    assert f"location @waf_blocked_{name}" in text["locations.conf"]
    assert "recursive_error_pages on;" in text["servers.conf"]
    # c jumps (the default of $edge_jump), a and b are served in place
    assert '"a" 0;' in text["sites.map"] and '"c" 0;' not in text["sites.map"]
    assert f"__{name};" in text["sites.map"]  # c's default location


def _block(text: str, head: str) -> str:
    """The block that starts with the line ``head {`` (to its closing brace at that indent)."""
    start = text.index(head + " {")
    indent = head[: len(head) - len(head.lstrip())]
    return text[start : text.index(f"\n{indent}}}", start)]


def test_with_the_origin_hop_a_waf_site_is_inspected_in_its_hop_not_its_caching_location() -> None:
    spec = WafSpec(mode="block")
    rules = (
        CacheRuleSpec(id="api", pattern="/api/*", ttl=0, bypass=True),
        CacheRuleSpec(id="all", pattern="/*", ttl=600),  # the rule's TTL over the origin's
    )
    shop = SiteSpec(id="shop", domains=("shop.test",), pool=POOL.id, waf=spec, cache_rules=rules)
    local = NodeLocal(**{**LOCAL.__dict__, "js_module": "/m/njs.so"})
    text = {k: v.decode() for k, v in render(config(site("a"), shop), local, LocalHealth()).items()}
    name = profile_name(spec)
    cached = _block(text["locations.conf"], f"location @t600_override_sie__c2000r30000n2__{name}")
    assert "modsecurity" not in cached and "proxy_pass http://hop_" in cached
    assert "proxy_set_header X-Edge-Request-Id $request_id;" in cached  # the client's id
    assert "add_header X-Request-Id $edge_request_id always;" in cached  # none on a hit
    assert 'map $upstream_cache_status $edge_request_id {\n    HIT "";' in text["base.conf"]
    assert "proxy_no_cache $upstream_http_x_edge_waf;" in cached  # a refusal is never stored
    assert "proxy_hide_header X-Edge-Waf;" in cached
    assert "proxy_cache_valid 200 203 301 302 600s;" in cached and " 403" not in cached
    # the bypass rule's location does not go through the hop: it inspects in place, as
    # without njs, with its own refusal
    bypass = _block(text["locations.conf"], f"location @bypass__c2000r30000n2__{name}")
    assert "modsecurity on;" in bypass and f"error_page 400 403 @waf_blocked_{name};" in bypass
    front_blocked = _block(text["locations.conf"], f"location @waf_blocked_{name}")
    assert "add_header Cache-Control no-store always;" in front_blocked
    # two hops: the plain profile's (nothing of ModSecurity) and the WAF profile's
    servers = text["servers.conf"]
    hops = servers.split("# the origin hop of proxy profile ")[1:]
    assert [h.split("\n")[0] for h in hops] == ["c2000r30000n2", f"c2000r30000n2__{name}"]
    assert "modsecurity" not in hops[0]
    waf_hop = hops[1]
    assert "modsecurity_transaction_id $http_x_edge_request_id;" in waf_hop
    assert "real_ip_header X-Real-IP;" in waf_hop
    route = _block(waf_hop, "    location /")
    assert "modsecurity" not in route and "error_page 418 = @waf;" in route
    for loc in ("@waf", "@expired"):
        inspect = _block(waf_hop, f"    location {loc}")
        assert "modsecurity on;" in inspect and "recursive_error_pages off;" in inspect
        assert 'proxy_set_header X-Edge-Request-Id "";' in inspect  # not to the origin
        assert "js_header_filter edge_cache.stored;" in inspect  # invalidation, freshness
    assert "error_page 400 403 @waf_blocked;" in _block(waf_hop, "    location @waf")
    assert "error_page 400 403 $hop_refusal;" in _block(waf_hop, "    location @expired")
    refusal = _block(waf_hop, "    location @waf_blocked")
    assert "add_header X-Edge-Waf refused always;" in refusal
    assert "add_header X-Edge-CC no-store always;" in refusal
    assert "proxy_set_header X-Edge-Request-Id $http_x_edge_request_id;" in refusal
    assert "map $upstream_status $hop_refusal" in servers
    assert "location = /waf-blocked" in text["status.conf"]


def test_profile_rules() -> None:
    rules = profile_rules(
        WafSpec(
            mode="detect",
            paranoia_level=3,
            anomaly_threshold=12,
            exclusions=(EXCLUDE, WafExclusionSpec(rules=("920350",))),
        )
    )
    assert rules.splitlines() == [
        "SecRuleEngine DetectionOnly",
        'SecAction "id:10000,phase:1,pass,nolog,t:none,setvar:tx.paranoia_level=3,'
        'setvar:tx.inbound_anomaly_score_threshold=12"',
        'SecRule REQUEST_FILENAME "@beginsWith /api/search" "id:10001,phase:1,pass,nolog,'
        't:none,ctl:ruleRemoveById=942100,ctl:ruleRemoveById=941000-941999"',
        'SecAction "id:10002,phase:1,pass,nolog,t:none,ctl:ruleRemoveById=920350"',
    ]


def test_a_waf_site_on_a_node_without_modsecurity_fails_the_render() -> None:
    local = NodeLocal(prefix=Path("/srv/edge/nginx"), node_name="e", http_port=8080)
    with pytest.raises(ValueError, match="no ModSecurity module"):
        render(config(site("c", WafSpec(mode="block"))), local, LocalHealth())


def audit(host: str, engine: str = "Enabled", code: int = 403, *rules: tuple[str, str]) -> bytes:
    messages = [{"message": f"m{r}", "details": {"ruleId": r, "data": d, "severity": "2"}}
                for r, d in rules]  # fmt: skip
    doc = {"transaction": {
        "client_ip": "192.0.2.9", "time_stamp": "Sat Dec  5 15:49:11 2026", "unique_id": "abc",
        "request": {"method": "GET", "uri": "/x?q=1", "headers": {"Host": host}},
        "response": {"http_code": code}, "producer": {"secrules_engine": engine},
        "messages": messages}}  # fmt: skip
    return json.dumps(doc).encode()


def test_audit_lines_become_matches_counted_per_site_rule_and_action() -> None:
    sites = SiteResolver([SiteSpec(id="shop", domains=("shop.test", "*.shop.test"), pool=None)])
    assert sites.site("WWW.Shop.test:8443") == "shop" and sites.site("other.test") is None
    hits = (("942100", "x" * 500), ("949110", ""), ("10900", "8"))
    blocked = reduce(audit("a.shop.test", "Enabled", 403, *hits), sites)
    assert blocked is not None and blocked.action == "blocked" and blocked.anomaly_score == 8
    assert [h.rule for h in blocked.rules] == [942100, 949110]  # the score line is not a match
    assert blocked.rules[0].data is not None and len(blocked.rules[0].data) == 200
    detected = reduce(audit("shop.test", "DetectionOnly", 200, *hits), sites)
    assert detected is not None and detected.action == "detected"
    below = reduce(audit("shop.test", "Enabled", 200, ("942100", "")), sites)
    assert below is not None and below.action == "detected"
    assert reduce(audit("other.test", "Enabled", 403, *hits), sites) is None
    assert reduce(b"not json \xff", sites) is None
    counts = WafCounts()
    matches = WafMatches(counts, limit=2)
    matches.set_sites([SiteSpec(id="shop", domains=("shop.test",), pool=None)])
    lines = [audit("shop.test", "Enabled", 403, *hits)] * 3 + [b"{}"]
    assert len(matches.add_lines(lines)) == 3 and matches.skipped == 1
    assert dict(counts.snapshot())[("shop", "942100", "blocked")] == 3
    report = matches.take()
    assert report is not None and len(report.matches) == 2 and report.dropped == 1
    matches.restore(report)
    assert len(matches) == 2 and matches.take() is not None
