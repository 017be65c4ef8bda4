"""Ownership verification of domains: the bookkeeping around the checks of
``edgeplane.verification``.

A check does network I/O, so it never runs inside a database transaction: ``begin`` reads
what to check (in a read transaction), ``run`` checks (DNS queries, an HTTP request, an
email), ``finish`` records the outcome (in a write transaction). Methods:

- ``dns``: the TXT ``_edgeplane-challenge.<domain>`` holds the token at every name server the
  domain is delegated to, asked directly (the world's view, not Edgeplane's own zone
  unless the domain is delegated to the edge nodes);
- ``file``: every address of the domain serves the token at
  ``/.well-known/edgeplane-verification/<token>``;
- ``email``: a code mailed to the domain's admin addresses is given back (``code``).

Tokens expire (``verification_token_ttl_s``); an expired token is replaced and the check
fails, saying so. Verified domains are re-checked every ``reverify_interval_s`` with the
method that verified them; after ``reverify_failures`` failures in a row the domain is
unverified (no longer served by the edge).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from edgeplane.errors import InvalidInput
from edgeplane.model.domains import VerificationResult, VerifyRequest
from edgeplane.model.enums import Role
from edgeplane.services import domains
from edgeplane.settings import Settings
from edgeplane.store import domains as domain_rows
from edgeplane.store.actor import Actor
from edgeplane.store.db import Database, Tx
from edgeplane.store.tables import DomainRow, utcnow
from edgeplane.verification.resolve import Resolver
from edgeplane.verification.result import CheckResult

KIND = "domain-verification"


@dataclass(frozen=True)
class Attempt:
    domain: str
    method: str
    token: str
    expired: bool
    code: str | None = None  # email: the code given back
    email_hash: str | None = None
    email_salt: str | None = None
    email_expired: bool = False
    reserved: bool = False


@dataclass(frozen=True)
class Outcome:
    result: CheckResult
    sent_code_hash: tuple[str, str] | None = None  # (salt, hash) of a code just mailed


def parse_hostport(text: str, default_port: int = 53) -> tuple[str, int]:
    value = text.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest.lstrip(":")
        return host, int(port) if port else default_port
    if value.count(":") == 1:
        host, port = value.split(":")
        return host, int(port)
    return value, default_port


def resolver_for(settings: Settings) -> Resolver:
    return Resolver(
        [parse_hostport(r) for r in settings.dns_resolvers],
        timeout_s=settings.verify_timeout_s,
        ns_port=settings.verify_ns_port,
    )


def _expired(value: object, now: datetime) -> bool:
    if not value:
        return False
    return datetime.fromisoformat(str(value)) <= now


def begin(tx: Tx, domain: str, request: VerifyRequest) -> Attempt:
    tx.actor.require(tx.project, Role.EDITOR)
    row = domain_rows.get_row(tx, domain)
    v = row.verification or {}
    now = utcnow()
    if (v.get("method") == domain_rows.RESERVED) and row.status == domain_rows.ACTIVE:
        return Attempt(row.name, request.method, str(v.get("token")), False, reserved=True)
    if request.method != "email" and request.code is not None:
        raise InvalidInput.at("code", "only the email method takes a code")
    return Attempt(
        domain=row.name,
        method=request.method,
        token=str(v.get("token") or ""),
        expired=_expired(v.get("expires_at"), now),
        code=request.code,
        email_hash=v.get("email_hash"),
        email_salt=v.get("email_salt"),
        email_expired=_expired(v.get("email_expires_at"), now),
    )


def run(attempt: Attempt, settings: Settings) -> Outcome:
    """The check itself: network I/O, outside any transaction."""
    if attempt.reserved:
        return Outcome(CheckResult(True, f"{attempt.domain} is a reserved name: nothing to verify"))
    if attempt.expired:
        return Outcome(
            CheckResult(
                False,
                f"the verification token of {attempt.domain} expired; a new token was issued: "
                "publish it and verify again",
            )
        )
    if attempt.method == "dns":
        from edgeplane.verification.dns_txt import check_dns_txt

        return Outcome(check_dns_txt(attempt.domain, attempt.token, resolver_for(settings)))
    if attempt.method == "file":
        from edgeplane.verification.http_file import check_http_file

        return Outcome(
            check_http_file(
                attempt.domain,
                attempt.token,
                resolver_for(settings),
                port=settings.verify_http_port,
                timeout_s=max(settings.verify_timeout_s, 1.0),
            )
        )
    from edgeplane.verification import email_code

    if attempt.code is None:
        smtp = email_code.SmtpSettings(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_sender,
            starttls=settings.smtp_starttls,
            username=settings.smtp_username,
            password=settings.smtp_password,
        )
        code = email_code.new_code()
        salt = email_code.new_salt()
        minutes = max(1, int(settings.email_code_ttl_s // 60))
        try:
            sent = email_code.send_code(attempt.domain, code, smtp, valid_minutes=minutes)
        except email_code.SmtpError as exc:
            return Outcome(CheckResult(False, f"the code could not be sent: {exc}"))
        return Outcome(
            CheckResult(
                False,
                f"a code was sent to {', '.join(sent)}; verify again with it "
                f"(valid {minutes} minutes)",
                tuple(sent),
            ),
            sent_code_hash=(salt, email_code.hash_code(code, salt)),
        )
    if not attempt.email_hash or not attempt.email_salt:
        return Outcome(CheckResult(False, "no code was sent yet: verify by email without a code"))
    if attempt.email_expired:
        return Outcome(CheckResult(False, "the code expired; ask for a new one"))
    if email_code.code_matches(attempt.code, attempt.email_salt, attempt.email_hash):
        return Outcome(CheckResult(True, "the code sent to the domain's admin addresses matched"))
    return Outcome(CheckResult(False, "the code does not match the one sent"))


def finish(tx: Tx, attempt: Attempt, outcome: Outcome, settings: Settings) -> VerificationResult:
    row = domain_rows.get_row(tx, attempt.domain, lock=True)
    before = domains.verification_model(row).model_dump(mode="json", exclude={"dns_record"})
    now = utcnow()
    result = outcome.result
    v = dict(row.verification or {})
    if attempt.reserved:
        pass
    elif result.ok:
        domains.mark_verified(tx, row, attempt.method, result.reason)
        v = dict(row.verification or {})
        v.pop("email_hash", None)
        v.pop("email_salt", None)
    else:
        v.update(result=result.reason, checked_at=now.isoformat())
        if row.status != domain_rows.ACTIVE:
            # A verified domain keeps the method that verified it (its re-checks use it).
            v["method"] = attempt.method
            v["failed"] = True
        if attempt.expired:
            v["token"] = domains.new_token()
            v["expires_at"] = (
                now + timedelta(seconds=settings.verification_token_ttl_s)
            ).isoformat()
            row.zone_revision = tx.next_revision()
        if outcome.sent_code_hash is not None:
            salt, hashed = outcome.sent_code_hash
            v.update(
                email_salt=salt,
                email_hash=hashed,
                email_sent_at=now.isoformat(),
                email_expires_at=(now + timedelta(seconds=settings.email_code_ttl_s)).isoformat(),
            )
            v.pop("failed", None)
    if not attempt.reserved:
        row.verification = v
        row.updated_at = now
    after = domains.verification_model(row).model_dump(mode="json", exclude={"dns_record"})
    if after != before:
        tx.record("verify", domains.KIND, row.name, before, after)
    return VerificationResult(
        verified=row.status == domain_rows.ACTIVE and (result.ok or attempt.reserved),
        method=attempt.method,
        reason=result.reason,
        dns_records=[domains.challenge_record(row)],
        domain_config=domains.to_model(tx, row),
    )


def verify(
    db: Database,
    actor: Actor,
    project: str,
    domain: str,
    request: VerifyRequest,
    settings: Settings,
) -> VerificationResult:
    """The three steps, for callers holding a database (the API)."""
    with db.read(actor, project) as tx:
        attempt = begin(tx, domain, request)
    outcome = run(attempt, settings)
    with db.transaction(actor, project) as tx:
        return finish(tx, attempt, outcome, settings)


# Periodic re-checks ------------------------------------------------------------------------


def due_for_recheck(tx: Tx, settings: Settings, now: datetime) -> list[tuple[str, str, str]]:
    """(project, domain, method) of verified domains whose last check is old enough."""
    out: list[tuple[str, str, str]] = []
    limit = now - timedelta(seconds=settings.reverify_interval_s)
    for row in tx.session.scalars(select(DomainRow).where(DomainRow.status == domain_rows.ACTIVE)):
        v = row.verification or {}
        method = v.get("method")
        if method not in ("dns", "file"):
            continue  # reserved names need nothing; an email code cannot be asked again
        checked = v.get("checked_at")
        if checked and datetime.fromisoformat(str(checked)) > limit:
            continue
        out.append((row.project_id, row.name, str(method)))
    return out


def record_recheck(tx: Tx, domain: str, result: CheckResult, settings: Settings) -> None:
    row = tx.session.get(DomainRow, domain, with_for_update=True)
    if row is None or row.status != domain_rows.ACTIVE:
        return
    v = dict(row.verification or {})
    v["checked_at"] = utcnow().isoformat()
    v["result"] = result.reason
    if result.ok:
        v["failures"] = 0
        row.verification = v
        return
    failures = int(v.get("failures") or 0) + 1
    v["failures"] = failures
    row.verification = v
    if failures >= settings.reverify_failures:
        before = {"status": row.status}
        row.status = domain_rows.PENDING
        v["failed"] = True
        row.verification = dict(v)
        after = {"status": row.status, "reason": result.reason}
        tx.record("unverify", domains.KIND, row.name, before, after)
