"""Compliance requirements (``model.security_score.Requirement``) and their evaluation
(``edgeplane.posture.policy``) over score cards; the surface classification
(``edgeplane.posture.surface``). Table-driven, no I/O."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from test_security_scorer import GOOD_HEADERS, NOW, headers, node, seen, tls

from edgeplane.model.security_score import CompliancePolicyIn, Requirement
from edgeplane.posture import policy, surface
from edgeplane.posture import score as scorer
from edgeplane.posture.observed import DnsSeen, HttpSeen, TlsSeen


def req(rid: str, value: Any = None) -> Requirement:
    return Requirement.model_validate({"id": rid} | ({"value": value} if value is not None else {}))


GOOD = scorer.score(seen())


def card(waf: str = "block", **change: Any) -> scorer.ScoreCard:
    return scorer.score(seen(node(**change), waf=waf))


SILENT = dict(
    tls=TlsSeen(protocols=dict.fromkeys(("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")),
                error="cannot connect"),
    https=HttpSeen(error="ConnectError"),
    http=HttpSeen(error="ConnectError"),
    dns=DnsSeen(error="no answer"),
)  # fmt: skip

# (requirement, value, the card, status, words of the evidence)
CASES: list[tuple[str, Any, scorer.ScoreCard | None, str, str]] = [
    ("https_only", None, GOOD, "pass", "308"),
    ("https_only", None, card(http=HttpSeen(status=200)), "fail", "200"),
    ("https_only", None, card(http=None), "pass", "no plain HTTP port"),
    ("hsts_min_age", None, GOOD, "pass", "max-age=31536000"),
    ("hsts_min_age", 63072000, GOOD, "fail", "max-age=31536000"),
    ("hsts_min_age", None, card(https=headers(strict_transport_security=None)), "fail",
     "no Strict-Transport-Security"),
    ("hsts_include_subdomains", None, GOOD, "pass", "includeSubDomains"),
    ("hsts_include_subdomains", None, card(https=headers(strict_transport_security=(
     "max-age=63072000",))), "fail", "max-age=63072000"),
    ("tls_min_version", "1.2", GOOD, "pass", "TLSv1.2, TLSv1.3"),
    ("tls_min_version", "1.3", GOOD, "fail", "TLSv1.2"),
    ("tls_min_version", "1.2", card(tls=tls(protocols={"TLSv1": True, "TLSv1.1": False,
     "TLSv1.2": True, "TLSv1.3": True})), "fail", "TLSv1,"),
    ("strong_ciphers", None, GOOD, "pass", "pass"),
    ("strong_ciphers", None, card(tls=tls(groups={"X448": True})), "fail", "curves"),
    ("certificate_valid", None, GOOD, "pass", "80 days left"),
    ("certificate_valid", None, card(tls=tls(verify_error="certificate has expired")), "fail",
     "certificate has expired"),
    ("no_expiring_certs", None, GOOD, "pass", "80 days left"),
    ("no_expiring_certs", 90, GOOD, "fail", "80 days left"),
    ("ocsp_stapling", None, GOOD, "pass", "pass"),
    ("ocsp_stapling", None, card(tls=tls(stapled=False)), "fail", "Staple"),
    ("ocsp_stapling", None, card(tls=tls(stapled=False, ocsp_url=None)), "pass",
     "names no OCSP"),
    ("caa_present", None, GOOD, "pass", "pass"),
    ("caa_present", None, card(dns=DnsSeen(caa=(), dnskey=True, signed=True)), "fail", "CAA"),
    ("dnssec_on", None, GOOD, "pass", "zone signed"),
    ("dnssec_on", None, card(dns=DnsSeen(caa=("0 issue x",), dnskey=False, signed=False)),
     "fail", "not signed"),
    ("security_headers", None, GOOD, "pass", "pass"),
    ("security_headers", None, card(https=headers(referrer_policy=("unsafe-url",))), "fail",
     "Referrer-Policy"),
    ("waf_blocking", None, GOOD, "pass", "WAF mode block"),
    ("waf_blocking", None, card(waf="detect"), "fail", "WAF mode detect"),
    ("min_score", None, GOOD, "pass", "score 100 (A+)"),
    ("min_score", 90, card(waf="off"), "pass", "score 90 (A)"),
    ("min_score", 91, card(waf="off"), "fail", "score 90 (A)"),
    # What could not be seen is unknown, never a pass or a fail.
    ("hsts_min_age", None, None, "unknown", "no security score yet"),
    ("min_score", None, None, "unknown", "no security score yet"),
    ("hsts_min_age", None, card(**SILENT), "unknown", "hsts could not be told"),
    ("tls_min_version", "1.2", card(**SILENT), "unknown", "cannot connect"),
    ("caa_present", None, card(**SILENT), "unknown", "caa could not be told"),
    ("https_only", None, card(**SILENT), "unknown", "https_redirect could not be told"),
    # ... except what the config says (the WAF mode).
    ("waf_blocking", None, card(**SILENT), "pass", "WAF mode block"),
    ("certificate_valid", None, card(**SILENT), "unknown", "cannot connect"),
    ("no_expiring_certs", None, card(**SILENT), "unknown", "cannot connect"),
]  # fmt: skip


@pytest.mark.parametrize(("rid", "value", "the_card", "status", "evidence"), CASES,
                         ids=[f"{c[0]}-{c[3]}-{i}" for i, c in enumerate(CASES)])  # fmt: skip
def test_requirements(
    rid: str, value: Any, the_card: scorer.ScoreCard | None, status: str, evidence: str
) -> None:
    outcome = policy.evaluate_one(req(rid, value), the_card)
    assert outcome.id == rid
    assert outcome.status == status, outcome
    assert evidence in outcome.evidence, outcome


def test_a_policy_is_evaluated_in_its_order() -> None:
    wanted = [req("waf_blocking"), req("hsts_min_age", 100), req("min_score")]
    outcomes = policy.evaluate(wanted, GOOD)
    assert [o.id for o in outcomes] == ["waf_blocking", "hsts_min_age", "min_score"]
    assert [o.value for o in outcomes] == [None, 100, 80]  # min_score's default
    assert [o.status for o in outcomes] == ["pass", "pass", "pass"]


@pytest.mark.parametrize(
    ("body", "where", "why"),
    [
        ({"id": "nope"}, "id", "https_only"),
        ({"id": "https_only", "value": 3}, "", "takes no value"),
        ({"id": "hsts_min_age", "value": -1}, "", "from 0 to 63072000"),
        ({"id": "hsts_min_age", "value": "long"}, "", "from 0 to 63072000"),
        ({"id": "tls_min_version", "value": "1.1"}, "", "one of 1.2, 1.3"),
        ({"id": "min_score", "value": 101}, "", "from 0 to 100"),
        ({"id": "no_expiring_certs", "value": 0}, "", "from 1 to 365"),
        ({"id": "waf_blocking", "extra": 1}, "extra", "Extra inputs"),
    ],
)
def test_bad_requirements_are_refused_naming_the_reason(
    body: dict[str, Any], where: str, why: str
) -> None:
    with pytest.raises(ValidationError) as exc:
        Requirement.model_validate(body)
    assert why in str(exc.value)
    if where:
        assert exc.value.errors()[0]["loc"][0] == where


def test_a_policy_lists_a_requirement_once() -> None:
    with pytest.raises(ValidationError, match="dnssec_on is listed twice"):
        CompliancePolicyIn.model_validate({"requirements": [{"id": "dnssec_on"},
                                                            {"id": "dnssec_on"}]})  # fmt: skip
    ok = CompliancePolicyIn.model_validate({"requirements": [{"id": "tls_min_version"}]})
    assert ok.requirements[0].value == "1.2"


# The node surface ---------------------------------------------------------------------------

EXPECTED = {"http": 8080, "https": 8443, "dns": 8053}
INTERNAL = {"metrics": 9101, "dns_api": 40001}


@pytest.mark.parametrize(
    ("address", "open_ports", "verdicts", "unexpected"),
    [
        ("203.0.113.5", [8080, 8443, 8053], {8080: "expected", 8443: "expected",
         8053: "expected"}, 0),
        ("203.0.113.5", [8080, 8443], {8053: "missing"}, 0),
        ("203.0.113.5", [8080, 8443, 8053, 22], {22: "unexpected"}, 1),
        ("203.0.113.5", [8080, 8443, 8053, 9101, 40001], {9101: "exposed", 40001: "exposed"},
         2),
        ("127.0.0.1", [8080, 8443, 8053, 9101, 40001], {9101: "internal", 40001: "internal"},
         0),
        ("::1", [8080, 8443, 8053, 25], {25: "unexpected"}, 1),
    ],
)  # fmt: skip
def test_surface_classification(
    address: str, open_ports: list[int], verdicts: dict[int, str], unexpected: int
) -> None:
    findings = surface.classify(address, open_ports, EXPECTED, INTERNAL)
    by_port = {f.port: f for f in findings}
    for port, verdict in verdicts.items():
        assert by_port[port].verdict == verdict
    assert set(by_port) == set(EXPECTED.values()) | set(open_ports)
    assert surface.unexpected(findings) == unexpected
    assert all(f.severity == "critical" for f in findings if f.verdict == "exposed")


def test_the_ports_scanned() -> None:
    ports = surface.ports_to_scan(EXPECTED, INTERNAL, [5000, 0, 70000])
    assert ports[:3] == [1, 2, 3] and 1023 in ports and 1024 not in ports
    assert {8080, 8443, 8053, 9101, 40001, 5000} <= set(ports)
    assert len(ports) == 1023 + 6


def test_header_findings_keep_what_was_sent() -> None:
    found = scorer.header_findings(HttpSeen(status=200, headers=dict(GOOD_HEADERS)))
    assert found["framing"] == (True, "SAMEORIGIN")
    assert NOW.year == 2026
