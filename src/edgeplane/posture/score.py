"""The security score of a domain: a pure function of what the probes saw.

Ten weighted checks share 100 points:

=================  ======  ==========================================================
check              weight  full points when
=================  ======  ==========================================================
tls_protocols      15      only TLS 1.2 and 1.3 are offered (1.3 missing: 2/3)
tls_ciphers        10      only Mozilla intermediate's TLS 1.2 ciphers and curves
certificate        15      trusted chain, names cover the domain, 30+ days left
ocsp_stapling      5       a staple is sent (n/a when the certificate names no OCSP)
https_redirect     5       HTTP answers with a redirect to https://
hsts               15      max-age of 6 months or more (12) and includeSubDomains (3)
security_headers   10      X-Content-Type-Options, framing, Referrer-Policy (1/3 each)
caa                5       CAA records are served
dnssec             10      DNSKEY signed (half without the DS at the parent, when told)
waf                10      WAF blocking (detect: half)
=================  ======  ==========================================================

Each check is judged on every node probed and the worst view counts (its node is named).
A check that could not be told (``unknown``) or does not apply (``n/a``) leaves its weight
out: the score is the points earned over the weight judged, times 100. The grade follows the
score (A+ 95, A 85, B 70, C 55, D 40, else F) with two caps: a certificate that fails (or no
TLS handshake where the port answers) makes it F, TLS 1.0 or 1.1 offered at most C. A node
that cannot be reached at all judges nothing (``told``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edgeplane.model.security_score import Check, Grade, Result, ScoreCard
from edgeplane.posture.observed import DomainSeen, HttpSeen, NodeSeen

# Mozilla's intermediate configuration (version 5.7): TLS 1.2 cipher suites and groups.
INTERMEDIATE_CIPHERS: frozenset[str] = frozenset(
    {
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "DHE-RSA-AES128-GCM-SHA256",
        "DHE-RSA-AES256-GCM-SHA384",
        "DHE-RSA-CHACHA20-POLY1305",
    }
)
INTERMEDIATE_GROUPS: frozenset[str] = frozenset({"X25519", "prime256v1", "secp384r1"})
HSTS_MIN_AGE = 15_768_000  # six months, in seconds
CERT_WARN_DAYS = 30
SAFE_REFERRER = frozenset(
    {"no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin"}
)
GRADES: tuple[tuple[float, Grade], ...] = (
    (95, "A+"),
    (85, "A"),
    (70, "B"),
    (55, "C"),
    (40, "D"),
)
_ORDER: tuple[Grade, ...] = ("A+", "A", "B", "C", "D", "F")


@dataclass(frozen=True)
class Judged:
    """One node's judgement of one check: the fraction of its weight earned."""

    result: Result
    fraction: float = 0.0
    advice: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Spec:
    id: str
    name: str
    weight: float
    judge: Callable[[NodeSeen, DomainSeen], Judged]


def _unknown(why: str) -> Judged:
    return Judged("unknown", evidence={"error": why})


def _graded(fraction: float) -> Result:
    if fraction >= 1.0:
        return "pass"
    return "fail" if fraction <= 0.0 else "partial"


# The checks ---------------------------------------------------------------------------------


def tls_protocols(node: NodeSeen, _d: DomainSeen) -> Judged:
    seen = node.tls.protocols
    if not any(v is not None for v in seen.values()):
        return _unknown(node.tls.error or "no handshake could be tried")
    offered = [p for p, ok in seen.items() if ok]
    evidence: dict[str, Any] = {
        "offered": offered,
        "not_told": [p for p, ok in seen.items() if ok is None],
    }
    old = [p for p in offered if p in ("TLSv1", "TLSv1.1")]
    if old:
        return Judged(
            "fail",
            0.0,
            f"Turn off {' and '.join(old)}: offer only TLS 1.2 and 1.3",
            evidence,
        )
    if not offered:
        return Judged("fail", 0.0, "No TLS version is offered: serve HTTPS", evidence)
    if "TLSv1.3" not in offered:
        return Judged("partial", 2 / 3, "Offer TLS 1.3", evidence)
    if "TLSv1.2" not in offered:
        evidence["note"] = "TLS 1.3 only (Mozilla's modern profile)"
    return Judged("pass", 1.0, "", evidence)


