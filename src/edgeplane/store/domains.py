"""A project's domain rows: the lookup every service of domains, zones and certificates uses."""

from __future__ import annotations

from edgeplane.errors import NotFound
from edgeplane.model.domains import normalise_domain
from edgeplane.store.db import Tx
from edgeplane.store.tables import DomainRow

ACTIVE = "active"  # verified (or reserved): served by the edge, certificates allowed
PENDING = "pending"  # waiting for its ownership to be verified
RESERVED = "reserved"  # the verification method of reserved names: nothing to verify


def get_row(tx: Tx, domain: str, *, lock: bool = False) -> DomainRow:
    """The transaction's project's domain (names are normalised), else ``NotFound``.

    ``lock`` for a change of the zone: the row stays locked until the transaction ends, so
    concurrent edits of one zone apply one after the other, each on what the previous left
    (read, merge, write), and the lock is taken before the revision (``Tx.next_revision``).
    """
    try:
        name = normalise_domain(domain)
    except ValueError:
        name = domain
    row = tx.session.get(DomainRow, name, with_for_update=lock or None)
    if row is None or row.project_id != tx.project:
        raise NotFound(f"domain {domain!r} not found in project {tx.project!r}")
    return row
