"""Small helpers every service uses: lookups, ids, patches and pages."""

from __future__ import annotations

import hashlib
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import Select, select, text
from sqlalchemy.orm import InstrumentedAttribute

from edgeplane.errors import Conflict, InvalidInput, NotFound
from edgeplane.model.common import new_id
from edgeplane.model.validation import invalid_from_pydantic
from edgeplane.store.db import Tx

R = TypeVar("R")
M = TypeVar("M", bound=BaseModel)

DEFAULT_PAGE = 100
MAX_PAGE = 1000


def get_scoped(tx: Tx, row_type: type[R], object_id: str, kind: str) -> R:
    """The project's object with this id, or NotFound."""
    row = tx.session.get(row_type, (tx.project, object_id))
    if row is None:
        raise NotFound(f"{kind} {object_id!r} not found in project {tx.project!r}")
    return row


def get_scoped_for_update(tx: Tx, row_type: type[R], object_id: str, kind: str) -> R:
    """Like get_scoped, locking the row until the transaction ends (capacity accounting)."""
    row = tx.session.get(row_type, (tx.project, object_id), with_for_update=True)
    if row is None:
        raise NotFound(f"{kind} {object_id!r} not found in project {tx.project!r}")
    return row


def lock_name(tx: Tx, *parts: str) -> None:
    """Serialise the transactions that use this name until they end (PostgreSQL).

    Checking that an id is free and inserting it are two statements: without the lock, two
    concurrent creations of one id both pass the check and the second insert fails with a
    unique violation. SQLite serialises writers already (BEGIN IMMEDIATE).
    """
    if tx.session.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    key = int.from_bytes(digest, "big", signed=True)
    tx.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def choose_id(tx: Tx, row_type: type[Any], wanted: str | None, prefix: str, kind: str) -> str:
    if wanted is not None:
        lock_name(tx, row_type.__tablename__, tx.project, wanted)
        if tx.session.get(row_type, (tx.project, wanted)) is not None:
            raise Conflict(f"{kind} {wanted!r} already exists", field="id")
        return wanted
    return new_id(prefix)


def validate(model: type[M], data: Any, prefix: str = "") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_from_pydantic(exc, prefix) from None


def merge_patch(
    model: type[M], current: dict[str, Any], patch: dict[str, Any], fixed: set[str]
) -> M:
    """Apply a JSON merge patch (RFC 7396) and validate the whole result.

    Objects merge recursively, so ``{"capacity": {"cpu": 32}}`` keeps memory and storage; inside
    an object ``null`` removes a key (a label, a setting); a top-level ``null`` clears an
    optional field (``data_center_id``). ``fixed`` fields cannot change.
    """
    if not isinstance(patch, dict):
        raise InvalidInput("the body must be a JSON object", field="body")
    for key in patch:
        if key in fixed and patch[key] != current.get(key):
            raise InvalidInput.at(key, "cannot be changed; delete and create instead")
        if key not in model.model_fields:
            raise InvalidInput.at(key, "unknown field")
    merged = dict(current)
    for key, value in patch.items():
        old = current.get(key)
        merged[key] = (
            _merge(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
        )
    return validate(model, merged)


def _merge(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(current)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def page_size(limit: int | None) -> int:
    """A page's size: ``limit``, or the default; 422 on ``limit`` outside 1 to ``MAX_PAGE``."""
    size = DEFAULT_PAGE if limit is None else limit
    if not 1 <= size <= MAX_PAGE:
        raise InvalidInput.at("limit", f"must be between 1 and {MAX_PAGE}")
    return size


def paged(
    tx: Tx,
    query: Select[Any],
    key: InstrumentedAttribute[Any],
    cursor: str | int | None,
    limit: int | None,
    *,
    newest_first: bool = False,
) -> tuple[list[Any], str | None]:
    """Keyset pagination by ``key`` (descending with ``newest_first``): the rows after
    ``cursor`` (a key value the caller has checked) and the cursor of the next page."""
    size = page_size(limit)
    if cursor is not None and cursor != "":
        query = query.where(key < cursor if newest_first else key > cursor)
    order = key.desc() if newest_first else key
    rows = list(tx.session.scalars(query.order_by(order).limit(size + 1)))
    if len(rows) > size:
        rows = rows[:size]
        return rows, str(getattr(rows[-1], key.key))
    return rows, None


def exists(tx: Tx, query: Select[Any]) -> bool:
    return tx.session.execute(select(query.exists())).scalar_one()
