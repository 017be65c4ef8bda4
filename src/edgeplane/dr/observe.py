"""Reading what the DR decisions need, in bulk: each config's sides (the load balancer backends
that are servers of its primary and of its backup data center) and their health as the edge
sees it (``edgeplane.dr.health``).

One pass reads the configs' projects' servers, load balancers and the edge nodes' health
reports once, whatever the number of configs: the monitor runs it every second.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgeplane.dr.health import Report, ServerSeen, Verdict, judge
from edgeplane.model.operations import backend_key
from edgeplane.snapshot.dr import Placement, index_addresses
from edgeplane.store.dr_tables import DRStateRow
from edgeplane.store.tables import (
    BackendHealthRow,
    DRConfigRow,
    EdgeLivenessRow,
    EdgeNodeRow,
    LoadBalancerRow,
    ServerRow,
)

Key = tuple[str, str]  # (project, DR config id)


@dataclass(frozen=True)
class PoolSides:
    """A load balancer's backends (keys) in a config's primary and backup data centers."""

    lb: str
    pool: str  # the pool id in snapshots and health reports
    primary: tuple[str, ...]
    backup: tuple[str, ...]

    @property
    def governed(self) -> bool:
        """Backends on both sides: the config decides which side serves (``snapshot.dr``)."""
        return bool(self.primary and self.backup)


@dataclass(frozen=True)
class Sides:
    """Where a config's data centers appear in its project's load balancers."""

    pools: tuple[PoolSides, ...] = ()
    primary_servers: tuple[ServerSeen, ...] = ()
    backup_servers: tuple[ServerSeen, ...] = ()

    def watched(self, side: str) -> frozenset[tuple[str, str]]:
        return frozenset(
            (p.pool, k) for p in self.pools for k in (p.primary if side == "primary" else p.backup)
        )

    @property
    def governed(self) -> tuple[PoolSides, ...]:
        return tuple(p for p in self.pools if p.governed)


@dataclass(frozen=True)
class Observation:
    sides: Sides
    primary: Verdict
    backup: Verdict
    live_nodes: tuple[str, ...] = ()  # names


@dataclass
class _Project:
    servers: dict[str, ServerRow] = field(default_factory=dict)
    lbs: list[LoadBalancerRow] = field(default_factory=list)


def _backend_addresses(lb: LoadBalancerRow) -> list[tuple[str, str]]:
    """(address, key) of each backend, as the snapshot names them."""
    out: list[tuple[str, str]] = []
    if lb.backends:
        for b in lb.backends:
            if isinstance(b, dict) and b.get("address"):
                port = int(b["port"]) if b.get("port") else None
                out.append(
                    (str(b["address"]).strip(), backend_key(str(b["address"]).strip(), port))
                )
    else:
        out = [(e.strip(), e.strip()) for e in lb.endpoints or []]
    return out


def sides_of(session: Session, configs: Iterable[DRConfigRow]) -> dict[Key, Sides]:
    """Each config's sides, from its project's servers and load balancers (one query each)."""
    configs = list(configs)
    projects = sorted({c.project_id for c in configs})
    if not projects:
        return {}
    data: dict[str, _Project] = {p: _Project() for p in projects}
    for s in session.scalars(select(ServerRow).where(ServerRow.project_id.in_(projects))):
        data[s.project_id].servers[s.id] = s
    for lb in session.scalars(
        select(LoadBalancerRow)
        .where(LoadBalancerRow.project_id.in_(projects))
        .order_by(LoadBalancerRow.project_id, LoadBalancerRow.id)
    ):
        data[lb.project_id].lbs.append(lb)
    dcs = {
        (p, s.id): s.data_center_id
        for p, d in data.items()
        for s in d.servers.values()
        if s.data_center_id is not None
    }
    by_address = index_addresses(
        (p, s.id, s.address)
        for p, d in data.items()
        for s in sorted(d.servers.values(), key=lambda s: s.id)
    )
    placement = Placement(data_centers=dcs, by_address=by_address)
    out: dict[Key, Sides] = {}
    for c in configs:
        d = data[c.project_id]
        pools = []
        for lb in d.lbs:
            primary, backup = [], []
            for address, key in _backend_addresses(lb):
                dc = placement.data_center_of(c.project_id, address)
                if dc == c.primary_dc:
                    primary.append(key)
                elif dc == c.backup_dc:
                    backup.append(key)
            if primary or backup:
                pools.append(
                    PoolSides(lb.id, f"lb.{c.project_id}.{lb.id}", tuple(primary), tuple(backup))
                )

        def seen(dc: str, servers: dict[str, ServerRow] = d.servers) -> tuple[ServerSeen, ...]:
            return tuple(
                ServerSeen(s.id, s.metrics_at)
                for s in sorted(servers.values(), key=lambda s: s.id)
                if s.data_center_id == dc
            )

        out[(c.project_id, c.id)] = Sides(tuple(pools), seen(c.primary_dc), seen(c.backup_dc))
    return out


def live_node_names(session: Session) -> dict[str, str]:
    """The live edge nodes (``services.liveness``): id -> name."""
    row = session.get(EdgeLivenessRow, 1)
    live = set(row.live or []) if row is not None else set()
    if not live:
        return {}
    return {i: n for i, n in session.execute(select(EdgeNodeRow.id, EdgeNodeRow.name)) if i in live}


def reports_of(session: Session, projects: Iterable[str]) -> list[Report]:
    """Every edge node's latest health report of the backends of ``projects``."""
    wanted = sorted(set(projects))
    if not wanted:
        return []
    rows = session.execute(
        select(BackendHealthRow, EdgeNodeRow.name)
        .join(EdgeNodeRow, EdgeNodeRow.id == BackendHealthRow.node_id)
        .where(BackendHealthRow.project_id.in_(wanted))
    )
    return [
        Report(
            node=name,
            pool=h.pool,
            backend=h.backend,
            state=h.state,
            reason=h.reason or "",
            checked_at=h.checked_at,
            changed_at=h.changed_at,
        )
        for h, name in rows
    ]


def observe(
    session: Session,
    configs: Iterable[DRConfigRow],
    now: datetime,
    *,
    metrics_max_age_s: float,
) -> dict[Key, Observation]:
    """Each config's sides and the health of its primary and its backup, now."""
    configs = list(configs)
    sides = sides_of(session, configs)
    live = live_node_names(session)
    reports = reports_of(session, {c.project_id for c in configs})
    names = tuple(sorted(live.values()))
    out: dict[Key, Observation] = {}
    for c in configs:
        s = sides[(c.project_id, c.id)]
        out[(c.project_id, c.id)] = Observation(
            sides=s,
            primary=judge(
                s.watched("primary"),
                reports,
                names,
                s.primary_servers,
                now,
                metrics_max_age_s=metrics_max_age_s,
            ),
            backup=judge(
                s.watched("backup"),
                reports,
                names,
                s.backup_servers,
                now,
                metrics_max_age_s=metrics_max_age_s,
            ),
            live_nodes=names,
        )
    return out


def states_of(session: Session) -> dict[Key, DRStateRow]:
    return {(s.project_id, s.dr_id): s for s in session.scalars(select(DRStateRow))}
