"""Global request routing: the nearest healthy server offering a service with spare capacity."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select

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


def _limits(settings: Settings, fresh_after: Any) -> ColumnElement[bool]:
    """Spare capacity: no recent metrics at or over the thresholds."""
    stale = or_(ServerRow.metrics_at.is_(None), ServerRow.metrics_at < fresh_after)
    under = and_(
        or_(ServerRow.cpu_percent.is_(None), ServerRow.cpu_percent < settings.route_max_cpu),
        or_(
            ServerRow.memory_percent.is_(None),
            ServerRow.memory_percent < settings.route_max_memory,
        ),
        or_(
            ServerRow.storage_percent.is_(None),
            ServerRow.storage_percent < settings.route_max_storage,
        ),
    )
    return or_(stale, under)


def _why_skipped(row: ServerRow, settings: Settings, fresh_after: Any) -> str:
    if row.status != ServerStatus.ACTIVE.value:
        return f"status is {row.status}"
    if row.metrics_at is not None and row.metrics_at >= fresh_after:
        for name, value, limit in (
            ("cpu", row.cpu_percent, settings.route_max_cpu),
            ("memory", row.memory_percent, settings.route_max_memory),
            ("storage", row.storage_percent, settings.route_max_storage),
        ):
            if value is not None and value >= limit:
                return f"{name} at {value:g}% (limit {limit:g}%)"
    return "service disabled"


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
    fresh_after = utcnow() - timedelta(seconds=settings.metrics_max_age_s)

    offering = and_(
        ServiceRow.project_id == ServerRow.project_id,
        ServiceRow.server_id == ServerRow.id,
        ServiceRow.type == service_type,
    )
    eligible = and_(
        ServerRow.project_id == tx.project,
        ServerRow.status == ServerStatus.ACTIVE.value,
        ServiceRow.status == ServiceStatus.ACTIVE.value,
        _limits(settings, fresh_after),
    )
    site_rows = tx.session.execute(
        select(RegionRow.code, RegionRow.name, RegionRow.latitude, RegionRow.longitude).where(
            RegionRow.code.in_(
                select(ServerRow.location).join(ServiceRow, offering).where(eligible).distinct()
            )
        )
    ).all()
    if not site_rows:
        raise NotFound(
            f"no healthy server with spare capacity offers {service_type!r} "
            f"in project {tx.project!r}"
        )
    sites = [Site(code, name, lat, lon) for code, name, lat, lon in site_rows]
    ranked = rank_sites(client, sites)
    if ranked[0].distance_km is None:
        chosen_site: Ranked | None = None
        site_filter: ColumnElement[bool] = ServerRow.location.in_([s.code for s in sites])
    else:
        chosen_site = ranked[0]
        site_filter = ServerRow.location == chosen_site.site.code
    load = ServerRow.cpu_percent + ServerRow.memory_percent
    best = tx.session.execute(
        select(ServerRow, ServiceRow.id)
        .join(ServiceRow, offering)
        .where(eligible, site_filter)
        .order_by(load.is_(None), load, ServerRow.id)
        .limit(1)
    ).first()
    assert best is not None
    server_row, service_id = best
    if chosen_site is None:
        chosen_site = next(r for r in ranked if r.site.code == server_row.location)

    skipped = _skipped_nearer(
        tx, client, chosen_site, service_type, offering, eligible, settings, fresh_after
    )
    return RouteDecision(
        id=server_row.id,
        server=servers.to_model(tx, server_row),
        service_id=service_id,
        service_type=service_type,
        client=_client_info(client),
        distance_km=None if chosen_site.distance_km is None else round(chosen_site.distance_km, 1),
        reason=explain(client, chosen_site, server_row.id, len(skipped)),
        skipped=skipped,
    )


def _skipped_nearer(
    tx: Tx,
    client: ClientLocation,
    chosen: Ranked,
    service_type: str,
    offering: ColumnElement[bool],
    eligible: ColumnElement[bool],
    settings: Settings,
    fresh_after: Any,
) -> list[Skipped]:
    """Servers offering the service at least as near as the chosen one that were passed over."""
    if chosen.distance_km is None:
        return []
    all_sites = tx.session.execute(
        select(RegionRow.code, RegionRow.name, RegionRow.latitude, RegionRow.longitude).where(
            RegionRow.code.in_(
                select(ServerRow.location)
                .join(ServiceRow, offering)
                .where(ServerRow.project_id == tx.project)
                .distinct()
            )
        )
    ).all()
    ranked = rank_sites(client, [Site(*r) for r in all_sites])
    nearer = [
        r.site.code
        for r in ranked
        if r.distance_km is not None and r.distance_km <= chosen.distance_km
    ]
    rows = tx.session.scalars(
        select(ServerRow)
        .join(ServiceRow, offering)
        .where(ServerRow.project_id == tx.project, ServerRow.location.in_(nearer), ~eligible)
        .order_by(ServerRow.id)
        .limit(SKIPPED_SHOWN)
    )
    return [Skipped(server_id=r.id, reason=_why_skipped(r, settings, fresh_after)) for r in rows]


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
