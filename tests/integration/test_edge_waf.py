"""The WAF on a real nginx with ModSecurity and the OWASP CRS, in front of a real origin.

One nginx for the module: it starts without any WAF site (no module loaded), then serves
sites with the WAF off, in detect mode, in block mode at paranoia 1 and 2, with a raised
threshold and with an exclusion. The CRS's own attack payloads (``tests/fixtures/waf``) are
refused in block mode and pass, logged, in detect mode; a benign corpus of 1,000 real-looking
requests passes block mode untouched; the agent's reader turns the audit log into matches
(the request id the client saw, the rule ids) and counts them in the node's metrics.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from nginx_edge import Edge, backend, edge_config, make_base, pool, wait_for
from origins import Origin, start_origin
from processes import free_port
from prometheus_client import generate_latest
from waf_corpus import Req, Sender, attacks, benign, by_status

from edgeplane.node.agent.analytics import LogTailer
from edgeplane.node.agent.metrics import AgentMetrics
from edgeplane.node.agent.waf_log import WafMatches, audit_log_path
from edgeplane.node.nginx.engine import NginxEngine
from edgeplane.node.nginx.local import NodeLocal, find_js_module, find_waf_engine
from edgeplane.protocol.config import (
    CacheKeySpec,
    CacheRuleSpec,
    EdgeConfig,
    SiteSpec,
    WafExclusionSpec,
    WafSpec,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(find_waf_engine() is None, reason="ModSecurity / CRS not installed"),
]

SQLI = Req("sqli", "GET", "/api/search?q=1%27%20or%20%271%27%3D%271", {"Accept": "*/*"})
# 942430 (paranoia level 2, WARNING: 3 points): twelve special characters in an argument
PL2_ONLY = Req("pl2", "GET", "/a?x=a-b-c-d-e-f-g-h-i-j-k-l-m-n", {"Accept": "*/*"})
SITES = {
    "off.test": None,
    "detect.test": WafSpec(mode="detect"),
    "block.test": WafSpec(mode="block"),
    "pl2.test": WafSpec(mode="block", paranoia_level=2),
    "lenient.test": WafSpec(mode="block", anomaly_threshold=10),
    "excl.test": WafSpec(
        mode="block",
        exclusions=(WafExclusionSpec(rules=("942100",), path="/api/search"),),
    ),
}


# Block-mode sites whose cache keys ignore the query (so that a payload in the query finds
# what a clean request stored): a rule's own TTL over the origin's word, and the origin's word.
NO_QUERY = CacheKeySpec(query="none")
CACHED = {
    "cached.test": CacheRuleSpec(id="all", pattern="/*", ttl=3600, cache_key=NO_QUERY),
    "honour.test": CacheRuleSpec(
        id="all", pattern="/*", ttl=60, origin_cache_control="honour", cache_key=NO_QUERY
    ),
}


def config(origin: Origin, *, waf: bool = True) -> EdgeConfig:
    p = pool("origin.w", backend(origin))
    sites = [
        SiteSpec(id=host.split(".")[0], domains=(host,), pool=p.id, waf=spec if waf else None)
        for host, spec in SITES.items()
    ]
    sites += [
        SiteSpec(id=host.split(".")[0], domains=(host,), pool=p.id, cache_rules=(rule,),
                 waf=WafSpec(mode="block") if waf else None)
        for host, rule in CACHED.items()
    ]  # fmt: skip
    return edge_config(sites, [p])


def modsecurity_loaded(pid: int) -> bool:
    return "ngx_http_modsecurity_module" in Path(f"/proc/{pid}/maps").read_text()


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    o = start_origin("waf-origin")
    yield o
    o.terminate()


@pytest.fixture(scope="module")
def edge(origin: Origin) -> Iterator[Edge]:
    base = make_base()
    local = NodeLocal(
        prefix=base / "nginx",
        node_name="edge-w",
        http_port=free_port(),
        waf=find_waf_engine(),
        js_module=find_js_module(),  # as on an edge node: misses go through the origin hop
    )
    edge = Edge(NginxEngine(local), local, base)
    try:
        # Off everywhere: nothing of ModSecurity in the config nor in nginx's memory.
        edge.apply(config(origin, waf=False))
        release = (local.prefix / "current").resolve()
        assert "modsecurity" not in (release / "nginx.conf").read_text()
        assert "modsecurity" not in (release / "base.conf").read_text()
        pid = int((local.prefix / "nginx.pid").read_text())
        assert not modsecurity_loaded(pid)
        assert "x-request-id" not in edge.get("block.test", SQLI.uri).headers
        edge.apply(config(origin))
        yield edge
    finally:
        edge.close()


@pytest.fixture(scope="module")
def sender(edge: Edge) -> Sender:
    return Sender(edge.local.http_port)


def audit_lines(edge: Edge) -> list[dict]:  # type: ignore[type-arg]
    path = audit_log_path(edge.local.prefix / "logs" / "access.json")
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_bytes().decode("utf-8", "replace").splitlines()]


def logged(edge: Edge, request_ids: set[str], timeout: float = 10.0) -> dict[str, dict]:  # type: ignore[type-arg]
    """The audit log's entries of ``request_ids`` (all of them, or a failure)."""
    found: dict[str, dict] = {}  # type: ignore[type-arg]

    def all_there() -> bool:
        found.clear()
        for entry in audit_lines(edge):
            tx = entry["transaction"]
            if tx["unique_id"] in request_ids:
                found[tx["unique_id"]] = tx
        return len(found) == len(request_ids)

    assert wait_for(all_there, timeout), f"{len(request_ids) - len(found)} not in the audit log"
    return found


