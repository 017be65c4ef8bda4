"""Background certificate orders (``POST /ssl/{domain}?wait=false``): what runs one, for the
API and again on another replica, and the runner job that resumes the orphans.

The orders and their claims live in the database (``edgeplane.certificates.acme.progress``).
``Orders`` is the API's handle: it writes an order, claims it for this process and runs it in
a thread. ``Resumer`` is the runner job ("certificate orders"): each pass it reads the open
orders, picks the orphans (``progress.orphaned``: a run whose heartbeat stopped, an order no
one claimed), claims each with a compare-and-set (of replicas racing, one wins) and runs it
again from the start: the ACME client makes a new order, and the half-done one of the dead
replica is abandoned at the CA. An order claimed ``MAX_ATTEMPTS`` times is given up with an
error. A resumed run acts as the user who ordered it, checked again: a revoked token ends it.
The stored request never holds key material (only ACME and internal orders run here). The
same job removes, once a minute, the orders ended an hour ago and the challenge answers an
order that died left at the edge (older than ``CHALLENGE_KEEP_S``).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from edgeplane.certificates import internal
from edgeplane.certificates.acme import challenges as acme_challenges
from edgeplane.certificates.acme import orders as acme_orders
from edgeplane.certificates.acme import progress
from edgeplane.certificates.acme.client import AcmeError
from edgeplane.certificates.acme.progress import Claimed, OrderStatus, Say, Work
from edgeplane.errors import Forbidden, InvalidInput, UpstreamFailed
from edgeplane.model.certificates import CertificateIssued, CertificateRequest
from edgeplane.model.enums import Role
from edgeplane.services import access
from edgeplane.services.leases import new_holder_id
from edgeplane.settings import Settings
from edgeplane.store.actor import LOCAL, PLATFORM_PROJECT, Actor
from edgeplane.store.db import Database
from edgeplane.store.tables import AcmeChallengeRow, TokenRow, utcnow

log = logging.getLogger("edgeplane.certificates")

BACKGROUND_TYPES = ("lets_encrypt", "internal")
RETENTION_EVERY_S = 60.0
# an order takes at most about two minutes (the publication wait, then the CA's poll timeout)
CHALLENGE_KEEP_S = 3600.0


# Issuing (the same for the synchronous POST and a background run) -----------------------


def acme(
    db: Database,
    settings: Settings,
    actor: Actor,
    project: str,
    domain: str,
    request: CertificateRequest,
    say: Say | None = None,
) -> CertificateIssued:
    """An ACME order; the CA's and the configuration's failures as ``UpstreamFailed``."""
    try:
        return acme_orders.provision(db, actor, project, domain, request, settings, progress=say)
    except AcmeError as exc:
        raise UpstreamFailed(str(exc), reason=exc.status) from None
    except ValueError as exc:  # the configured directory is not a URL nor a known name
        raise UpstreamFailed(f"ACME is not configured: {exc}", reason="refused") from None


def internal_order(
    db: Database,
    actor: Actor,
    project: str,
    domain: str,
    request: CertificateRequest,
    say: Say | None = None,
) -> CertificateIssued:
    tell = say or (lambda message: None)
    tell("issuing from the internal CA")
    with db.transaction(actor, project) as tx:
        access.require_project(tx)
        done = internal.provision(tx, domain, auto_renew=request.auto_renew)
    tell(f"issued {done.certificate.id}, valid until {done.expires_at:%Y-%m-%d %H:%M} UTC")
    return done


def issue(
    db: Database,
    settings: Settings,
    actor: Actor,
    project: str,
    domain: str,
    request: CertificateRequest,
    say: Say | None = None,
) -> CertificateIssued:
    """An order of a background kind (ACME or internal) for a verified domain."""
    if request.type == "internal":
        return internal_order(db, actor, project, domain, request, say)
    if request.type == "lets_encrypt":
        return acme(db, settings, actor, project, domain, request, say)
    raise InvalidInput.at("type", f"a {request.type} certificate is not ordered in the background")


# What is stored of an order, and back ---------------------------------------------------


def request_doc(request: CertificateRequest) -> dict[str, Any]:
    """The request as stored with the order: never key material."""
    return request.model_dump(mode="json", exclude={"cert_data", "key_data"})


def actor_doc(actor: Actor) -> dict[str, Any]:
    return {
        "name": actor.name,
        "roles": {project: role.value for project, role in actor.roles.items()},
        "token_id": actor.token_id,
        "local": actor.local,
    }


def actor_from(doc: dict[str, Any]) -> Actor:
    return Actor(
        name=str(doc.get("name") or "unknown"),
        roles={str(p): Role(r) for p, r in dict(doc.get("roles") or {}).items()},
        token_id=doc.get("token_id"),
        local=bool(doc.get("local")),
    )


def current_actor(db: Database, doc: dict[str, Any]) -> Actor:
    """The actor of a stored order as of now: its token must still be valid, its roles are
    read again (a resumed run must not outlive a revocation)."""
    actor = actor_from(doc)
    if actor.token_id is None:
        return actor
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        row = tx.session.scalar(select(TokenRow).where(TokenRow.id == actor.token_id))
        if row is None or row.revoked_at is not None:
            raise Forbidden("the token that placed this order has been revoked since")
        roles = access.token_roles(tx, actor.token_id)
    return Actor(name=actor.name, roles=roles, token_id=actor.token_id, local=actor.local)


def work_for(db: Database, settings: Settings) -> Work:
    """What a claim runs: the stored request, as the stored actor (checked again when the
    order is resumed)."""

    def work(claimed: Claimed, say: Say) -> CertificateIssued:
        first = claimed.attempts == 1
        actor = actor_from(claimed.actor) if first else current_actor(db, claimed.actor)
        request = CertificateRequest.model_validate(claimed.request)
        return issue(db, settings, actor, claimed.project, claimed.domain, request, say)

    return work


# The API's handle -----------------------------------------------------------------------


class Orders:
    """Starts background orders for one process of the API (``app.state.acme_orders``)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        runner: str | None = None,
        work: Work | None = None,
        heartbeat_s: float = progress.HEARTBEAT_S,
    ) -> None:
        self.db = db
        self.runner = runner or new_holder_id()  # this process, as the claims name it
        self.work = work or work_for(db, settings)
        self.heartbeat_s = heartbeat_s

    def start(
        self, actor: Actor, project: str, domain: str, request: CertificateRequest
    ) -> OrderStatus:
        """Write the order, claim it here and run it in a thread; the order as it starts."""
        if request.type not in BACKGROUND_TYPES:
            raise InvalidInput.at(
                "type", f"a {request.type} certificate is not ordered in the background"
            )
        return progress.start(
            self.db,
            self.runner,
            project,
            domain,
            request_doc(request),
            actor_doc(actor),
            self.work,
            heartbeat_s=self.heartbeat_s,
        )


