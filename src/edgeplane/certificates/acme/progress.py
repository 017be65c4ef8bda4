"""Certificate orders that run in the background, kept in the database with their progress.

``POST /ssl/{domain}?wait=false`` writes the order (``cert_orders``, status ``queued``, the
request and who asked), the replica that took the POST claims it and runs it in a thread, and
answers 202 with the order's id at once; ``GET /ssl/{domain}/orders/{id}`` reads the row, so
any replica sharing the database answers it. The order's progress messages (those of the ACME
client: order created, challenges published, valid, finalized, downloaded) are appended to the
row as they come, each in a short transaction of its own (never one held across network I/O),
and the end writes the certificate or the error. Ended orders are deleted an hour later.

**Claims.** A run belongs to one claim: ``runner`` (the claiming process's id) and
``attempts`` (raised by each claim). The thread refreshes ``heartbeat_at`` every
``HEARTBEAT_S`` while it runs (a progress message counts). An order whose heartbeat is older
than ``STALE_S``, or which stayed ``queued`` for ``QUEUED_S``, is an orphan (``orphaned``,
pure): the runner job claims it with a compare-and-set UPDATE that also checks the heartbeat
is still old (of replicas racing, one wins; a run that beat meanwhile keeps its order) and
runs it again from the start; after ``MAX_ATTEMPTS`` claims it is given up with an error
(``edgeplane.services.cert_orders``).

**Fencing.** A run that was only slow (stalled past ``STALE_S``) may still be going when
another replica claims its order. Every write transaction of a run's thread (the certificate
it stores, the challenges it publishes, its progress) checks just before it commits that the
claim is still the order's (``check_claim``, a ``Database.before_commit`` hook; on
PostgreSQL it locks the order's row, so a claim waits for the commit in hand); otherwise
nothing is written and the run stops (``Superseded``). The heartbeat is conditional the same
way. What a superseded run published at the edge stays until the challenge retention of the
runner job removes it.
"""

from __future__ import annotations

import contextvars
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from edgeplane.errors import EdgeplaneError, NotFound
from edgeplane.model.certificates import CertificateIssued
from edgeplane.model.common import Output
from edgeplane.store.actor import LOCAL, PLATFORM_PROJECT
from edgeplane.store.db import Database
from edgeplane.store.ha_tables import CertOrderRow
from edgeplane.store.tables import utcnow

log = logging.getLogger("edgeplane.certificates")

KEEP_S = 3600.0  # an ended order is kept this long for its polls
HEARTBEAT_S = 1.0  # a running order's heartbeat refresh
STALE_S = 4.0  # a running order whose heartbeat is older is resumed elsewhere
QUEUED_S = 4.0  # a queued order nobody claimed for this long is resumed
MAX_ATTEMPTS = 3  # claims of one order before it is given up
FINISH_RETRY_S = 30.0  # how long the end of a run is retried while the database is away

ACCEPTED = "order accepted"
RESUMED = "resumed by another replica (the previous one stopped answering)"
OPEN = ("queued", "running")


class OrderEvent(Output):
    at: datetime
    message: str


class OrderStatus(Output):
    id: str
    domain: str
    status: Literal["running", "valid", "failed"]  # a queued order reads as running
    events: list[OrderEvent]
    result: CertificateIssued | None = None
    error: str | None = None
    error_status: int | None = None  # the HTTP status the synchronous call would have had


class Superseded(Exception):
    """The order was claimed by another run (or ended) meanwhile: this run stops here, and
    what it was about to commit is not written."""


@dataclass(frozen=True)
class Claimed:
    """One claim of an order: what its run needs, and the claim its writes are fenced by."""

    id: str
    project: str
    domain: str
    request: dict[str, Any]
    actor: dict[str, Any]
    runner: str
    attempts: int  # this claim's number (1: the first run)


Say = Callable[[str], None]
Work = Callable[[Claimed, Say], CertificateIssued]


# The resume decision (pure) --------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """An open order as the resume pass reads it."""

    id: str
    status: str
    runner: str | None
    attempts: int
    created_at: datetime
    heartbeat_at: datetime | None


@dataclass(frozen=True)
class Orphan:
    """An order to claim again (``resume``) or to end (``give_up``), with the claim seen,
    which the compare-and-set takes it from."""

    id: str
    runner: str | None
    attempts: int
    action: Literal["resume", "give_up"]