def test_the_crs_attack_corpus_is_refused_in_block_mode_and_logged_in_detect_mode(
    edge: Edge, sender: Sender
) -> None:
    corpus = attacks()
    assert len(corpus) >= 100
    assert {"sqli", "xss", "path-traversal", "command-injection"} <= {
        json.loads(Path(__file__).parent.parent.joinpath(
            "fixtures", "waf", "crs_attacks.json").read_text())["attacks"][i]["kind"]
        for i in range(len(corpus))
    }  # fmt: skip
    blocked = sender.many("block.test", corpus)
    assert by_status(blocked, lambda s: s != 403) == []
    for _, _, headers, body in blocked[:5]:
        assert headers["x-request-id"].encode() in body
        assert b"web application firewall" in body
    detected = sender.many("detect.test", corpus)
    assert by_status(detected, lambda s: s != 200) == []
    ids = {headers["x-request-id"] for _, _, headers, _ in detected}
    assert len(ids) == len(corpus)
    entries = logged(edge, ids)
    expected = {headers["x-request-id"]: req.name for req, _, headers, _ in detected}
    for request_id, tx in entries.items():
        rule = expected[request_id].split("-")[0]  # the test id names its rule
        assert rule in {m["details"]["ruleId"] for m in tx["messages"]}, expected[request_id]
        assert tx["producer"]["secrules_engine"] == "DetectionOnly"
    # refused requests are logged too, under the request id the client saw
    refused = logged(edge, {h["x-request-id"] for _, _, h, _ in blocked[:20]})
    assert all(tx["response"]["http_code"] == 403 for tx in refused.values())


def test_a_benign_corpus_passes_block_mode_at_paranoia_1(edge: Edge, sender: Sender) -> None:
    corpus = benign(1000)
    assert len({r.method for r in corpus}) >= 3 and sum(r.body is not None for r in corpus) > 200
    results = sender.many("block.test", corpus)
    assert by_status(results, lambda s: s != 200) == []
    assert all("x-request-id" in h for _, _, h, _ in results)


