"""The revision counter: one monotonic number for every change of the desired state.

A change of the desired state commits with the next revision and one audit event per object
changed (``Tx``). Some changes also stamp their rows with that revision before the commit (a
zone's serial, a purge, an edge deployment's phase, the live set of nodes): they ask the
transaction for it with ``Tx.next_revision()``.

One locking rule holds for every writer: the counter row is locked (``SELECT ... FOR UPDATE``)
the first time a transaction needs its revision and stays locked until it commits, and the
bump at commit (``UPDATE ... RETURNING``) takes the same lock. So two transactions never share
a revision, whatever the database: on PostgreSQL the second waits for the first to commit and
then reads its bump; on SQLite write transactions are serialised anyway (``BEGIN IMMEDIATE``).

Every other lock is taken before the counter's: a transaction that stamps a row it changes
locks that row first (a zone edit locks its domain, ``store.domains.get_row(lock=True)``), as
a transaction that only bumps at commit holds its row locks before the bump. One order for
all, so two writers never wait for each other in a circle.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from edgeplane.store.tables import RevisionRow

_ROW = RevisionRow.id == 1


def current(bind: Session | Connection) -> int:
    """The newest committed revision (no lock: for readers)."""
    return int(bind.scalar(select(RevisionRow.value).where(_ROW)) or 0)


def lock(session: Session) -> int:
    """Lock the counter until this transaction ends; the value it holds now."""
    return int(
        session.execute(select(RevisionRow.value).where(_ROW).with_for_update()).scalar_one()
    )


def bump(session: Session) -> int:
    """Add one (under the same row lock) and return the new revision."""
    value = session.execute(
        update(RevisionRow)
        .where(_ROW)
        .values(value=RevisionRow.value + 1)
        .returning(RevisionRow.value)
    ).scalar_one()
    return int(value)
