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
