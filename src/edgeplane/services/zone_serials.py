"""The serial of each zone each edge node serves, as its heartbeats report them: a row per
node and zone (``EdgeZoneSerialRow``), written only for the zones whose serial changed."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import delete, insert, select

from edgeplane.store.db import Tx
from edgeplane.store.tables import EdgeZoneSerialRow

_CHUNK = 500  # zones per statement (SQLite's limit on bound parameters)


def record(tx: Tx, node_id: str, serials: Mapping[str, int], *, partial: bool) -> None:
    """The node serves ``serials`` (zone -> serial): all of its zones, or with ``partial``
    the changed ones only, where a serial of 0 means the zone is no longer served."""
    row = EdgeZoneSerialRow
    gone = delete(row).where(row.node_id == node_id).execution_options(synchronize_session=False)
    if not partial:
        tx.session.execute(gone)
    else:
        zones = list(serials)
        for i in range(0, len(zones), _CHUNK):
            tx.session.execute(gone.where(row.zone.in_(zones[i : i + _CHUNK])))
    rows = [{"node_id": node_id, "zone": z, "serial": int(s)} for z, s in serials.items() if s]
    for i in range(0, len(rows), _CHUNK):
        tx.session.execute(insert(row), rows[i : i + _CHUNK])


def of_zone(tx: Tx, zone: str) -> dict[str, int]:
    """Node id -> the serial it serves of ``zone`` (with its final dot)."""
    row = EdgeZoneSerialRow
    query = select(row.node_id, row.serial).where(row.zone == zone)
    return {node_id: int(serial) for node_id, serial in tx.session.execute(query)}


def of_node(tx: Tx, node_id: str) -> dict[str, int]:
    """Zone -> the serial ``node_id`` serves."""
    row = EdgeZoneSerialRow
    query = select(row.zone, row.serial).where(row.node_id == node_id)
    return {zone: int(serial) for zone, serial in tx.session.execute(query)}
