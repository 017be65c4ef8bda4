"""One apply at a time per project, across processes and replicas.

An apply takes the project's row in ``iac_locks`` (committed on its own, so that others see it)
before its transaction and gives it back after. A second apply waits up to its
``lock_timeout`` (0: not at all) and is then refused with who holds the lock and since when.
A lock whose holder died is taken over once it has expired (``LOCK_TTL``): an apply is one
transaction, far shorter than that.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError

from edgeplane.errors import Conflict
from edgeplane.store.actor import Actor
from edgeplane.store.db import Database
from edgeplane.store.iac_tables import IacLockRow
from edgeplane.store.tables import utcnow

LOCK_TTL = timedelta(minutes=10)
POLL_S = 0.1


def _try(db: Database, actor: Actor, project: str, token: str) -> IacLockRow | None:
    """Take the lock (None) or return the row of whoever holds it."""
    now = utcnow()
    with db.transaction(actor, project) as tx:
        row = tx.session.get(IacLockRow, project, with_for_update=True)
        if row is not None and row.expires_at > now:
            tx.session.expunge(row)
            return row
        if row is not None:
            tx.session.delete(row)
            tx.session.flush()
        try:
            with tx.session.begin_nested():
                tx.session.execute(
                    insert(IacLockRow).values(
                        project_id=project,
                        holder=actor.name,
                        token=token,
                        acquired_at=now,
                        expires_at=now + LOCK_TTL,
                    )
                )
        except IntegrityError:  # taken between our read and our insert (PostgreSQL)
            held = tx.session.get(IacLockRow, project, populate_existing=True)
            if held is not None:
                tx.session.expunge(held)
            return held or IacLockRow(project_id=project, holder="another apply", acquired_at=now)
    return None


@contextmanager
def held(db: Database, actor: Actor, project: str, timeout_s: float = 0.0) -> Iterator[None]:
    """Hold the project's apply lock for the block; Conflict when it stays taken."""
    token = secrets.token_hex(16)
    deadline = time.monotonic() + max(0.0, timeout_s)
    while True:
        holder = _try(db, actor, project, token)
        if holder is None:
            break
        if time.monotonic() >= deadline:
            since = holder.acquired_at.isoformat(timespec="seconds") if holder.acquired_at else "?"
            raise Conflict(
                f"another apply of project {project!r} is running: held by {holder.holder} "
                f"since {since}; wait for it (--lock-timeout) and plan again",
                field="lock",
                holder=holder.holder,
                since=since,
            )
        time.sleep(POLL_S)
    try:
        yield
    finally:
        with db.transaction(actor, project) as tx:
            tx.session.execute(
                delete(IacLockRow).where(
                    IacLockRow.project_id == project, IacLockRow.token == token
                )
            )