def test_paranoia_threshold_and_exclusions_change_what_is_refused(
    edge: Edge, sender: Sender
) -> None:
    before = len(audit_lines(edge))
    status = {host: sender.one(host, SQLI)[0] for host in SITES}
    assert status == {
        "off.test": 200,  # no inspection at all
        "detect.test": 200,
        "block.test": 403,
        "pl2.test": 403,
        "lenient.test": 200,  # 942100 alone scores 5, below 10
        "excl.test": 200,  # 942100 is off under /api/search
    }
    other_path = Req("sqli-other", "GET", SQLI.uri.replace("/api/search", "/api/users"))
    assert sender.one("excl.test", other_path)[0] == 403  # only under the path
    xss = Req("xss", "GET", "/api/search?q=%3Cscript%3Ealert(1)%3C/script%3E")
    assert sender.one("excl.test", xss)[0] == 403  # only that rule
    assert sender.one("lenient.test", xss)[0] == 403  # scores 15: above 10
    # paranoia 2 adds rules: 942430 (12 special characters, 3 points) and 920320 (no
    # User-Agent, 2 points) reach 5 there; at paranoia 1 neither runs
    assert sender.one("block.test", PL2_ONLY)[0] == 200
    code, headers, _ = sender.one("pl2.test", PL2_ONLY)
    assert code == 403
    entry = logged(edge, {headers["x-request-id"]})[headers["x-request-id"]]
    assert {"942430", "920320"} <= {m["details"]["ruleId"] for m in entry["messages"]}
    # a site with the WAF off never reaches ModSecurity: no request id, nothing logged
    code, headers, _ = sender.one("off.test", SQLI)
    assert code == 200 and "x-request-id" not in headers
    hosts = {e["transaction"]["request"]["headers"].get("Host") for e in audit_lines(edge)[before:]}
    assert "off.test" not in hosts and "block.test" in hosts


def test_the_agent_counts_and_reports_matches_with_rule_ids(
    edge: Edge, sender: Sender, origin: Origin
) -> None:
    metrics = AgentMetrics()
    matches = WafMatches(metrics.waf)
    matches.set_sites(config(origin).sites)
    tailer = LogTailer(audit_log_path(edge.local.prefix / "logs" / "access.json"), from_end=True)
    tailer.read_lines()
    blocked = sender.one("block.test", SQLI)
    detected = sender.one("detect.test", SQLI)
    passed = sender.one("block.test", Req("ok", "GET", "/products/1", {"Accept": "*/*"}))
    ids = {blocked[1]["x-request-id"]: "blocked", detected[1]["x-request-id"]: "detected"}
    seen: dict[str, object] = {}

    def read() -> bool:
        for m in matches.read(tailer):
            seen[m.request_id] = m
        return set(ids) <= set(seen)

    assert wait_for(read, 10)
    assert passed[1]["x-request-id"] not in seen  # no rule matched it: not logged
    for request_id, action in ids.items():
        m = seen[request_id]
        assert m.action == action and m.method == "GET"  # type: ignore[attr-defined]
        assert 942100 in {h.rule for h in m.rules}  # type: ignore[attr-defined]
        assert m.anomaly_score == 5 and m.uri == SQLI.uri  # type: ignore[attr-defined]
    report = matches.take()
    assert report is not None and set(ids) <= {m.request_id for m in report.matches}
    text = generate_latest(metrics.registry).decode()
    assert 'edgeplane_waf_matches_total{action="blocked",project="block",rule="942100"}' in text
    assert 'edgeplane_waf_matches_total{action="detected",project="detect",rule="942100"}' in text
    tailer.close()


def test_misses_are_inspected_in_the_hop_with_the_client_s_address_and_request_id(
    edge: Edge,
) -> None:
    """On a node with the origin hop, a WAF site's caching location inspects nothing: its
    misses are inspected in the hop of its WAF profile, as the client sent them."""
    release = (edge.local.prefix / "current").resolve()
    assert "modsecurity on" not in (release / "locations.conf").read_text()  # no bypass rule
    client = edge.client("127.0.0.2")
    r = edge.get("detect.test", SQLI.uri, client=client)
    assert r.status_code == 200 and r.headers["x-cache-status"] == "MISS"
    tx = logged(edge, {r.headers["x-request-id"]})[r.headers["x-request-id"]]
    assert tx["client_ip"] == "127.0.0.2"  # not the hop's socket
    assert tx["host_ip"].startswith("unix:") and tx["host_ip"].endswith(".hop")  # the hop
    assert tx["request"]["uri"] == SQLI.uri and tx["request"]["headers"]["Host"] == "detect.test"
    # a body is inspected there too (the hop's proxy_request_buffering off notwithstanding)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    r = client.post("/login", headers={"Host": "cached.test", **form}, content=b"user=1' or '1'='1")
    assert r.status_code == 403 and r.headers["cache-control"] == "no-store"
    assert f"request id: {r.headers['x-request-id']}" in r.text
    tx = logged(edge, {r.headers["x-request-id"]})[r.headers["x-request-id"]]
    assert tx["client_ip"] == "127.0.0.2" and tx["response"]["http_code"] == 403
    assert tx["request"]["method"] == "POST"