def tls_ciphers(node: NodeSeen, _d: DomainSeen) -> Judged:
    tls = node.tls
    if not tls.connected:
        return _unknown(tls.error or "no handshake")
    weak = sorted(c for c in tls.ciphers if c not in INTERMEDIATE_CIPHERS)
    groups = sorted(g for g, ok in tls.groups.items() if ok and g not in INTERMEDIATE_GROUPS)
    evidence: dict[str, Any] = {
        "ciphers": list(tls.ciphers),
        "tls13_cipher": tls.tls13_cipher,
        "groups": sorted(g for g, ok in tls.groups.items() if ok),
    }
    if weak:
        evidence["outside_intermediate"] = weak
        return Judged(
            "fail",
            0.0,
            f"Drop the ciphers outside Mozilla's intermediate profile: {', '.join(weak)}",
            evidence,
        )
    if groups:
        evidence["groups_outside_intermediate"] = groups
        return Judged(
            "partial",
            0.5,
            f"Offer only the curves X25519, P-256 and P-384 (also accepted: {', '.join(groups)})",
            evidence,
        )
    return Judged("pass", 1.0, "", evidence)


def certificate(node: NodeSeen, domain: DomainSeen) -> Judged:
    tls = node.tls
    if not any(v is not None for v in tls.protocols.values()) and tls.error is not None:
        return _unknown(tls.error)  # no connection at all: the node is down, not insecure
    if not tls.connected or tls.not_after is None:
        return Judged(
            "fail",
            0.0,
            "Serve HTTPS for the domain with a certificate",
            {"error": tls.error or "no handshake"},
        )
    days = round((tls.not_after - domain.at).total_seconds() / 86400, 1)
    evidence: dict[str, Any] = {
        "issuer": tls.issuer,
        "names": list(tls.names),
        "chain": list(tls.chain),
        "not_after": tls.not_after.isoformat(),
        "days_left": days,
    }
    if tls.verify_error is not None:
        evidence["error"] = tls.verify_error
        return Judged(
            "fail",
            0.0,
            "Serve a certificate that chains to a trusted root and names the domain "
            f"({tls.verify_error})",
            evidence,
        )
    if days < 7:
        return Judged("partial", 0.25, f"The certificate expires in {days:g} days: renew it now",
                      evidence)  # fmt: skip
    if days < 14:
        return Judged("partial", 0.5, f"The certificate expires in {days:g} days: renew it",
                      evidence)  # fmt: skip
    if days < CERT_WARN_DAYS:
        return Judged("partial", 0.8, f"The certificate expires in {days:g} days", evidence)
    return Judged("pass", 1.0, "", evidence)


def ocsp_stapling(node: NodeSeen, _d: DomainSeen) -> Judged:
    tls = node.tls
    if not tls.connected:
        return _unknown(tls.error or "no handshake")
    evidence = {"ocsp_url": tls.ocsp_url, "stapled": tls.stapled}
    if tls.stapled:
        return Judged("pass", 1.0, "", evidence)
    if tls.ocsp_url is None:
        return Judged("n/a", 0.0, "", {**evidence, "note": "the certificate names no OCSP"})
    if tls.stapled is None:
        return Judged("unknown", 0.0, "", evidence)
    return Judged("fail", 0.0, "Staple the OCSP response (its responder did not answer?)",
                  evidence)  # fmt: skip


def https_redirect(node: NodeSeen, domain: DomainSeen) -> Judged:
    http = node.http
    if http is None:
        return Judged("n/a", 0.0, "", {"note": "the node serves no plain HTTP"})
    if http.status is None:
        return _unknown(http.error or "no answer")
    location = http.location or ""
    evidence = {"status": http.status, "location": location}
    if http.status in (301, 302, 303, 307, 308) and location.lower().startswith("https://"):
        return Judged("pass", 1.0, "", evidence)
    return Judged(
        "fail",
        0.0,
        f"Redirect HTTP to https://{domain.domain} (force_https in the CDN config)",
        evidence,
    )


_MAX_AGE = re.compile(r"(?:^|;)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:;|$)", re.IGNORECASE)


def parse_hsts(value: str) -> tuple[int | None, bool]:
    """(max-age, includeSubDomains) of one Strict-Transport-Security value."""
    m = _MAX_AGE.search(value)
    directives = {d.strip().lower() for d in value.split(";")}
    return (int(m.group(1)) if m else None), "includesubdomains" in directives


