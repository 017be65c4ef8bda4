"""The security scorer (``edgeplane.posture.score``): table-driven over hand-built probes."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from edgeplane.posture import score as scorer
from edgeplane.posture.observed import DnsSeen, DomainSeen, HttpSeen, NodeSeen, TlsSeen

NOW = datetime(2026, 6, 1, tzinfo=UTC)
GOOD_HEADERS = {
    "strict-transport-security": ("max-age=31536000; includeSubDomains",),
    "x-content-type-options": ("nosniff",),
    "x-frame-options": ("SAMEORIGIN",),
    "referrer-policy": ("strict-origin-when-cross-origin",),
}


def tls(**kw: Any) -> TlsSeen:
    base: dict[str, Any] = {
        "protocols": {"TLSv1": False, "TLSv1.1": False, "TLSv1.2": True, "TLSv1.3": True},
        "ciphers": ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"),
        "tls13_cipher": "TLS_AES_128_GCM_SHA256",
        "groups": {"X25519": True, "prime256v1": True, "secp384r1": True, "X448": False,
                   "secp521r1": False},
        "not_after": NOW + timedelta(days=80),
        "names": ("shop.test",),
        "issuer": "Edgeplane internal intermediate CA",
        "chain": ("shop.test", "Edgeplane internal intermediate CA"),
        "ocsp_url": "http://cp/ocsp",
        "stapled": True,
    }  # fmt: skip
    base.update(kw)
    return TlsSeen(**base)


def node(name: str = "edge-1", **kw: Any) -> NodeSeen:
    base: dict[str, Any] = {
        "tls": tls(),
        "https": HttpSeen(status=200, headers=dict(GOOD_HEADERS)),
        "http": HttpSeen(status=308, location="https://shop.test/"),
        "dns": DnsSeen(caa=('0 issue "letsencrypt.org"',), dnskey=True, signed=True,
                       ds="published"),
    }  # fmt: skip
    base.update(kw)
    return NodeSeen(node=name, **base)


def seen(*nodes: NodeSeen, waf: str = "block") -> DomainSeen:
    return DomainSeen(domain="shop.test", at=NOW, nodes=nodes or (node(),), waf_mode=waf,
                      dnssec_wanted=True)  # fmt: skip


def headers(**changes: tuple[str, ...] | None) -> HttpSeen:
    h = dict(GOOD_HEADERS)
    for name, value in changes.items():
        key = name.replace("_", "-")
        if value is None:
            h.pop(key, None)
        else:
            h[key] = value
    return HttpSeen(status=200, headers=h)


def checks(card: scorer.ScoreCard) -> dict[str, Any]:
    return {c.id: c for c in card.checks}


def test_a_domain_that_does_everything_right_scores_100_a_plus() -> None:
    card = scorer.score(seen())
    assert card.score == 100.0 and card.grade == "A+" and card.capped is None
    assert {c.result for c in card.checks} == {"pass"}
    assert sum(c.weight for c in card.checks) == 100
    assert all(c.advice == "" and c.node == "edge-1" for c in card.checks)


# (what changes, the check, its result, the points it keeps, words of its advice)
CASES: list[tuple[str, dict[str, Any], str, str, float, str]] = [
    ("TLS 1.0 offered", {"tls": tls(protocols={"TLSv1": True, "TLSv1.1": False,
     "TLSv1.2": True, "TLSv1.3": True})}, "tls_protocols", "fail", 0, "Turn off TLSv1"),
    ("no TLS 1.3", {"tls": tls(protocols={"TLSv1": False, "TLSv1.1": False, "TLSv1.2": True,
     "TLSv1.3": False})}, "tls_protocols", "partial", 10, "Offer TLS 1.3"),
    ("TLS 1.3 only", {"tls": tls(protocols={"TLSv1": False, "TLSv1.1": False,
     "TLSv1.2": False, "TLSv1.3": True}, ciphers=())}, "tls_protocols", "pass", 15, ""),
    ("a CBC cipher", {"tls": tls(ciphers=("ECDHE-RSA-AES128-GCM-SHA256", "AES128-SHA"))},
     "tls_ciphers", "fail", 0, "AES128-SHA"),
    ("P-521 and X448 accepted", {"tls": tls(groups={"X25519": True, "X448": True,
     "secp521r1": True})}, "tls_ciphers", "partial", 5, "X448, secp521r1"),
    ("untrusted chain", {"tls": tls(verify_error="unable to get local issuer certificate")},
     "certificate", "fail", 0, "trusted root"),
    ("name mismatch", {"tls": tls(verify_error="Hostname mismatch, certificate is not valid "
     "for 'shop.test'.")}, "certificate", "fail", 0, "Hostname mismatch"),
    ("20 days left", {"tls": tls(not_after=NOW + timedelta(days=20))}, "certificate",
     "partial", 12, "20 days"),
    ("10 days left", {"tls": tls(not_after=NOW + timedelta(days=10))}, "certificate",
     "partial", 7.5, "renew it"),
    ("3 days left", {"tls": tls(not_after=NOW + timedelta(days=3))}, "certificate", "partial",
     3.75, "renew it now"),
    ("no staple", {"tls": tls(stapled=False)}, "ocsp_stapling", "fail", 0, "Staple"),
    ("no OCSP to staple", {"tls": tls(ocsp_url=None, stapled=False)}, "ocsp_stapling", "n/a",
     0, ""),
    ("HTTP served", {"http": HttpSeen(status=200)}, "https_redirect", "fail", 0, "Redirect"),
    ("redirect to http", {"http": HttpSeen(status=301, location="http://shop.test/")},
     "https_redirect", "fail", 0, "Redirect"),
    ("no HSTS", {"https": headers(strict_transport_security=None)}, "hsts", "fail", 0,
     "Strict-Transport-Security"),
    ("short HSTS", {"https": headers(strict_transport_security=("max-age=300; "
     "includeSubDomains",))}, "hsts", "partial", 3.0, "raise max-age"),
    ("HSTS without subdomains", {"https": headers(strict_transport_security=(
     "max-age=63072000",))}, "hsts", "partial", 12, "includeSubDomains"),
    ("HSTS max-age=0", {"https": headers(strict_transport_security=("max-age=0",))}, "hsts",
     "fail", 0, "max-age above 0"),
    ("no nosniff", {"https": headers(x_content_type_options=None)}, "security_headers",
     "partial", 6.67, "nosniff"),
    ("conflicting X-Frame-Options", {"https": headers(x_frame_options=("DENY",
     "SAMEORIGIN"))}, "security_headers", "partial", 6.67, "X-Frame-Options"),
    ("CSP frame-ancestors instead", {"https": headers(x_frame_options=None,
     content_security_policy=("default-src 'self'; frame-ancestors 'none'",))},
     "security_headers", "pass", 10, ""),
    ("a weak Referrer-Policy last", {"https": headers(referrer_policy=("no-referrer, "
     "unsafe-url",))}, "security_headers", "partial", 6.67, "Referrer-Policy"),
    ("only HSTS", {"https": HttpSeen(status=502, headers={"strict-transport-security":
     GOOD_HEADERS["strict-transport-security"]})}, "security_headers", "fail", 0, "Send"),
    ("no CAA", {"dns": DnsSeen(caa=(), dnskey=True, signed=True, ds="published")}, "caa",
     "fail", 0, "CAA"),
    ("unsigned zone", {"dns": DnsSeen(caa=('0 issue "x"',), dnskey=False, signed=False)},
     "dnssec", "fail", 0, "Sign the zone"),
    ("no DS at the parent", {"dns": DnsSeen(caa=('0 issue "x"',), dnskey=True, signed=True,
     ds="missing")}, "dnssec", "partial", 5, "registrar"),
    ("a DS of another key", {"dns": DnsSeen(caa=('0 issue "x"',), dnskey=True, signed=True,
     ds="mismatch")}, "dnssec", "partial", 2.5, "matches no key"),
    ("DS not told", {"dns": DnsSeen(caa=('0 issue "x"',), dnskey=True, signed=True,
     ds="unknown")}, "dnssec", "pass", 10, ""),
]  # fmt: skip


@pytest.mark.parametrize(("what", "change", "check", "result", "points", "advice"), CASES,
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_each_finding_costs_its_check(
    what: str, change: dict[str, Any], check: str, result: str, points: float, advice: str
) -> None:
    card = scorer.score(seen(node(**change)))
    got = checks(card)[check]
    assert got.result == result, got
    assert got.points == pytest.approx(points, abs=0.01)
    assert advice in got.advice
    if result in ("fail", "partial"):
        assert advice, "a check that does not pass says what to do"
    others = [c for c in card.checks if c.id != check]
    assert all(c.result in ("pass", "n/a") for c in others), others
    judged = sum(c.weight for c in card.checks if c.result not in ("unknown", "n/a"))
    assert card.score == pytest.approx(round(100 * sum(c.points for c in card.checks) / judged, 1))


@pytest.mark.parametrize(
    ("mode", "result", "points"), [("block", "pass", 10), ("detect", "partial", 5),
                                   ("off", "fail", 0)]
)  # fmt: skip
def test_the_waf_mode(mode: str, result: str, points: float) -> None:
    waf = checks(scorer.score(seen(waf=mode)))["waf"]
    assert (waf.result, waf.points, waf.evidence) == (result, points, {"mode": mode})


@pytest.mark.parametrize(
    ("value", "grade"),
    [(100, "A+"), (95, "A+"), (94.9, "A"), (85, "A"), (84.9, "B"), (70, "B"), (69.9, "C"),
     (55, "C"), (54.9, "D"), (40, "D"), (39.9, "F"), (0, "F")],
)  # fmt: skip
def test_grades(value: float, grade: str) -> None:
    assert scorer.grade_of(value) == grade


def test_grade_caps() -> None:
    untrusted = scorer.score(seen(node(tls=tls(verify_error="certificate has expired"))))
    assert untrusted.score == 85.0 and untrusted.grade == "F"
    assert untrusted.capped and "certificate" in untrusted.capped
    every = {"TLSv1": True, "TLSv1.1": True, "TLSv1.2": True, "TLSv1.3": True}
    old = scorer.score(seen(node(tls=tls(protocols=every))))
    assert old.score == 85.0 and old.grade == "C" and old.capped == "TLS 1.0 or 1.1 is offered"


def test_the_worst_node_decides_and_is_named() -> None:
    bad = node("edge-2", https=headers(strict_transport_security=None))
    card = scorer.score(seen(node("edge-1"), bad))
    hsts = checks(card)["hsts"]
    assert hsts.result == "fail" and hsts.node == "edge-2"
    assert checks(card)["caa"].node in ("edge-1", "edge-2")
    assert card.nodes == ["edge-1", "edge-2"]
    assert card.score == 85.0


def test_what_cannot_be_told_leaves_its_weight_out() -> None:
    silent = node(
        tls=TlsSeen(protocols=dict.fromkeys(("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")),
                    error="cannot connect: refused"),
        https=HttpSeen(error="ConnectError"),
        http=HttpSeen(error="ConnectError"),
        dns=DnsSeen(error="the node's DNS server did not answer"),
    )  # fmt: skip
    card = scorer.score(seen(silent))
    by = checks(card)
    for check in ("tls_protocols", "tls_ciphers", "certificate", "ocsp_stapling",
                  "https_redirect", "hsts", "security_headers", "caa", "dnssec"):  # fmt: skip
        assert by[check].result == "unknown", check
        assert by[check].points == 0
    assert by["certificate"].evidence == {"error": "cannot connect: refused"}
    # A node that cannot be reached says nothing of the domain (the job records no score).
    assert scorer.told(card) is False and scorer.told(scorer.score(seen())) is True
    # A second node that answers is judged: unknown is never the worst when a node judged.
    both = scorer.score(seen(silent, node("edge-2")))
    assert checks(both)["hsts"].result == "pass" and checks(both)["hsts"].node == "edge-2"
    assert both.score == 100.0 and scorer.told(both)
    # A port that answers without a TLS handshake fails the certificate: F.
    no_tls = node(tls=TlsSeen(protocols=dict.fromkeys(("TLSv1", "TLSv1.1", "TLSv1.2",
                                                       "TLSv1.3"), False),
                              error="no TLS handshake succeeded"))  # fmt: skip
    failed = scorer.score(seen(no_tls))
    assert checks(failed)["certificate"].result == "fail" and failed.grade == "F"


def test_a_node_without_dns_or_http_is_not_held_against_the_domain() -> None:
    card = scorer.score(seen(node(dns=None, http=None)))
    by = checks(card)
    assert by["caa"].result == by["dnssec"].result == by["https_redirect"].result == "n/a"
    assert card.score == 100.0


def test_hsts_parsing() -> None:
    assert scorer.parse_hsts("max-age=31536000; includeSubDomains; preload") == (31536000, True)
    assert scorer.parse_hsts('max-age="600"') == (600, False)
    assert scorer.parse_hsts("includesubdomains;max-age=5") == (5, True)
    assert scorer.parse_hsts("preload") == (None, False)


def test_a_probe_is_needed() -> None:
    with pytest.raises(ValueError):
        scorer.score(dataclasses.replace(seen(), nodes=()))