def test_cached_hits_are_served_uninspected_and_refusals_are_never_stored(
    edge: Edge, origin: Origin
) -> None:
    c = edge.client()
    attack = "?q=1%27%20or%20%271%27%3D%271"
    # the rule's TTL (an hour, over the origin's word): a clean request stores the page...
    first = edge.get("cached.test", "/page?clean=1", client=c)
    assert first.status_code == 200 and first.headers["x-cache-status"] == "MISS"
    # ...and a payload in the query, which the key ignores, is answered from the cache: it
    # never reaches the origin, nor the WAF (documented: detect mode does not see it either)
    hit = edge.get("cached.test", "/page" + attack, client=c)
    assert hit.status_code == 200 and hit.headers["x-cache-status"] == "HIT"
    assert hit.text == first.text and "x-request-id" not in hit.headers  # nothing inspected it
    # a refused miss is not stored under its key, whatever the rule's TTL says
    refused = edge.get("cached.test", "/other" + attack, client=c)
    assert refused.status_code == 403 and refused.headers["x-cache-status"] == "MISS"
    assert "web application firewall" in refused.text
    assert refused.headers["cache-control"] == "no-store" and "x-edge-waf" not in refused.headers
    marker = edge.get("detect.test", SQLI.uri + "&marker=1", client=c)  # logged after both
    entries = logged(edge, {marker.headers["x-request-id"], refused.headers["x-request-id"]})
    uris = {e["transaction"]["request"]["uri"] for e in audit_lines(edge)}
    assert "/page" + attack not in uris and "/other" + attack in uris
    assert entries[refused.headers["x-request-id"]]["response"]["http_code"] == 403
    clean = edge.get("cached.test", "/other?clean=1", client=c)
    assert clean.status_code == 200 and clean.headers["x-cache-status"] == "MISS"
    assert clean.text.startswith("waf-origin ")
    assert edge.get("cached.test", "/other", client=c).headers["x-cache-status"] == "HIT"
    # an unsafe method passes the hop's WAF and invalidates what it changes
    posted = c.post("/page", headers={"Host": "cached.test"}, content=b"name=Ada+Lovelace")
    assert posted.status_code == 200 and posted.text.startswith("waf-origin ")
    again = edge.get("cached.test", "/page", client=c)
    assert again.headers["x-cache-status"] == "MISS" and again.text != first.text


def test_an_expired_response_s_revalidation_is_inspected_and_the_origin_s_403_passes(
    edge: Edge,
) -> None:
    """The hop's ``@expired`` (a stored response past its freshness) intercepts the origin's
    errors: its own 403 still reaches the client, and a payload is refused there too."""
    c = edge.client()
    stale = edge.get("honour.test", "/exp?cc=max-age%3D0", client=c)  # stored, already stale
    assert stale.status_code == 200 and stale.headers["x-cache-status"] == "MISS"
    refused = edge.get("honour.test", "/exp?q=1%27%20or%20%271%27%3D%271", client=c)
    assert refused.status_code == 403 and "web application firewall" in refused.text
    assert refused.headers["x-cache-status"] == "EXPIRED"
    assert f"request id: {refused.headers['x-request-id']}" in refused.text
    origin_403 = edge.get("honour.test", "/exp?status=403", client=c)
    assert origin_403.status_code == 403 and origin_403.headers["x-cache-status"] == "EXPIRED"
    assert origin_403.text.startswith("waf-origin ") and "firewall" not in origin_403.text
    assert "x-edge-waf" not in origin_403.headers