def hsts(node: NodeSeen, _d: DomainSeen) -> Judged:
    https = node.https
    if https is None or https.status is None:
        return _unknown(https.error if https and https.error else "no HTTPS answer")
    values = https.values("strict-transport-security")
    if not values:
        return Judged(
            "fail",
            0.0,
            "Send Strict-Transport-Security with max-age of at least 6 months "
            "(hsts_max_age in the CDN config)",
            {"header": None},
        )
    max_age, subdomains = parse_hsts(values[0])  # browsers take the first
    evidence = {"header": values[0], "max_age": max_age, "include_subdomains": subdomains}
    if not max_age:
        return Judged("fail", 0.0, "Give HSTS a max-age above 0", evidence)
    fraction = 0.8 if max_age >= HSTS_MIN_AGE else 0.8 * max_age / HSTS_MIN_AGE
    advice = []
    if max_age < HSTS_MIN_AGE:
        advice.append(f"raise max-age to at least {HSTS_MIN_AGE} (6 months)")
    if subdomains:
        fraction += 0.2
    else:
        advice.append("add includeSubDomains")
    fraction = round(fraction, 4)
    text = ("HSTS: " + ", ".join(advice)) if advice else ""
    return Judged(_graded(fraction), fraction, text, evidence)


def _last(values: tuple[str, ...]) -> str | None:
    return values[-1].strip() if values else None


def header_findings(https: HttpSeen) -> dict[str, tuple[bool, str | None]]:
    """Each security header: (good, the value seen)."""
    nosniff = https.values("x-content-type-options")
    xfo = https.values("x-frame-options")
    csp = https.values("content-security-policy")
    referrer = https.values("referrer-policy")
    frame_values = {v.strip().upper() for v in xfo}
    xfo_ok = len(frame_values) == 1 and frame_values <= {"DENY", "SAMEORIGIN"}
    csp_ok = any("frame-ancestors" in v.lower() for v in csp)
    # Referrer-Policy: the last value browsers know wins (a header may list several).
    tokens = [t.strip().lower() for v in referrer for t in v.split(",") if t.strip()]
    last_ref = tokens[-1] if tokens else None
    return {
        "x-content-type-options": (
            len(nosniff) >= 1 and all(v.strip().lower() == "nosniff" for v in nosniff),
            ", ".join(nosniff) or None,
        ),
        "framing": (
            xfo_ok or csp_ok,
            ", ".join(xfo) or (next((v for v in csp if "frame-ancestors" in v.lower()), None)),
        ),
        "referrer-policy": (last_ref in SAFE_REFERRER, ", ".join(referrer) or None),
    }


def security_headers(node: NodeSeen, _d: DomainSeen) -> Judged:
    https = node.https
    if https is None or https.status is None:
        return _unknown(https.error if https and https.error else "no HTTPS answer")
    found = header_findings(https)
    good = [name for name, (ok, _v) in found.items() if ok]
    evidence = {name: value for name, (_ok, value) in found.items()}
    missing = [name for name in found if name not in good]
    fraction = round(len(good) / len(found), 4)
    advice = {
        "x-content-type-options": "X-Content-Type-Options: nosniff",
        "framing": "one X-Frame-Options (DENY or SAMEORIGIN) or CSP frame-ancestors",
        "referrer-policy": "a Referrer-Policy such as strict-origin-when-cross-origin",
    }
    text = ("Send " + "; ".join(advice[m] for m in missing)) if missing else ""
    return Judged(_graded(fraction), fraction, text, {**evidence, "missing": missing})


def caa(node: NodeSeen, _d: DomainSeen) -> Judged:
    dns = node.dns
    if dns is None:
        return Judged("n/a", 0.0, "", {"note": "the node runs no DNS server"})
    if dns.caa is None:
        return _unknown(dns.error or "no answer")
    issuers = [r for r in dns.caa if " issue" in f" {r}" or "issuewild" in r]
    evidence = {"records": list(dns.caa)}
    if issuers:
        return Judged("pass", 1.0, "", evidence)
    return Judged("fail", 0.0, "Add CAA records naming the CA that may issue (0 issue \"...\")",
                  evidence)  # fmt: skip


def dnssec(node: NodeSeen, domain: DomainSeen) -> Judged:
    dns = node.dns
    if dns is None:
        return Judged("n/a", 0.0, "", {"note": "the node runs no DNS server"})
    if dns.dnskey is None:
        return _unknown(dns.error or "no answer")
    evidence: dict[str, Any] = {"dnskey": dns.dnskey, "signed": dns.signed, "ds": dns.ds,
                                "configured": domain.dnssec_wanted}  # fmt: skip
    if not (dns.dnskey and dns.signed):
        return Judged("fail", 0.0, "Sign the zone (dnssec: true on the domain)", evidence)
    if dns.ds == "missing":
        return Judged("partial", 0.5, "Publish the DS records at the registrar", evidence)
    if dns.ds == "mismatch":
        return Judged("partial", 0.25, "The DS at the parent matches no key: publish the DS "
                      "records the domain status lists", evidence)  # fmt: skip
    if dns.ds == "unknown":
        evidence["note"] = "the DS at the parent could not be told"
    return Judged("pass", 1.0, "", evidence)


