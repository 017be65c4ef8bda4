"""A project's traffic per edge region over a timeframe, with where its clients were: what the
dashboard's global map draws (latency per region, flows from client countries to regions).

Read from the nodes' per-minute analytics (``services.analytics.regional``); each region's
top client countries come with their centroids (``edgeplane.routing.geoip``) so that a flow
can be drawn from the country to the region. ``ZZ`` (unknown) has no centroid.
"""

from __future__ import annotations

from datetime import datetime

from edgeplane.model.edge_deployments import RegionMetrics
from edgeplane.model.enums import Role
from edgeplane.model.regional_traffic import CountryCentroid, RegionalTraffic
from edgeplane.routing.geoip import GeoDatabaseError, country_centroids
from edgeplane.services import analytics
from edgeplane.services.edge_deployments import parents
from edgeplane.store.db import Tx


def regional(tx: Tx, start: datetime, end: datetime) -> RegionalTraffic:
    tx.actor.require(tx.project, Role.VIEWER)
    known = parents(tx)
    per_region = analytics.regional(tx, tx.project, start, end)
    try:
        centroids = country_centroids()
    except GeoDatabaseError:
        centroids = {}
    regions: list[RegionMetrics] = []
    seen: set[str] = set()
    for region, t in per_region.items():
        code, kind = known.get(region, (None, None))
        seen.update(t.countries)
        regions.append(
            RegionMetrics(region=region, region_code=code, region_type=kind, **t.to_dict())
        )
    countries = [
        CountryCentroid(code=c, latitude=centroids[c][0], longitude=centroids[c][1])
        for c in sorted(seen)
        if c in centroids
    ]
    return RegionalTraffic(start=start, end=end, regions=regions, countries=countries)
