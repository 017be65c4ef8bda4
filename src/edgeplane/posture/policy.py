"""Compliance: a project's policy (requirements of the catalogue,
``edgeplane.model.security_score.REQUIREMENTS``) evaluated for a domain from its newest score
card. Pure: the evidence is what the score's checks saw from outside, plus the WAF mode of
the project's CDN config (which the ``waf`` check carries).

A requirement is ``unknown`` when the check it reads could not be told (no score yet, the
node did not answer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from edgeplane.model.security_score import Check, Requirement, ScoreCard

Status = Literal["pass", "fail", "unknown"]


@dataclass(frozen=True)
class Outcome:
    id: str
    value: int | str | None
    status: Status
    evidence: str
    details: dict[str, Any] = field(default_factory=dict)


def _told(check: Check | None) -> bool:
    return check is not None and check.result not in ("unknown",)


def _need(checks: dict[str, Check], check_id: str) -> Check | None:
    check = checks.get(check_id)
    return check if _told(check) else None


def _ok(cond: bool) -> Status:
    return "pass" if cond else "fail"


def evaluate_one(requirement: Requirement, card: ScoreCard | None) -> Outcome:
    rid, value = requirement.id, requirement.value
    if card is None:
        return Outcome(rid, value, "unknown", "no security score yet")
    checks = {c.id: c for c in card.checks}

    def out(status: Status, evidence: str, details: dict[str, Any] | None = None) -> Outcome:
        return Outcome(rid, value, status, evidence, dict(details or {}))

    def unknown(check_id: str) -> Outcome:
        check = checks.get(check_id)
        why = (check.evidence.get("error") if check else None) or "not seen"
        return out("unknown", f"{check_id} could not be told: {why}")

    if rid == "min_score":
        return out(_ok(card.score >= float(value or 0)), f"score {card.score:g} ({card.grade})",
                   {"score": card.score})  # fmt: skip
    if rid == "https_only":
        redirect, cert = _need(checks, "https_redirect"), _need(checks, "certificate")
        if redirect is None or cert is None:
            return unknown("https_redirect" if redirect is None else "certificate")
        if redirect.result == "n/a":
            served = cert.result != "fail" or cert.evidence.get("days_left") is not None
            return out(_ok(served), "no plain HTTP port; HTTPS " + ("served" if served else
                       "not served"))  # fmt: skip
        ok = redirect.result == "pass" and cert.evidence.get("days_left") is not None
        ev = redirect.evidence
        return out(_ok(ok), f"HTTP answers {ev.get('status')} {ev.get('location') or ''}".strip(),
                   ev)  # fmt: skip
    if rid in ("hsts_min_age", "hsts_include_subdomains"):
        check = _need(checks, "hsts")
        if check is None:
            return unknown("hsts")
        header = check.evidence.get("header")
        if header is None:
            return out("fail", "no Strict-Transport-Security header")
        if rid == "hsts_min_age":
            age = int(check.evidence.get("max_age") or 0)
            return out(_ok(age >= int(value or 0)), f"max-age={age}", {"max_age": age})
        sub = bool(check.evidence.get("include_subdomains"))
        return out(_ok(sub), f"Strict-Transport-Security: {header}")
    if rid == "tls_min_version":
        check = _need(checks, "tls_protocols")
        if check is None:
            return unknown("tls_protocols")
        offered = list(check.evidence.get("offered") or [])
        order = ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]
        floor = order.index(f"TLSv{value}")
        below = [p for p in offered if p in order and order.index(p) < floor]
        text = "offered: " + (", ".join(offered) or "none")
        return out(_ok(bool(offered) and not below), text, {"offered": offered, "below": below})
    simple = {
        "strong_ciphers": "tls_ciphers",
        "certificate_valid": "certificate",
        "ocsp_stapling": "ocsp_stapling",
        "caa_present": "caa",
        "dnssec_on": "dnssec",
        "security_headers": "security_headers",
        "waf_blocking": "waf",
    }
    if rid in simple:
        check = _need(checks, simple[rid])
        if check is None:
            return unknown(simple[rid])
        if rid == "waf_blocking":
            mode = check.evidence.get("mode", "off")
            return out(_ok(mode == "block"), f"WAF mode {mode}", {"mode": mode})
        if rid == "dnssec_on":
            signed = bool(check.evidence.get("dnskey") and check.evidence.get("signed"))
            return out(_ok(signed), "zone signed" if signed else "zone not signed",
                       check.evidence)  # fmt: skip
        if rid == "certificate_valid":
            return out(_ok(check.result != "fail"), check.evidence.get("error") or
                       f"trusted, {check.evidence.get('days_left'):g} days left")  # fmt: skip
        if rid == "ocsp_stapling" and check.result == "n/a":
            return out("pass", "the certificate names no OCSP responder (nothing to staple)")
        passed = check.result == "pass"
        return out(_ok(passed), check.advice if not passed else f"{check.name}: pass",
                   check.evidence)  # fmt: skip
    if rid == "no_expiring_certs":
        check = _need(checks, "certificate")
        if check is None:
            return unknown("certificate")
        days = check.evidence.get("days_left")
        if days is None:
            return out("fail", "no certificate served")
        return out(_ok(float(days) >= float(value or 0)), f"{days:g} days left",
                   {"days_left": days})  # fmt: skip
    raise ValueError(f"unknown requirement {rid!r}")  # pragma: no cover - Literal guards it


def evaluate(requirements: list[Requirement], card: ScoreCard | None) -> list[Outcome]:
    """Every requirement of a policy for one domain, in the policy's order."""
    return [evaluate_one(r, card) for r in requirements]