def waf(_node: NodeSeen, domain: DomainSeen) -> Judged:
    mode = domain.waf_mode
    evidence = {"mode": mode}
    if mode == "block":
        return Judged("pass", 1.0, "", evidence)
    if mode == "detect":
        return Judged("partial", 0.5, "Switch the WAF from detect to block", evidence)
    return Judged("fail", 0.0, "Turn the WAF on in blocking mode", evidence)


CHECKS: tuple[Spec, ...] = (
    Spec("tls_protocols", "TLS protocol versions", 15, tls_protocols),
    Spec("tls_ciphers", "Cipher suites and curves", 10, tls_ciphers),
    Spec("certificate", "Certificate chain, names and expiry", 15, certificate),
    Spec("ocsp_stapling", "OCSP stapling", 5, ocsp_stapling),
    Spec("https_redirect", "HTTP redirects to HTTPS", 5, https_redirect),
    Spec("hsts", "HTTP Strict Transport Security", 15, hsts),
    Spec("security_headers", "Security headers", 10, security_headers),
    Spec("caa", "CAA records", 5, caa),
    Spec("dnssec", "DNSSEC", 10, dnssec),
    Spec("waf", "Web application firewall", 10, waf),
)
if sum(c.weight for c in CHECKS) != 100:  # pragma: no cover - a guard on the table above
    raise RuntimeError("the weights of the checks must add up to 100")

_RANK: dict[Result, int] = {"fail": 0, "partial": 1, "pass": 2, "unknown": 3, "n/a": 4}


def _worst(judged: list[tuple[str, Judged]]) -> tuple[str, Judged]:
    """The node's view with the fewest points among those judged; unknown / n/a only when
    no node could judge."""
    return min(judged, key=lambda nj: (_RANK[nj[1].result] >= 3, nj[1].fraction,
                                       _RANK[nj[1].result]))  # fmt: skip


def grade_of(score: float) -> Grade:
    for floor, grade in GRADES:
        if score >= floor:
            return grade
    return "F"


def _cap(grade: Grade, at_most: Grade) -> Grade:
    return grade if _ORDER.index(grade) >= _ORDER.index(at_most) else at_most


def score(seen: DomainSeen) -> ScoreCard:
    """The domain's score card from its nodes' probes (at least one node)."""
    if not seen.nodes:
        raise ValueError("a score needs the probe of at least one node")
    checks: list[Check] = []
    for spec in CHECKS:
        node, judged = _worst([(n.node, spec.judge(n, seen)) for n in seen.nodes])
        judged_weight = spec.weight if judged.result not in ("unknown", "n/a") else 0.0
        checks.append(
            Check(
                id=spec.id,
                name=spec.name,
                result=judged.result,
                weight=spec.weight,
                points=round(judged_weight * judged.fraction, 2),
                advice=judged.advice,
                evidence=judged.evidence,
                node=node if len(seen.nodes) > 1 or judged.result != "n/a" else None,
            )
        )
    weight = sum(c.weight for c in checks if c.result not in ("unknown", "n/a"))
    earned = sum(c.points for c in checks)
    value = round(100.0 * earned / weight, 1) if weight else 0.0
    grade = grade_of(value)
    capped = None
    by_id = {c.id: c for c in checks}
    if by_id["certificate"].result == "fail":
        capped, grade = "the certificate fails (or HTTPS is not served)", "F"
    elif by_id["tls_protocols"].result == "fail" and _cap(grade, "C") != grade:
        capped, grade = "TLS 1.0 or 1.1 is offered", _cap(grade, "C")
    return ScoreCard(
        domain=seen.domain,
        score=value,
        grade=grade,
        capped=capped,
        checks=checks,
        nodes=[n.node for n in seen.nodes],
        evaluated_at=seen.at,
    )


def told(card: ScoreCard) -> bool:
    """Whether the probes judged anything (the WAF mode is the config's, not seen): a card of
    nodes that did not answer at all says nothing about the domain."""
    return any(c.result not in ("unknown", "n/a") for c in card.checks if c.id != "waf")


def failing(card: ScoreCard) -> list[str]:
    return [c.id for c in card.checks if c.result in ("fail", "partial")]