def orphaned(
    orders: Iterable[Seen],
    now: datetime,
    *,
    stale_s: float = STALE_S,
    queued_s: float = QUEUED_S,
    max_attempts: int = MAX_ATTEMPTS,
) -> list[Orphan]:
    """The open orders whose run is gone: ``running`` with a heartbeat older than
    ``stale_s``, or ``queued`` (never claimed) for more than ``queued_s``. Each is resumed,
    or given up once it was claimed ``max_attempts`` times. Oldest first."""
    out: list[Orphan] = []
    for seen in sorted(orders, key=lambda s: (s.created_at, s.id)):
        if seen.status == "queued":
            stale = now - seen.created_at > timedelta(seconds=queued_s)
        elif seen.status == "running":
            last = seen.heartbeat_at or seen.created_at
            stale = now - last > timedelta(seconds=stale_s)
        else:
            continue
        if stale:
            action: Literal["resume", "give_up"] = (
                "give_up" if seen.attempts >= max_attempts else "resume"
            )
            out.append(Orphan(seen.id, seen.runner, seen.attempts, action))
    return out


def given_up_reason(attempts: int) -> str:
    return (
        f"the order was given up after {attempts} attempts: the replica running it stopped "
        "answering each time; order the certificate again"
    )


# The rows (I/O: each function one short transaction) --------------------------------------


def _event(message: str) -> dict[str, str]:
    return {"at": utcnow().isoformat(), "message": message}


def new_order_id() -> str:
    return f"order-{secrets.token_hex(6)}"


def create(
    db: Database,
    project: str,
    domain: str,
    request: dict[str, Any],
    actor: dict[str, Any],
    *,
    keep_s: float = KEEP_S,
) -> OrderStatus:
    """Write a new order, ``queued``; as the POST answers it. Orders ended more than
    ``keep_s`` ago go."""
    order_id = new_order_id()
    now = utcnow()
    first = _event(ACCEPTED)
    with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
        _forget(tx.session, now - timedelta(seconds=keep_s))
        tx.session.add(
            CertOrderRow(
                id=order_id,
                project_id=project,
                domain=domain,
                status="queued",
                request=request,
                actor=actor,
                events=[first],
                attempts=0,
                created_at=now,
            )
        )
    return OrderStatus(
        id=order_id, domain=domain, status="running", events=[OrderEvent.model_validate(first)]
    )


