"""The exposed surface of each edge node, scanned from the control plane's side.

``run_once`` (the background job, every ``security_scan_interval_s``) connects over TCP to
each live node's registered address on the well-known ports (1-1023), the node's own ports
(HTTP, HTTPS, DNS; its metrics and DNS server ports, which it registers) and any
``security_scan_ports``, and compares what answers with what the node should expose
(``posture.surface``). Only the nodes' own addresses are scanned. The newest scan of each
node is kept; the ``exposed_ports`` series (per node, in the default project: nodes are the
platform's) feeds the built-in ``node-exposed-port`` alert rule.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from threading import Event
from typing import Any

from sqlalchemy import select

from edgeplane.errors import InvalidInput
from edgeplane.model.enums import Role
from edgeplane.model.security_score import NodeSurface, PortFinding
from edgeplane.posture import portscan, surface
from edgeplane.services import liveness
from edgeplane.settings import Settings
from edgeplane.store.actor import LOCAL, PLATFORM_PROJECT
from edgeplane.store.db import Database, Tx
from edgeplane.store.security_tables import NodeSurfaceRow
from edgeplane.store.tables import EdgeNodeRow, utcnow

log = logging.getLogger("edgeplane.security")


def extra_ports(text: str) -> list[int]:
    """``"8000,9000-9010"`` -> the ports; InvalidInput naming the setting when malformed."""
    ports: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        low, _, high = part.partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            raise InvalidInput.at(
                "security_scan_ports", f"{part!r} is not a port or range"
            ) from None
        if not 1 <= first <= last <= 65535 or last - first > 10_000:
            raise InvalidInput.at("security_scan_ports", f"{part!r}: ports 1-65535, ranges of "
                                  "at most 10,000")  # fmt: skip
        ports.update(range(first, last + 1))
    return sorted(ports)


def _expected(row: EdgeNodeRow) -> dict[str, int]:
    ports = {"http": row.http_port, "https": row.https_port, "dns": row.dns_port}
    return {role: int(p) for role, p in ports.items() if p}


def _internal(row: EdgeNodeRow) -> dict[str, int]:
    return {k: int(v) for k, v in (row.local_ports or {}).items() if isinstance(v, int)}


def scan_node(
    address: str,
    expected: dict[str, int],
    internal: dict[str, int],
    settings: Settings,
) -> tuple[list[int], list[int], list[PortFinding]]:
    """(ports scanned, open ports, findings) of one node (network I/O)."""
    ports = surface.ports_to_scan(expected, internal, extra_ports(settings.security_scan_ports))
    found = portscan.scan(
        address,
        ports,
        timeout_s=settings.security_scan_timeout_s,
        concurrency=settings.security_scan_concurrency,
    )
    return ports, found, surface.classify(address, found, expected, internal)


def run_once(db: Database, settings: Settings, stopping: Event | None = None,
             now: datetime | None = None, due_s: float | None = None) -> int:  # fmt: skip
    """Scan every live node with an address (that was not scanned within ``due_s``, when
    given); the number scanned."""
    at = now or utcnow()
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        live = liveness.live_ids(tx)
        recent = set()
        if due_s is not None:
            recent = set(
                tx.session.scalars(
                    select(NodeSurfaceRow.node_id).where(
                        NodeSurfaceRow.scanned_at >= at - timedelta(seconds=due_s)
                    )
                )
            )
        nodes = [
            (n.id, n.name, str(n.address), _expected(n), _internal(n))
            for n in tx.session.scalars(select(EdgeNodeRow).order_by(EdgeNodeRow.name))
            if n.id in live and n.address and n.id not in recent
        ]
    results = []
    for node_id, name, address, expected, internal in nodes:
        if stopping is not None and stopping.is_set():
            break
        error = None
        try:
            ports, found, findings = scan_node(address, expected, internal, settings)
        except (OSError, InvalidInput) as exc:
            ports, found, findings, error = [], [], [], str(exc)
            log.warning("surface scan of %s (%s) failed: %s", name, address, exc)
        results.append((node_id, address, ports, found, findings, error))
        bad = surface.unexpected(findings)
        if bad:
            log.warning("edge node %s exposes %d unexpected port(s) on %s", name, bad, address)
    if not results:
        return 0
    with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
        for node_id, address, ports, found, findings, error in results:
            if tx.session.get(EdgeNodeRow, node_id) is None:
                continue  # forgotten meanwhile
            row = tx.session.get(NodeSurfaceRow, node_id)
            if row is None:
                row = NodeSurfaceRow(node_id=node_id)
                tx.session.add(row)
            row.address = address
            row.scanned_at = at
            row.ports_scanned = len(ports)
            row.open_ports = found
            row.findings = [f.model_dump(mode="json") for f in findings]
            row.unexpected = surface.unexpected(findings)
            row.error = error
    return len(results)


def list_surfaces(tx: Tx) -> list[NodeSurface]:
    """Every registered node with its newest scan (none yet: no findings, no scan time).
    The nodes are the platform's: any role in the default project reads them."""
    tx.actor.require(PLATFORM_PROJECT, Role.VIEWER)
    scans = {r.node_id: r for r in tx.session.scalars(select(NodeSurfaceRow))}
    out = []
    for node in tx.session.scalars(select(EdgeNodeRow).order_by(EdgeNodeRow.name)):
        scan = scans.get(node.id)
        out.append(
            NodeSurface(
                node=node.id,
                name=node.name,
                address=scan.address if scan else node.address,
                scanned_at=scan.scanned_at if scan else None,
                ports_scanned=scan.ports_scanned if scan else 0,
                open_ports=list(scan.open_ports or []) if scan else [],
                unexpected=scan.unexpected if scan else 0,
                findings=[PortFinding.model_validate(f) for f in (scan.findings or [])]
                if scan
                else [],
                error=scan.error if scan else None,
            )
        )
    return out


def series_values(tx: Tx, project: str, selector: dict[str, Any]) -> dict[str, float]:
    """``exposed_ports`` per node name (the default project only: nodes are the platform's)."""
    if project != PLATFORM_PROJECT:
        return {}
    q = select(EdgeNodeRow.name, NodeSurfaceRow.unexpected).join(
        EdgeNodeRow, EdgeNodeRow.id == NodeSurfaceRow.node_id
    )
    if "node" in selector:
        q = q.where(EdgeNodeRow.name == selector["node"])
    return {name: float(n) for name, n in tx.session.execute(q)}


def scheduled(db: Database, settings: Settings, stopping: Event | None = None) -> int:
    """The background job: the nodes not scanned for ``security_scan_interval_s``."""
    return run_once(db, settings, stopping, due_s=settings.security_scan_interval_s * 0.95)
