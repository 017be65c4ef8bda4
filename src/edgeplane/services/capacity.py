"""Capacity accounting: what is allocated where, and refusing what does not fit."""

from __future__ import annotations

from sqlalchemy import func, select

from edgeplane.errors import CapacityExceeded
from edgeplane.model.common import Capacity, CapacityReport
from edgeplane.store.db import Tx
from edgeplane.store.tables import CapacityColumns, ServerRow, ServiceRow

UNITS = {"cpu": "CPU cores", "memory": "GB memory", "storage": "GB storage"}


def of_row(row: CapacityColumns) -> Capacity:
    return Capacity.model_construct(cpu=row.cpu, memory=row.memory, storage=row.storage)


def _sum(tx: Tx, columns: type[ServerRow] | type[ServiceRow], *where: object) -> Capacity:
    cpu, memory, storage = tx.session.execute(
        select(
            func.coalesce(func.sum(columns.cpu), 0.0),
            func.coalesce(func.sum(columns.memory), 0.0),
            func.coalesce(func.sum(columns.storage), 0.0),
        ).where(*where)  # type: ignore[arg-type]
    ).one()
    return Capacity.model_construct(cpu=float(cpu), memory=float(memory), storage=float(storage))


def allocated_in_data_center(tx: Tx, dc_id: str, *, except_server: str | None = None) -> Capacity:
    where = [ServerRow.project_id == tx.project, ServerRow.data_center_id == dc_id]
    if except_server is not None:
        where.append(ServerRow.id != except_server)
    return _sum(tx, ServerRow, *where)


def allocated_on_server(tx: Tx, server_id: str, *, except_service: str | None = None) -> Capacity:
    where = [ServiceRow.project_id == tx.project, ServiceRow.server_id == server_id]
    if except_service is not None:
        where.append(ServiceRow.id != except_service)
    return _sum(tx, ServiceRow, *where)


def report(total: Capacity, allocated: Capacity) -> CapacityReport:
    return CapacityReport(total=total, allocated=allocated, free=total - allocated)


def require_fit(
    wanted: Capacity, total: Capacity, allocated: Capacity, *, field: str, where: str
) -> None:
    """Refuse ``wanted`` if it does not fit in what ``total`` has left after ``allocated``."""
    free = total - allocated
    dim = wanted.fits_in(free)
    if dim is None:
        return
    need, have, used = getattr(wanted, dim), getattr(total, dim), getattr(allocated, dim)
    raise CapacityExceeded(
        f"{field}.{dim}: {where} has {have:g} {UNITS[dim]} with {used:g} allocated; "
        f"{need:g} more does not fit (over by {need - (have - used):g})",
        field=f"{field}.{dim}",
    )


def require_covers(total: Capacity, allocated: Capacity, *, field: str, what: str) -> None:
    """Refuse shrinking ``total`` below what is already allocated."""
    dim = allocated.fits_in(total)
    if dim is None:
        return
    raise CapacityExceeded(
        f"{field}.{dim}: {getattr(total, dim):g} {UNITS[dim]} is less than the "
        f"{getattr(allocated, dim):g} already allocated to {what}",
        field=f"{field}.{dim}",
    )


def _grouped(
    tx: Tx, columns: type[ServerRow] | type[ServiceRow], key: object, ids: list[str]
) -> dict[str, Capacity]:
    if not ids:
        return {}
    rows = tx.session.execute(
        select(
            key,  # type: ignore[call-overload]
            func.sum(columns.cpu),
            func.sum(columns.memory),
            func.sum(columns.storage),
        )
        .where(columns.project_id == tx.project, key.in_(ids))  # type: ignore[attr-defined]
        .group_by(key)
    ).all()
    return {
        str(k): Capacity.model_construct(cpu=float(c), memory=float(m), storage=float(s))
        for k, c, m, s in rows
    }


ZERO = Capacity()


def allocated_by_server(tx: Tx, server_ids: list[str]) -> dict[str, Capacity]:
    """What the services on each of these servers reserve, in one query."""
    return _grouped(tx, ServiceRow, ServiceRow.server_id, server_ids)


def allocated_by_data_center(tx: Tx, dc_ids: list[str]) -> dict[str, Capacity]:
    """What the servers in each of these data centers take, in one query."""
    return _grouped(tx, ServerRow, ServerRow.data_center_id, dc_ids)