# The runner job -------------------------------------------------------------------------


def resumed_message(attempt: int, max_attempts: int, *, claimed_before: bool) -> str:
    if claimed_before:
        return f"{progress.RESUMED}; attempt {attempt} of {max_attempts}"
    return (
        "started by another replica (the one that took it did not start it); "
        f"attempt {attempt} of {max_attempts}"
    )


def forget_stale_challenges(db: Database, older_than_s: float = CHALLENGE_KEEP_S) -> int:
    """Remove the challenge answers published more than ``older_than_s`` ago: those of runs
    that died (or were superseded) before they could remove their own; how many."""
    before = utcnow() - timedelta(seconds=older_than_s)
    query = select(AcmeChallengeRow.id).where(AcmeChallengeRow.created_at < before)
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        if not list(tx.session.scalars(query.limit(1))):
            return 0
    with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
        removed = acme_challenges.remove(tx, list(tx.session.scalars(query)))
    if removed:
        log.warning("%d ACME challenge answers left by orders that died were removed", removed)
    return removed


class Resumer:
    """The "certificate orders" job: claims and runs again the orders whose run is gone,
    gives up those claimed ``max_attempts`` times; once a minute, deletes the orders ended
    ``progress.KEEP_S`` ago and the challenge answers dead runs left (``CHALLENGE_KEEP_S``)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        runner: str | None = None,
        work: Work | None = None,
        stale_s: float = progress.STALE_S,
        queued_s: float = progress.QUEUED_S,
        max_attempts: int = progress.MAX_ATTEMPTS,
        heartbeat_s: float = progress.HEARTBEAT_S,
    ) -> None:
        self.db = db
        self.runner = runner or new_holder_id()
        self.work = work or work_for(db, settings)
        self.stale_s, self.queued_s = stale_s, queued_s
        self.max_attempts = max_attempts
        self.heartbeat_s = heartbeat_s
        self.threads: list[threading.Thread] = []  # the runs started (tests join them)
        self._forgotten_at: float | None = None

    def __call__(self, stopping: threading.Event | None = None) -> int:
        """One pass: the number of orders claimed and started again."""
        started = 0
        orphans = progress.orphaned(
            progress.open_orders(self.db),
            utcnow(),
            stale_s=self.stale_s,
            queued_s=self.queued_s,
            max_attempts=self.max_attempts,
        )
        for orphan in orphans:
            if stopping is not None and stopping.is_set():
                break
            if orphan.action == "give_up":
                reason = progress.given_up_reason(orphan.attempts)
                if progress.give_up(self.db, orphan, reason, beaten_before=self._cutoff()):
                    log.warning("certificate order %s: %s", orphan.id, reason)
                continue
            claimed = self.claim(orphan)
            if claimed is not None:
                log.warning(
                    "certificate order %s resumed here (attempt %d; it was on %s)",
                    orphan.id,
                    claimed.attempts,
                    orphan.runner or "no replica",
                )
                self.threads.append(
                    progress.run(self.db, claimed, self.work, heartbeat_s=self.heartbeat_s)
                )
                started += 1
        self.threads = [t for t in self.threads if t.is_alive()]
        now = time.monotonic()
        if self._forgotten_at is None or now - self._forgotten_at >= RETENTION_EVERY_S:
            progress.forget_old(self.db)
            forget_stale_challenges(self.db)
            self._forgotten_at = now
        return started

    def claim(self, orphan: progress.Orphan) -> Claimed | None:
        """Take ``orphan`` for this process if it is still the claim seen (None: another
        replica was first, or it moved on)."""
        message = resumed_message(
            orphan.attempts + 1, self.max_attempts, claimed_before=orphan.runner is not None
        )
        return progress.claim(
            self.db,
            orphan.id,
            self.runner,
            seen_runner=orphan.runner,
            seen_attempts=orphan.attempts,
            beaten_before=self._cutoff(),
            message=message,
        )

    def _cutoff(self) -> datetime:
        """A claim's heartbeat must still be older than this when the claim is taken."""
        return utcnow() - timedelta(seconds=self.stale_s)
