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
from edgeplane.protocol.config import EdgeConfig, SiteSpec, WafExclusionSpec, WafSpec

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


def config(origin: Origin, *, waf: bool = True) -> EdgeConfig:
    p = pool("origin.w", backend(origin))
    sites = [
        SiteSpec(id=host.split(".")[0], domains=(host,), pool=p.id, waf=spec if waf else None)
        for host, spec in SITES.items()
    ]
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
