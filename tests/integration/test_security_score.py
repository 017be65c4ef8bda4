"""Security scores, compliance and the node surface scan end to end through ``edgeplane up``:
a real control plane and its local edge node (nginx, PowerDNS behind dnsdist) on a loopback
address of their own, a real origin, a domain with an internal-CA certificate (stapled) and a
signed zone. The control plane's jobs probe the edge from outside (TLS handshakes per
version, HTTPS and HTTP requests, DNS queries), turning HSTS off lowers the score and fires
the drop alert and the compliance alert (turning it on again resolves both), and the surface
scan finds the node's ports and flags a listener the test opens on the node's address."""

from __future__ import annotations

import json
import random
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from edge_agents import Api, searchable_tmp, wait_for
from origins import Origin, start_origin
from processes import ControlPlane, clean_env, start_up

pytestmark = pytest.mark.integration

INV = "/api/v1/infrastructure"
SEC = "/api/v1/security"
DOMAIN = "shop.test"
YEAR = 31_536_000


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[ControlPlane, Api, Origin, str]]:
    tmp = searchable_tmp("security-score-")
    # A loopback address of its own: the scan's well-known range sees only this node.
    host = f"127.{random.randint(64, 250)}.{random.randint(1, 250)}.{random.randint(2, 250)}"
    env = clean_env(
        EDGEPLANE_DNS_RESOLVERS="127.0.0.1:9",  # the DS at the parent: not told
        EDGEPLANE_INTERNAL_OCSP="1",
        EDGEPLANE_STAPLE_INTERVAL="0.5",
        EDGEPLANE_SECURITY_SCORE_INTERVAL="1",
        EDGEPLANE_SECURITY_SCAN_INTERVAL="2",
        EDGEPLANE_ALERT_INTERVAL="0.5",
    )
    origin = start_origin("security-origin")
    cp = start_up(tmp / "cp", env=env, edge=True, host=host)
    api = Api(cp)
    try:
        wait_for(lambda: [n for n in api.nodes() if n["live"]], 30, "the local node is live")
        yield cp, api, origin, host
    finally:
        api.close()
        cp.stop()
        origin.terminate()
        shutil.rmtree(tmp, ignore_errors=True)


def cdn(api: Api, origin: Origin, hsts: int) -> None:
    api.ok("POST", f"{INV}/cdn", json={
        "origins": [{"url": origin.url}],
        "security": {"force_https": True, "hsts_max_age": hsts, "hsts_include_subdomains": True},
    })  # fmt: skip


def score_of(api: Api) -> dict[str, Any] | None:
    r = api.http.get(f"{SEC}/scores/{DOMAIN}")
    return r.json() if r.status_code == 200 else None


def checks(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in doc["checks"]}


def alerts(api: Api, rule: str, state: str = "firing") -> list[dict[str, Any]]:
    return [a for a in api.ok("GET", "/api/v1/alerts", params={"rule": rule})
            if a["state"] == state]  # fmt: skip


def report_of(api: Api) -> dict[str, dict[str, Any]]:
    doc = api.ok("GET", f"{SEC}/compliance/report")
    return {r["id"]: r for d in doc["domains"] if d["domain"] == DOMAIN for r in d["requirements"]}