def claim(
    db: Database,
    order_id: str,
    runner: str,
    *,
    seen_runner: str | None,
    seen_attempts: int,
    beaten_before: datetime | None = None,
    message: str | None = None,
) -> Claimed | None:
    """Take the order for ``runner`` if it is still open and still the claim seen
    (``seen_runner``, ``seen_attempts``) and, with ``beaten_before``, its heartbeat (if any)
    is still older than that: status ``running``, ``attempts`` + 1, a fresh heartbeat,
    ``message`` appended. The UPDATE's condition decides: of replicas racing for the same
    order, one wins; the others get None."""
    with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
        row = _locked(tx.session, order_id)
        if row is None:
            return None
        events = list(row.events) + ([_event(message)] if message else [])
        done = tx.session.execute(
            update(CertOrderRow)
            .where(_seen(order_id, seen_runner, seen_attempts, beaten_before))
            .values(
                status="running",
                runner=runner,
                attempts=seen_attempts + 1,
                heartbeat_at=utcnow(),
                events=events,
            )
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            return None
        return Claimed(
            id=row.id,
            project=row.project_id,
            domain=row.domain,
            request=dict(row.request),
            actor=dict(row.actor),
            runner=runner,
            attempts=seen_attempts + 1,
        )


def _seen(order_id: str, runner: str | None, attempts: int, beaten_before: datetime | None) -> Any:
    """The compare of a compare-and-set: the order open, with the claim seen, and (with
    ``beaten_before``) no heartbeat since."""
    condition = (
        (CertOrderRow.id == order_id)
        & CertOrderRow.status.in_(OPEN)
        & (CertOrderRow.runner.is_(None) if runner is None else CertOrderRow.runner == runner)
        & (CertOrderRow.attempts == attempts)
    )
    if beaten_before is not None:
        condition = condition & (
            CertOrderRow.heartbeat_at.is_(None) | (CertOrderRow.heartbeat_at < beaten_before)
        )
    return condition


def _locked(session: Session, order_id: str) -> CertOrderRow | None:
    """The row, locked against concurrent writers until the transaction ends (PostgreSQL;
    a write transaction on SQLite holds the database's write lock already)."""
    query = select(CertOrderRow).where(CertOrderRow.id == order_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return session.scalars(query).first()


def _ours(claimed: Claimed) -> Any:
    return (
        (CertOrderRow.id == claimed.id)
        & (CertOrderRow.status == "running")
        & (CertOrderRow.runner == claimed.runner)
        & (CertOrderRow.attempts == claimed.attempts)
    )


def append(db: Database, claimed: Claimed, message: str) -> bool:
    """Append a progress message (and refresh the heartbeat); False when the claim is no
    longer the order's."""
    with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
        row = _locked(tx.session, claimed.id)
        if row is None:
            return False
        done = tx.session.execute(
            update(CertOrderRow)
            .where(_ours(claimed))
            .values(events=[*row.events, _event(message)], heartbeat_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return bool(done.rowcount)  # type: ignore[attr-defined]


def beat(db: Database, claimed: Claimed) -> bool:
    """Refresh the heartbeat; False when the claim is no longer the order's."""
    with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
        done = tx.session.execute(
            update(CertOrderRow)
            .where(_ours(claimed))
            .values(heartbeat_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return bool(done.rowcount)  # type: ignore[attr-defined]


def finish(
    db: Database,
    claimed: Claimed,
    *,
    result: CertificateIssued | None = None,
    error: str | None = None,
    error_status: int | None = None,
) -> bool:
    """End the run: ``valid`` with ``result``, else ``failed`` with ``error``; False when the
    claim is no longer the order's (nothing written)."""
    values: dict[str, Any] = {"ended_at": utcnow(), "heartbeat_at": utcnow()}
    if result is not None:
        values.update(status="valid", result=result.model_dump(mode="json"))
    else:
        values.update(status="failed", error=error or "failed", error_status=error_status or 500)
    with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
        done = tx.session.execute(
            update(CertOrderRow)
            .where(_ours(claimed))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return bool(done.rowcount)  # type: ignore[attr-defined]


def give_up(
    db: Database,
    orphan: Orphan,
    reason: str,
    status: int = 503,
    *,
    beaten_before: datetime | None = None,
) -> bool:
    """End an orphan ``failed`` with ``reason``, if it is still the claim seen (and, with
    ``beaten_before``, its heartbeat still older)."""
    with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
        row = _locked(tx.session, orphan.id)
        if row is None:
            return False
        done = tx.session.execute(
            update(CertOrderRow)
            .where(_seen(orphan.id, orphan.runner, orphan.attempts, beaten_before))
            .values(
                status="failed",
                error=reason,
                error_status=status,
                ended_at=utcnow(),
                events=[*row.events, _event(reason)],
            )
            .execution_options(synchronize_session=False)
        )
        return bool(done.rowcount)  # type: ignore[attr-defined]


def open_orders(db: Database) -> list[Seen]:
    """The orders not ended yet, as the resume pass reads them."""
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        rows = tx.session.execute(
            select(
                CertOrderRow.id,
                CertOrderRow.status,
                CertOrderRow.runner,
                CertOrderRow.attempts,
                CertOrderRow.created_at,
                CertOrderRow.heartbeat_at,
            ).where(CertOrderRow.status.in_(OPEN))
        ).all()
    return [Seen(*row) for row in rows]


def forget_old(db: Database, keep_s: float = KEEP_S) -> int:
    """Delete the orders ended more than ``keep_s`` ago; how many."""
    with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
        return _forget(tx.session, utcnow() - timedelta(seconds=keep_s))


def _forget(session: Session, before: datetime) -> int:
    done = session.execute(
        delete(CertOrderRow)
        .where(CertOrderRow.ended_at.is_not(None), CertOrderRow.ended_at < before)
        .execution_options(synchronize_session=False)
    )
    return int(done.rowcount)  # type: ignore[attr-defined]


def view(row: CertOrderRow) -> OrderStatus:
    state: Literal["running", "valid", "failed"] = "running"  # queued reads as running
    if row.status in ("valid", "failed"):
        state = "valid" if row.status == "valid" else "failed"
    return OrderStatus(
        id=row.id,
        domain=row.domain,
        status=state,
        events=[OrderEvent.model_validate(e) for e in row.events],
        result=CertificateIssued.model_validate(row.result) if row.result else None,
        error=row.error,
        error_status=row.error_status,
    )


def get(session: Session, project: str, domain: str, order_id: str) -> OrderStatus:
    """The order as stored: NotFound for an unknown id, or one of another project or domain."""
    row = session.get(CertOrderRow, order_id)
    if row is None or row.project_id != project or row.domain != domain:
        raise NotFound(f"order {order_id!r} not found for {domain!r}")
    return view(row)


# Running a claimed order ------------------------------------------------------------------


@dataclass(frozen=True)
class _Fence:
    claimed: Claimed
    lost: threading.Event


_FENCE: contextvars.ContextVar[_Fence | None] = contextvars.ContextVar("order", default=None)


def check_claim(session: Session) -> None:
    """``Database.before_commit`` hook: in a run's thread, refuse the commit (``Superseded``)
    when the run's claim is no longer its order's."""
    fence = _FENCE.get()
    if fence is None:
        return
    claimed = fence.claimed
    query = select(CertOrderRow.status, CertOrderRow.runner, CertOrderRow.attempts).where(
        CertOrderRow.id == claimed.id
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    row = session.execute(query).first()
    if row is None or tuple(row) != ("running", claimed.runner, claimed.attempts):
        fence.lost.set()
        raise Superseded(claimed.id)


def install(db: Database) -> None:
    """Make ``db``'s write transactions in a run's thread check the run's claim."""
    if check_claim not in db.before_commit:
        db.before_commit.append(check_claim)


def run(
    db: Database, claimed: Claimed, work: Work, *, heartbeat_s: float = HEARTBEAT_S
) -> threading.Thread:
    """Run ``work`` for the claim in a thread of its own (started, and returned), with a
    heartbeat beside it; its progress messages and its end go to the row while the claim is
    the order's. The thread runs outside any fence of the caller (a fresh context): the
    claim is its fence."""
    install(db)
    thread = threading.Thread(
        target=contextvars.Context().run,
        args=(_run, db, claimed, work, heartbeat_s),
        name=f"{claimed.id}#{claimed.attempts}",
        daemon=True,
    )
    thread.start()
    return thread


def _run(db: Database, claimed: Claimed, work: Work, heartbeat_s: float) -> None:
    lost = threading.Event()
    _FENCE.set(_Fence(claimed, lost))  # this thread's own context (``run``)
    done = threading.Event()
    last = [time.monotonic()]
    stopped = [False]

    def say(message: str) -> None:
        # Superseded is raised once: what the work says while it cleans up after it (the
        # challenges it published) must not cut the cleanup short.
        if stopped[0]:
            return
        kept = False
        if not lost.is_set():
            try:
                kept = append(db, claimed, message)
            except Superseded:
                kept = False
            except Exception:  # the database away: the message is lost, the order goes on
                log.warning("order %s: progress not recorded", claimed.id, exc_info=True)
                return
        if not kept:
            lost.set()
            stopped[0] = True
            raise Superseded(claimed.id)
        last[0] = time.monotonic()

    def heartbeat() -> None:
        while not done.wait(max(0.05, heartbeat_s - (time.monotonic() - last[0]))):
            if time.monotonic() - last[0] < heartbeat_s:
                continue
            try:
                if not beat(db, claimed):
                    lost.set()
                    return
            except Exception:
                log.warning("order %s: heartbeat not recorded", claimed.id, exc_info=True)
            last[0] = time.monotonic()

    heart = threading.Thread(target=heartbeat, name=f"{claimed.id} heartbeat", daemon=True)
    heart.start()
    end: dict[str, Any]
    try:
        end = {"result": work(claimed, say)}
    except Superseded:
        log.info("order %s: claimed elsewhere, run %d stopped", claimed.id, claimed.attempts)
        end = {}
    except EdgeplaneError as exc:
        end = {"error": exc.message, "error_status": exc.status}
    except Exception as exc:  # reported to the caller, never lost in a thread
        log.exception("order %s failed", claimed.id)
        end = {"error": str(exc), "error_status": 500}
    try:
        if end and not lost.is_set():
            _finish_retrying(db, claimed, end, lost)
    finally:
        done.set()
        heart.join()


def _finish_retrying(
    db: Database, claimed: Claimed, end: dict[str, Any], lost: threading.Event
) -> None:
    """Write the end, retrying while the database is away (the heartbeat goes on, and the
    claim condition keeps a late write from overwriting another run)."""
    deadline = time.monotonic() + FINISH_RETRY_S
    _FENCE.set(None)  # the end's UPDATE is conditional on the claim itself (and ends it)
    while True:
        try:
            if not finish(db, claimed, **end):
                log.info("order %s: claimed elsewhere before its end was written", claimed.id)
            return
        except Superseded:
            log.info("order %s: claimed elsewhere before its end was written", claimed.id)
            return
        except Exception:
            if time.monotonic() > deadline or lost.is_set():
                log.exception("order %s: its end could not be written", claimed.id)
                return
            time.sleep(1.0)


def start(
    db: Database,
    runner: str,
    project: str,
    domain: str,
    request: dict[str, Any],
    actor: dict[str, Any],
    work: Work,
    *,
    heartbeat_s: float = HEARTBEAT_S,
) -> OrderStatus:
    """Write a new order, claim it for ``runner`` and run it in a thread; the order as it
    starts. (When the claim fails, another replica resumed the order first: it runs there.)"""
    order = create(db, project, domain, request, actor)
    claimed = claim(db, order.id, runner, seen_runner=None, seen_attempts=0)
    if claimed is not None:
        run(db, claimed, work, heartbeat_s=heartbeat_s)
    return order
