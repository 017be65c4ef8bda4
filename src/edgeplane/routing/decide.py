"""Pure routing decisions: which site is nearest a client, and how to say why."""

from __future__ import annotations

from dataclasses import dataclass

from edgeplane.routing.distance import haversine_km
from edgeplane.routing.geoip import ClientLocation


@dataclass(frozen=True, slots=True)
class Site:
    """A location with servers that can take the request."""

    code: str
    name: str
    latitude: float
    longitude: float


@dataclass(frozen=True, slots=True)
class Ranked:
    site: Site
    distance_km: float | None


def rank_sites(client: ClientLocation, sites: list[Site]) -> list[Ranked]:
    """Sites nearest first; without client coordinates, in code order with no distance."""
    if client.latitude is None or client.longitude is None:
        return [Ranked(s, None) for s in sorted(sites, key=lambda s: s.code)]
    lat, lon = client.latitude, client.longitude
    ranked = [Ranked(s, haversine_km(lat, lon, s.latitude, s.longitude)) for s in sites]
    ranked.sort(key=lambda r: (r.distance_km, r.site.code))
    return ranked


def describe_client(client: ClientLocation) -> str:
    if client.source == "private":
        return f"{client.ip} is a private or reserved address with no location"
    if client.source == "unknown":
        return f"{client.ip} has no location in the GeoIP database"
    place = ", ".join(p for p in (client.city, client.country) if p) or client.continent or "?"
    how = {
        "city": "located by the GeoIP database",
        "country": "located at its country's centre (no finer location known)",
        "continent": "located at its continent's centre (no finer location known)",
    }.get(client.source, client.source)
    return f"{client.ip} in {place}, {how}"


def explain(
    client: ClientLocation,
    chosen: Ranked,
    server_id: str,
    skipped: int,
) -> str:
    where = f"{chosen.site.code} ({chosen.site.name})"
    if chosen.distance_km is None:
        head = f"client {describe_client(client)}: chose the least-loaded healthy server"
        tail = f", {server_id} in {where}"
    else:
        head = f"client {describe_client(client)}: nearest healthy server with spare capacity"
        tail = f" is {server_id} in {where}, {chosen.distance_km:.1f} km away"
    note = ""
    if skipped:
        note = f"; {skipped} nearer server(s) skipped as unhealthy or full"
    return head + tail + note
