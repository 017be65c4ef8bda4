"""What the file format knows of one kind of object: how to read it, write it and compare it.

A kind is a section of the file (``data_centers``, ``domains``, ``cdn`` ...). Each item of a
section is validated by the kind's ``item`` model (which the published JSON Schema is made of)
and brought to a **canonical** form, a JSON dict; the live state is read in the same form. The
plan compares the two: equal dicts are "no change", so a kind's ``read`` and ``canonical`` must
agree on every field (defaults filled, names resolved, lists in a stable order), and a
canonical item is itself a valid item of the file (``export`` writes it). Writes go through
the services, inside the apply's one transaction, so that they are validated, authorised and
audited as any API call is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel
from sqlalchemy import select

from edgeplane.settings import Settings
from edgeplane.store.db import Database, Tx

Item = dict[str, Any]
R = TypeVar("R")


@dataclass
class Context:
    """What a kind's operations work with: the apply's transaction, the settings, and the work
    to start once the transaction has committed (never run by a plan's dry run)."""

    tx: Tx
    settings: Settings
    later: list[Callable[[], None]] = field(default_factory=list)
    # The database the apply runs on, for the work ``later`` starts in transactions of its own
    # (an ACME order); None where nothing runs later (plan, export, drift).
    db: Database | None = None


class Kind:
    """One section of the file. Subclasses set the class attributes and the operations.

    - ``section``: its name in the file; ``noun``: how messages name one object.
    - ``key``: the field that names an item (``id``, ``name``); a ``singleton`` section (the
      CDN, the edge deployment) is one object or absent, keyed by its section name.
    - ``fixed``: top-level fields that cannot change in place: a change replaces the object
      (delete, then create), shown as ``replace`` in the plan.
    - ``secrets``: dotted paths of secret fields: their canonical value is a digest
      (``edgeplane.iac.secret``), never shown; export writes a reference in their place.
    - ``audit_kinds``: the audit log's ``kind`` of this kind's changes (drift names the actor).
    - ``platform``: objects outside any project (regions).
    """

    section: ClassVar[str]
    noun: ClassVar[str]
    key: ClassVar[str] = "id"
    item: ClassVar[type[BaseModel]]
    singleton: ClassVar[bool] = False
    platform: ClassVar[bool] = False
    fixed: ClassVar[frozenset[str]] = frozenset()
    secrets: ClassVar[frozenset[str]] = frozenset()
    audit_kinds: ClassVar[frozenset[str]] = frozenset()

    def key_of(self, item: Item) -> str:
        return self.section if self.singleton else str(item[self.key])

    def read(self, ctx: Context) -> list[Item]:
        """Every live object of the project, canonical."""
        raise NotImplementedError

    def canonical(self, ctx: Context, item: BaseModel) -> Item:
        """The canonical form of a validated item of the file (names resolved in ``ctx.tx``)."""
        return item.model_dump(mode="json")

    def exported(self, item: Item) -> Item:
        """How ``export`` writes a canonical item: the fields at their default left out, the
        key first."""
        doc = self.item.model_validate(item).model_dump(mode="json", exclude_defaults=True)
        if self.singleton:
            return doc
        return {self.key: item[self.key], **{k: v for k, v in doc.items() if k != self.key}}

    def exportable(self, item: Item) -> bool:
        """Whether ``export`` writes this live object (not the shipped regions ...)."""
        return True

    def create(self, ctx: Context, item: Item) -> None:
        raise NotImplementedError

    def update(self, ctx: Context, before: Item, after: Item) -> None:
        raise NotImplementedError

    def delete(self, ctx: Context, item: Item) -> None:
        raise NotImplementedError

    def audit_matches(self, key: str, kind: str, object_id: str) -> bool:
        """Whether an audit event (``kind``, ``object_id``) changed this kind's object ``key``."""
        return kind in self.audit_kinds and (object_id == key or object_id.startswith(key + "/"))

    def warnings(
        self, ctx: Context, action: str, before: Item | None, after: Item | None
    ) -> list[str]:
        """What the plan warns of for this change (deleting what serves traffic ...)."""
        return []


def changed_fields(before: Item, after: Item) -> dict[str, Any]:
    """The top-level fields of ``after`` that differ from ``before``: an update's patch."""
    return {k: v for k, v in after.items() if before.get(k) != v}


def project_rows(tx: Tx, row_type: type[R]) -> list[R]:
    """The rows of ``row_type`` in the transaction's project, by id: what a kind reads."""
    table: Any = row_type
    query = select(table).where(table.project_id == tx.project).order_by(table.id)
    return list(tx.session.scalars(query))
