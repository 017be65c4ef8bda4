"""Global request routing: the nearest healthy server offering a service with spare capacity."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Exists, Select, and_, literal, or_, select

from edgeplane.errors import InvalidInput, NotFound
from edgeplane.model.enums import Role, ServerStatus, ServiceStatus
from edgeplane.model.routing import ClientInfo, RouteDecision, Skipped
from edgeplane.model.service_settings import SERVICE_TYPES
from edgeplane.routing.decide import Ranked, Site, explain, rank_sites
from edgeplane.routing.geoip import ClientLocation, GeoLocator
from edgeplane.services import servers
from edgeplane.settings import Settings
from edgeplane.store.db import Tx
from edgeplane.store.tables import RegionRow, ServerRow, ServiceRow, utcnow

SKIPPED_SHOWN = 10


class _Query:
    """The clauses of one routing question: a project, a service type, the thresholds."""

    def __init__(self, tx: Tx, settings: Settings, service_type: str) -> None:
        self.tx = tx
        self.fresh_after: datetime = utcnow() - timedelta(seconds=settings.metrics_max_age_s)
        # (name, server column, limit): a server at or over a limit has no spare capacity.
        self.limits = (
            ("cpu", "cpu_percent", settings.route_max_cpu),
            ("memory", "memory_percent", settings.route_max_memory),
            ("storage", "storage_percent", settings.route_max_storage),
        )
        offering = and_(
            ServiceRow.project_id == ServerRow.project_id,
            ServiceRow.server_id == ServerRow.id,
            ServiceRow.type == service_type,
        )
        # Correlated on the server: it offers the service at all / it can take the request.
        self.offered = select(literal(1)).where(offering).exists()
        self.usable = and_(
            ServerRow.status == ServerStatus.ACTIVE.value,
            self._spare_capacity(),
            select(literal(1))
            .where(offering, ServiceRow.status == ServiceStatus.ACTIVE.value)
            .exists(),
        )

    def _spare_capacity(self) -> ColumnElement[bool]:
        """No recent metrics at or over the thresholds."""
        stale = or_(ServerRow.metrics_at.is_(None), ServerRow.metrics_at < self.fresh_after)
        under = and_(
            *(
                or_(getattr(ServerRow, column).is_(None), getattr(ServerRow, column) < limit)
                for _, column, limit in self.limits
            )
        )
        return or_(stale, under)

    def site_has(self, eligible: bool) -> Exists:
        """A server in the region (correlated) offering the service; ``eligible``: a usable one."""
        return (
            select(literal(1))
            .where(
                ServerRow.project_id == self.tx.project,
                ServerRow.location == RegionRow.code,
                self.usable if eligible else self.offered,
            )
            .exists()
        )

    def servers_in(self, locations: list[str], *, eligible: bool | None) -> Select[ServerRow]:
        """Servers of these regions offering the service: all, the usable ones, or the others.

        Servers are the only table in FROM, so that even without statistics (SQLite before
        ANALYZE) the plan walks one location's servers, probing services per server, instead
        of every service of the type.
        """
        where = [ServerRow.project_id == self.tx.project, ServerRow.location.in_(locations)]
        if eligible is True:
            where.append(self.usable)
        else:
            where.append(self.offered)
            if eligible is False:
                where.append(~self.usable)
        return select(ServerRow).where(*where)

    def why_skipped(self, row: ServerRow) -> str:
        if row.status != ServerStatus.ACTIVE.value:
            return f"status is {row.status}"
        if row.metrics_at is not None and row.metrics_at >= self.fresh_after:
            for name, column, limit in self.limits:
                value = getattr(row, column)
                if value is not None and value >= limit:
                    return f"{name} at {value:g}% (limit {limit:g}%)"
        return "its service is disabled"


def route_request(
    tx: Tx,
    locator: GeoLocator,
    settings: Settings,
    client_ip: str,
    service_type: str,
) -> RouteDecision:
    tx.actor.require(tx.project, Role.VIEWER)
    try:
        ip = ipaddress.ip_address(str(client_ip).strip())
    except ValueError:
        raise InvalidInput.at(
            "client_ip", f"{client_ip!r} is not an IPv4 or IPv6 address"
        ) from None
    if service_type not in SERVICE_TYPES:
        known = ", ".join(sorted(SERVICE_TYPES))
        raise InvalidInput.at(
            "service_type", f"unknown service type {service_type!r}; one of {known}"
        )
    client = locator.locate(ip)
    q = _Query(tx, settings, service_type)

    # One pass over the regions: those with a server offering the service, and whether one of
    # them can take the request.
    rows = tx.session.execute(
        select(
            RegionRow.code,
            RegionRow.name,
            RegionRow.latitude,
            RegionRow.longitude,
            q.site_has(eligible=True).label("eligible"),
        ).where(q.site_has(eligible=False))
    ).all()
    offering = [Site(code, name, lat, lon) for code, name, lat, lon, _ in rows]
    eligible = {code for code, _, _, _, ok in rows if ok}
    if not eligible:
        raise NotFound(
            f"no healthy server with spare capacity offers {service_type!r} "
            f"in project {tx.project!r}"
        )
    ranked = rank_sites(client, [s for s in offering if s.code in eligible])
    located = ranked[0].distance_km is not None
    # Without a client location every eligible region is as near as any other.
    candidates = [ranked[0].site.code] if located else sorted(eligible)
    load = ServerRow.cpu_percent + ServerRow.memory_percent
    server_row = tx.session.scalars(
        q.servers_in(candidates, eligible=True)
        .order_by(load.is_(None), load, ServerRow.id)
        .limit(1)
    ).first()
    if server_row is None:  # changed between the two reads; the next request sees the new state
        raise NotFound(f"no healthy server with spare capacity offers {service_type!r}")
    # No ORDER BY id (nor min(id)): SQLite would answer it by walking the project's whole
    # primary key. A server rarely runs two services of one type; either would do.
    service_id = tx.session.scalars(
        select(ServiceRow.id)
        .where(
            ServiceRow.project_id == tx.project,
            ServiceRow.server_id == server_row.id,
            ServiceRow.type == service_type,
            ServiceRow.status == ServiceStatus.ACTIVE.value,
        )
        .limit(1)
    ).one()
    chosen = next(r for r in ranked if r.site.code == server_row.location)
    skipped = _skipped_nearer(q, client, chosen, offering) if located else []
    return RouteDecision(
        id=server_row.id,
        server=servers.to_model(tx, server_row),
        service_id=service_id,
        service_type=service_type,
        client=_client_info(client),
        distance_km=None if chosen.distance_km is None else round(chosen.distance_km, 1),
        reason=explain(client, chosen, server_row.id, len(skipped)),
        skipped=skipped,
    )


def _skipped_nearer(
    q: _Query, client: ClientLocation, chosen: Ranked, offering: list[Site]
) -> list[Skipped]:
    """Servers offering the service at least as near as the chosen one that were passed over."""
    assert chosen.distance_km is not None
    nearer = [
        r.site.code
        for r in rank_sites(client, offering)
        if r.distance_km is not None and r.distance_km <= chosen.distance_km
    ]
    rows = q.tx.session.scalars(
        q.servers_in(nearer, eligible=False).order_by(ServerRow.id).limit(SKIPPED_SHOWN)
    )
    return [Skipped(server_id=r.id, reason=q.why_skipped(r)) for r in rows]


def _client_info(client: ClientLocation) -> ClientInfo:
    return ClientInfo(
        ip=client.ip,
        country=client.country,
        continent=client.continent,
        city=client.city,
        latitude=client.latitude,
        longitude=client.longitude,
        source=client.source,
    )
