"""The security API on the real app and database (SQLite and PostgreSQL): scores as stored
(cards from the pure scorer, so no engine runs here: the integration test probes a real
edge), their history and drop, the compliance policy (bad input refused whole, access), its
report and when each requirement last changed, the alert rules that read them, the node
surface listing, and the SDK and CLI over the same."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

from conftest import Api, Cli
from edgeplane.model.enums import Role
from edgeplane.posture import score as scorer
from edgeplane.posture.observed import DomainSeen
from edgeplane.sdk.client import Client
from edgeplane.sdk.security_service import SecurityService
from edgeplane.services import compliance, security_scores
from edgeplane.services.alert_engine import Engine
from edgeplane.settings import Settings
from edgeplane.store.actor import LOCAL
from edgeplane.store.tables import utcnow
from unit.test_security_scorer import headers, node, tls

INV = "/api/v1/infrastructure"
SEC = "/api/v1/security"


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, (r.status_code, r.text)
    return r.json() if r.content else None


def record(api: Api, hsts: bool, waf: str = "off", at_offset_s: float = 0) -> dict[str, Any]:
    """A score of shop.test as a probe would give it (HSTS on or off), stored as the job
    does, then the policies evaluated."""
    at = utcnow() + timedelta(seconds=at_offset_s)
    cert = tls(not_after=at + timedelta(days=80))
    probe = (
        node(tls=cert) if hsts else node(tls=cert, https=headers(strict_transport_security=None))
    )
    card = scorer.score(DomainSeen(domain="shop.test", at=at, nodes=(probe,), waf_mode=waf))
    with api.db.transaction(LOCAL, "default") as tx:
        security_scores.store(tx, "default", card)
    compliance.evaluate_all(api.db)
    return card.model_dump(mode="json")


def firing(api: Api, rule: str) -> set[str]:
    alerts = ok(api.get("/api/v1/alerts", params={"rule": rule}))
    return {a["object_id"] for a in alerts if a["state"] == "firing"}


def test_scores_history_policy_report_and_alerts(api: Api, cli: Cli) -> None:
    ok(api.post(f"{INV}/domains", json={"domain": "shop.test"}), 201)
    assert ok(api.get(f"{SEC}/scores")) == []
    missing = api.get(f"{SEC}/scores/shop.test")
    assert missing.status_code == 404 and "no security score yet" in missing.text
    assert api.get(f"{SEC}/scores/nope.test").status_code == 404
    # No live edge node to probe from: a clear conflict, nothing stored.
    r = api.post(f"{SEC}/scores/shop.test/evaluate")
    assert r.status_code == 409 and "no live edge node" in r.text
    assert ok(api.get(f"{SEC}/scores")) == []

    policy = ok(api.call("PUT", f"{SEC}/compliance", json={"requirements": [
        {"id": "hsts_min_age", "value": 31536000}, {"id": "waf_blocking"}, {"id": "min_score"},
    ]}))  # fmt: skip
    assert [r["id"] for r in policy["requirements"]] == ["hsts_min_age", "waf_blocking",
                                                         "min_score"]  # fmt: skip
    assert {c["id"] for c in policy["catalogue"]} >= {"https_only", "dnssec_on", "caa_present"}
    # Before any score: unknown, not failing (no alert).
    report = ok(api.get(f"{SEC}/compliance/report"))
    assert {r["status"] for r in report["domains"][0]["requirements"]} == {"unknown"}

    good = record(api, hsts=True)
    assert good["score"] == 90.0 and good["grade"] == "A"
    listed = ok(api.get(f"{SEC}/scores"))
    assert [(s["domain"], s["score"], s["grade"], s["failing"]) for s in listed] == [
        ("shop.test", 90.0, "A", ["waf"])
    ]
    report = ok(api.get(f"{SEC}/compliance/report"))
    results = {r["id"]: r for r in report["domains"][0]["requirements"]}
    assert {k: r["status"] for k, r in results.items()} == {
        "hsts_min_age": "pass", "waf_blocking": "fail", "min_score": "pass"}  # fmt: skip
    assert report["compliant"] is False and report["failing"] == 1
    engine = Engine(api.db, 0.1)
    passes = iter(range(10, 1000, 10))

    def evaluate() -> None:  # each pass later than the last: every rule is due
        engine.evaluate(now=utcnow() + timedelta(seconds=next(passes)))

    evaluate()
    assert firing(api, "compliance-failed") == {"shop.test/waf_blocking"}
    assert firing(api, "security-score-drop") == set()

    bad = record(api, hsts=False, at_offset_s=1)
    assert bad["score"] == 75.0 and bad["grade"] == "B"
    detail = ok(api.get(f"{SEC}/scores/shop.test"))
    assert detail["score"] == 75.0 and detail["previous_score"] == 90.0
    assert detail["best_score"] == 90.0
    assert [p["score"] for p in detail["history"]] == [75.0, 90.0]
    hsts = {c["id"]: c for c in detail["checks"]}["hsts"]
    assert hsts["result"] == "fail" and hsts["weight"] == 15 and hsts["points"] == 0
    assert "Strict-Transport-Security" in hsts["advice"]
    assert ok(api.get(f"{SEC}/scores/shop.test", params={"limit": 1}))["history"][0]["score"] == 75
    report = ok(api.get(f"{SEC}/compliance/report"))
    after = {r["id"]: r for r in report["domains"][0]["requirements"]}
    assert after["hsts_min_age"]["status"] == "fail"
    assert after["hsts_min_age"]["evidence"] == "no Strict-Transport-Security header"
    assert after["hsts_min_age"]["since"] > results["hsts_min_age"]["since"]
    assert after["waf_blocking"]["since"] == results["waf_blocking"]["since"]
    assert after["min_score"]["status"] == "fail"  # 75 < 80
    evaluate()
    assert firing(api, "security-score-drop") == {"shop.test"}
    assert firing(api, "compliance-failed") == {
        "shop.test/waf_blocking", "shop.test/hsts_min_age", "shop.test/min_score"}  # fmt: skip
    drop = ok(api.get("/api/v1/alerts", params={"rule": "security-score-drop"}))[0]
    assert drop["value"] == 15.0 and "shop.test" in drop["message"]

    # The CLI and the SDK read the same (embedded, on this database; the integration test
    # runs the CLI against a server).
    text = cli.run("security", "score", "shop.test").stdout
    assert "shop.test: 75 (B)" in text and "before 90" in text and "hsts" in text

    async def sdk() -> None:
        client = Client(Settings(home=api.tmp / "home", database_url=api.db.url))
        service = SecurityService(client=client)
        try:
            scores = await service.scores()
            assert scores[0].score == 75.0 and scores[0].failing == ["hsts", "waf"]
            assert (await service.score("shop.test")).history[1].score == 90.0
            report = await service.compliance_report()
            assert report.domains[0].failing == ["hsts_min_age", "waf_blocking", "min_score"]
            cleared = await service.set_compliance_policy(["waf_blocking"])
            assert [r.id for r in cleared.requirements] == ["waf_blocking"]
        finally:
            await client.aclose()

    asyncio.run(sdk())
    # The requirements no longer in the policy leave the report, their alerts resolve.
    evaluate()
    assert firing(api, "compliance-failed") == {"shop.test/waf_blocking"}

    # Recovered: the drop resolves.
    record(api, hsts=True, at_offset_s=2)
    evaluate()
    assert firing(api, "security-score-drop") == set()


BAD_POLICIES: list[tuple[dict[str, Any], str, str]] = [
    ({"requirements": [{"id": "nope"}]}, "requirements.0.id", "https_only"),
    ({"requirements": [{"id": "dnssec_on", "value": 1}]}, "requirements.0", "takes no value"),
    ({"requirements": [{"id": "min_score", "value": 200}]}, "requirements.0", "0 to 100"),
    ({"requirements": [{"id": "tls_min_version", "value": "1.0"}]}, "requirements.0",
     "1.2, 1.3"),
    ({"requirements": [{"id": "caa_present"}, {"id": "caa_present"}]}, "requirements",
     "listed twice"),
    ({"requirements": "all"}, "requirements", ""),
    ({"rules": []}, "rules", ""),
]  # fmt: skip


def test_bad_policies_access_and_nodes(api: Api) -> None:
    """A bad policy is refused whole, naming the field; who may read and write; the nodes
    listed with their registered ports before any scan."""
    ok(api.call("PUT", f"{SEC}/compliance", json={"requirements": [{"id": "https_only"}]}))
    for body, field, why in BAD_POLICIES:
        r = api.call("PUT", f"{SEC}/compliance", json=body)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        doc = r.json()
        fields = [doc.get("field")] + [e.get("field") for e in doc.get("errors", [])]
        assert field in fields, doc
        assert why in json.dumps(doc)
        policy = ok(api.get(f"{SEC}/compliance"))
        assert [r["id"] for r in policy["requirements"]] == ["https_only"]  # unchanged

    viewer = api.token(Role.VIEWER)
    assert api.call("GET", f"{SEC}/compliance", token=viewer).status_code == 200
    assert api.call("GET", f"{SEC}/scores", token=viewer).status_code == 200
    assert api.call("GET", f"{SEC}/nodes", token=viewer).status_code == 200
    r = api.call("PUT", f"{SEC}/compliance", token=viewer, json={"requirements": []})
    assert r.status_code == 403
    assert api.call("POST", f"{SEC}/nodes/scan", token=viewer).status_code == 403
    ok(api.post("/api/v1/projects", json={"id": "other"}), 201)
    outsider = api.token(Role.ADMIN, "other")
    assert api.call("GET", f"{SEC}/nodes", token=outsider).status_code == 403
    assert api.call("GET", f"{SEC}/scores?project=default", token=outsider).status_code == 403

    token = ok(api.post("/api/v1/tokens", json={"name": "edge", "scope": "edge"}), 201)["token"]
    body = {"name": "e1", "region": "eu-central", "address": "203.0.113.9", "http_port": 80,
            "https_port": 443, "dns_port": 53, "local_ports": {"metrics": 9101}}  # fmt: skip
    ok(api.post("/api/v1/edge/nodes", token=token, json=body))
    nodes = ok(api.get(f"{SEC}/nodes"))
    assert [(n["name"], n["address"], n["scanned_at"], n["findings"]) for n in nodes] == [
        ("e1", "203.0.113.9", None, [])
    ]
    # A node that is not live is not scanned (and nothing else is).
    assert ok(api.post(f"{SEC}/nodes/scan"))[0]["scanned_at"] is None


def test_the_waf_mode_is_read_defensively() -> None:
    assert security_scores.waf_mode({"waf": {"mode": "block", "paranoia": 2}}) == "block"
    assert security_scores.waf_mode({"waf": {"mode": "detect"}}) == "detect"
    assert security_scores.waf_mode({"waf": "block"}) == "block"
    for odd in ({}, {"waf": None}, {"waf": {"mode": "BLOCK"}}, {"waf": {"mode": 1}}, None, []):
        assert security_scores.waf_mode(odd) == "off"
