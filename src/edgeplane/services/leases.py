"""Leases on the database: which replica of the control plane does a piece of work, with
fencing.

A lease is a row of ``leases`` (``edgeplane.store.ha_tables``): its holder, until when it
holds it, and an ``epoch`` raised each time the lease changes hands. ``hold`` takes a free or
expired lease, or renews one's own, in one conditional UPDATE (the database decides, so two
replicas never both win); the winner gets the epoch.

**Fencing.** A holder can lose its lease without knowing it (it stalled longer than the lease,
its renewals failed): another replica then holds it with a higher epoch. Work done under a
lease sets ``fenced(lease)`` for its thread, and every write transaction of that thread checks,
just before it commits, that the lease still has the holder and the epoch it was taken with
(``check_fence``, a ``Database.before_commit`` hook); it fails with ``Fenced`` otherwise and
nothing is written. On PostgreSQL the check locks the lease's row (``FOR UPDATE``), so a
takeover waits for the commit in hand; on SQLite every write transaction holds the database's
write lock already. Threads a job starts itself run unfenced (their context is theirs).

Times are the replicas' clocks (keep them in sync, as the heartbeats already need).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from edgeplane.store.db import Database
from edgeplane.store.ha_tables import LeaseRow
from edgeplane.store.tables import utcnow


class Fenced(RuntimeError):
    """The lease this work ran under is held by another replica now: nothing was written."""


@dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    epoch: int
    expires_at: datetime


_FENCE: contextvars.ContextVar[Lease | None] = contextvars.ContextVar("fence", default=None)


def new_holder_id() -> str:
    """This process's name as a holder: host, pid and a random part (a pid is reused)."""
    return f"{socket.gethostname()[:120]}:{os.getpid()}:{secrets.token_hex(4)}"


def hold(
    db: Database, name: str, holder: str, ttl_s: float, info: dict[str, Any] | None = None
) -> Lease | None:
    """Take ``name`` when it is free or expired, or renew it when ``holder`` has it; the
    lease held (its epoch raised when it changed hands), or None when another holder has it."""
    now = utcnow()
    until = now + timedelta(seconds=ttl_s)
    with db.writing() as conn:
        result = conn.execute(
            update(LeaseRow)
            .where(
                LeaseRow.name == name,
                (LeaseRow.holder == holder) | (LeaseRow.expires_at < now),
            )
            .values(
                epoch=case((LeaseRow.holder == holder, LeaseRow.epoch), else_=LeaseRow.epoch + 1),
                acquired_at=case((LeaseRow.holder == holder, LeaseRow.acquired_at), else_=now),
                holder=holder,
                renewed_at=now,
                expires_at=until,
                info=info or {},
            )
        )
        if result.rowcount == 0:
            exists = conn.execute(select(LeaseRow.name).where(LeaseRow.name == name)).first()
            if exists is not None:
                return None
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(LeaseRow).values(
                            name=name,
                            holder=holder,
                            epoch=1,
                            acquired_at=now,
                            renewed_at=now,
                            expires_at=until,
                            info=info or {},
                        )
                    )
            except IntegrityError:  # another replica made it first
                return None
        epoch = conn.execute(select(LeaseRow.epoch).where(LeaseRow.name == name)).scalar_one()
    return Lease(name=name, holder=holder, epoch=int(epoch), expires_at=until)


def release(db: Database, lease: Lease) -> bool:
    """Give the lease up now (another replica may take it at once); False when it was not
    ours any more."""
    with db.writing() as conn:
        result = conn.execute(
            update(LeaseRow)
            .where(
                LeaseRow.name == lease.name,
                LeaseRow.holder == lease.holder,
                LeaseRow.epoch == lease.epoch,
            )
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    return bool(result.rowcount)


def current(db: Database, name: str) -> LeaseRow | None:
    """The lease's row as stored (None: never taken)."""
    with db.engine.connect() as conn:
        row = conn.execute(select(LeaseRow).where(LeaseRow.name == name)).first()
    if row is None:
        return None
    return LeaseRow(**row._asdict())


@contextlib.contextmanager
def fenced(lease: Lease) -> Iterator[None]:
    """Writes of this context (thread) commit only while ``lease`` is still held."""
    token = _FENCE.set(lease)
    try:
        yield
    finally:
        _FENCE.reset(token)


def check_fence(session: Session) -> None:
    """``Database.before_commit`` hook: refuse the commit of a fenced context whose lease
    changed hands."""
    lease = _FENCE.get()
    if lease is None:
        return
    query = select(LeaseRow.holder, LeaseRow.epoch).where(LeaseRow.name == lease.name)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    row = session.execute(query).first()
    if row is None or row.holder != lease.holder or row.epoch != lease.epoch:
        raise Fenced(
            f"the {lease.name!r} lease (epoch {lease.epoch}) is held by another replica now"
        )


def install(db: Database) -> None:
    """Make ``db``'s write transactions check the fence of the context they run in."""
    if check_fence not in db.before_commit:
        db.before_commit.append(check_fence)
