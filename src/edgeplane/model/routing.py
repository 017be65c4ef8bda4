"""The answer of global routing."""

from __future__ import annotations

from pydantic import Field

from edgeplane.model.common import Output
from edgeplane.model.inventory import Server


class ClientInfo(Output):
    ip: str
    country: str | None
    continent: str | None
    city: str | None
    latitude: float | None
    longitude: float | None
    source: str = Field(description="city | country | continent | private | unknown")


class Skipped(Output):
    server_id: str
    reason: str


class RouteDecision(Output):
    """The server chosen for a client, and why."""

    id: str = Field(description="the chosen server's id")
    server: Server
    service_id: str
    service_type: str
    client: ClientInfo
    distance_km: float | None
    reason: str
    skipped: list[Skipped] = Field(default_factory=list)