def cli(cp: ControlPlane, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "edgeplane", *args],
        env=clean_env(EDGEPLANE_URL=cp.url, EDGEPLANE_TOKEN=cp.token, COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def test_hsts_removed_lowers_the_score_and_fires_the_alerts(
    world: tuple[ControlPlane, Api, Origin, str],
) -> None:
    cp, api, origin, _host = world
    api.ok("POST", f"{INV}/domains", json={"domain": DOMAIN, "dnssec": True})
    cdn(api, origin, YEAR)

    # The background job scores the domain from outside, HSTS and the staple included.
    good = wait_for(
        lambda: (
            (d := score_of(api))
            and checks(d)["hsts"]["result"] == "pass"
            and checks(d)["ocsp_stapling"]["result"] == "pass"
            and d
        ),
        60,
        "a score with HSTS and the staple",
    )
    by = checks(good)
    assert by["tls_protocols"]["evidence"]["offered"] == ["TLSv1.2", "TLSv1.3"]
    assert by["tls_protocols"]["result"] == "pass"
    assert by["certificate"]["result"] == "pass", by["certificate"]
    assert by["certificate"]["evidence"]["issuer"] == "Edgeplane internal intermediate CA"
    assert by["certificate"]["evidence"]["names"] == [DOMAIN]
    assert by["certificate"]["evidence"]["days_left"] > 30
    assert by["hsts"]["evidence"]["max_age"] == YEAR
    assert by["https_redirect"]["result"] == "pass"
    assert by["https_redirect"]["evidence"]["location"].startswith(f"https://{DOMAIN}")
    assert by["security_headers"]["result"] == "pass"
    assert by["caa"]["result"] == "pass"  # the auto-configured CAA records
    assert by["dnssec"]["result"] == "pass" and by["dnssec"]["evidence"]["signed"] is True
    assert by["dnssec"]["evidence"]["ds"] == "unknown"
    assert by["waf"]["evidence"] == {"mode": "off"} and by["waf"]["result"] == "fail"
    for cipher in by["tls_ciphers"]["evidence"]["ciphers"]:
        assert cipher.startswith("ECDHE-")
    assert all(c["node"] == "local" for c in good["checks"])
    assert good["nodes"] == ["local"]
    before = good["score"]
    assert before >= 80, good
    # The policy set once the domain is scored as it is served: evaluated against an earlier
    # score (its certificate or its redirect not yet live) it would fail, and alert, until the
    # next round (the alert's 60-s window).
    policy = api.ok("PUT", f"{SEC}/compliance", json={"requirements": [
        {"id": "https_only"}, {"id": "hsts_min_age"}, {"id": "dnssec_on"},
        {"id": "caa_present"}, {"id": "tls_min_version", "value": "1.2"},
        {"id": "certificate_valid"}, {"id": "waf_blocking"},
    ]})  # fmt: skip
    assert [r["value"] for r in policy["requirements"]][:2] == [None, 15_768_000]

    # The compliance report: every requirement passes but the WAF's, whose alert fires.
    report = wait_for(lambda: (r := report_of(api)) and r.get("hsts_min_age", {}).get(
        "status") == "pass" and r, 30, "the report")  # fmt: skip
    assert {k: v["status"] for k, v in report.items()} == {
        "https_only": "pass", "hsts_min_age": "pass", "dnssec_on": "pass",
        "caa_present": "pass", "tls_min_version": "pass", "certificate_valid": "pass",
        "waf_blocking": "fail",
    }  # fmt: skip
    assert report["waf_blocking"]["evidence"] == "WAF mode off"
    wait_for(lambda: alerts(api, "compliance-failed"), 30, "the compliance alert of the WAF")
    assert {a["object_id"] for a in alerts(api, "compliance-failed")} == {f"{DOMAIN}/waf_blocking"}
    assert not alerts(api, "security-score-drop")

    # HSTS off: the score drops by its 15 points, the drop alert fires, the report fails.
    cdn(api, origin, 0)
    dropped = wait_for(
        lambda: (d := score_of(api)) and checks(d)["hsts"]["result"] == "fail" and d,
        60,
        "a score without HSTS",
    )
    assert dropped["score"] == pytest.approx(before - 15 * 100 / _judged(dropped), abs=0.2)
    assert "Strict-Transport-Security" in checks(dropped)["hsts"]["advice"]
    assert dropped["best_score"] == before and dropped["history"][0]["score"] == dropped["score"]
    assert before in [p["score"] for p in dropped["history"]]
    fired = wait_for(lambda: alerts(api, "security-score-drop"), 30, "the score drop alert")
    assert fired[0]["object_id"] == DOMAIN and fired[0]["value"] >= 5
    failed = wait_for(
        lambda: (r := report_of(api))["hsts_min_age"]["status"] == "fail" and r, 30, "the report"
    )
    assert failed["hsts_min_age"]["evidence"] == "no Strict-Transport-Security header"
    assert failed["hsts_min_age"]["since"] > report["hsts_min_age"]["since"]
    assert failed["dnssec_on"]["since"] == report["dnssec_on"]["since"]  # unchanged
    wait_for(
        lambda: (
            f"{DOMAIN}/hsts_min_age" in {a["object_id"] for a in alerts(api, "compliance-failed")}
        ),
        30,
        "the compliance alert of HSTS",
    )

    # The CLI reads the same.
    text = cli(cp, "security", "score", DOMAIN)
    assert "hsts" in text and "fail" in text and "Strict-Transport-Security" in text
    history = json.loads(cli(cp, "security", "history", DOMAIN, "--json"))
    assert history[0]["score"] == dropped["score"] and "hsts" in history[0]["failing"]
    assert "hsts_min_age" in cli(cp, "security", "compliance", "report", "--failing")

    # HSTS on again: the score recovers, both alerts of HSTS resolve.
    cdn(api, origin, YEAR)
    wait_for(lambda: (d := score_of(api)) and d["score"] == before, 60, "the score recovers")
    wait_for(lambda: not alerts(api, "security-score-drop"), 30, "the drop alert resolves")
    resolved = alerts(api, "security-score-drop", "resolved")
    assert resolved and resolved[0]["object_id"] == DOMAIN
    wait_for(
        lambda: (
            {a["object_id"] for a in alerts(api, "compliance-failed")} == {f"{DOMAIN}/waf_blocking"}
        ),
        30,
        "the compliance alert of HSTS resolves",
    )
    # Since the domain was first scored as served (rounds before its certificate was live
    # score what was served then), the lowest point is the drop.
    history = api.ok("GET", f"{SEC}/scores/{DOMAIN}", params={"limit": 1000})["history"]
    since = datetime.fromisoformat(good["evaluated_at"])
    served = [p["score"] for p in history if datetime.fromisoformat(p["at"]) >= since]
    assert min(served) == dropped["score"]


def _judged(doc: dict[str, Any]) -> float:
    return sum(c["weight"] for c in doc["checks"] if c["result"] not in ("unknown", "n/a"))


def test_the_scan_finds_the_node_ports_and_flags_an_extra_listener(
    world: tuple[ControlPlane, Api, Origin, str],
) -> None:
    cp, api, _origin, host = world
    assert cp.http_port and cp.https_port and cp.dns_port
    node = wait_for(lambda: (n := api.ok("GET", f"{SEC}/nodes")) and n[0]["scanned_at"] and n[0],
                    30, "the first scan")  # fmt: skip
    assert node["address"] == host and node["unexpected"] == 0
    roles = {f["port"]: (f["role"], f["verdict"]) for f in node["findings"]}
    assert roles[cp.http_port] == ("http", "expected")
    assert roles[cp.https_port] == ("https", "expected")
    assert roles[cp.dns_port] == ("dns", "expected")
    assert node["ports_scanned"] >= 1023 + 3
    # Something else listening on the node's address, in the well-known range.
    extra = socket.socket()
    for port in range(990, 1, -1):
        try:
            extra.bind((host, port))
            break
        except OSError:
            continue
    extra.listen()
    try:
        scanned = api.ok("POST", f"{SEC}/nodes/scan")[0]
        flagged = [f for f in scanned["findings"] if f["verdict"] == "unexpected"]
        assert [f["port"] for f in flagged] == [port] and scanned["unexpected"] == 1
        assert flagged[0]["severity"] == "warning" and host in flagged[0]["detail"]
        fired = wait_for(lambda: alerts(api, "node-exposed-port"), 30, "the exposed port alert")
        assert fired[0]["object_id"] == "local" and fired[0]["severity"] == "critical"
        assert str(port) in cli(cp, "security", "scan")
    finally:
        extra.close()
    assert api.ok("POST", f"{SEC}/nodes/scan")[0]["unexpected"] == 0
    wait_for(lambda: not alerts(api, "node-exposed-port"), 30, "the alert resolves")
