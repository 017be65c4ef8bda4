"""A project's domain rows: the lookup every service of domains, zones and certificates uses."""

from __future__ import annotations

from edgeplane.errors import NotFound
from edgeplane.model.domains import normalise_domain
from edgeplane.store.db import Tx
from edgeplane.store.tables import DomainRow

ACTIVE = "active"  # verified (or reserved): served by the edge, certificates allowed
PENDING = "pending"  # waiting for its ownership to be verified
RESERVED = "reserved"  # the verification method of reserved names: nothing to verify


def get_row(tx: Tx, domain: str) -> DomainRow:
    """The transaction's project's domain (names are normalised), else ``NotFound``."""
    try:
        name = normalise_domain(domain)
    except ValueError:
        name = domain
    row = tx.session.get(DomainRow, name)
    if row is None or row.project_id != tx.project:
        raise NotFound(f"domain {domain!r} not found in project {tx.project!r}")
    return row
