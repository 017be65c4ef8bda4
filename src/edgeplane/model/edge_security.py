"""What ``/api/v1/infrastructure/cdn/security`` and ``/cdn/under-attack`` take and answer.

The project's security at the edge is ``EdgeSecurity`` (``edgeplane.model.cdn``), a part of its
CDN config: ``GET`` answers it whole, ``PATCH`` takes a JSON merge patch (RFC 7396) of it, so
a setting added there is read and changed here with no new endpoint. The under-attack switch
answers the client limits the edge then applies (``edgeplane.model.client_limits``).
"""

from __future__ import annotations

from edgeplane.model.cdn import EdgeSecurity, RateLimit
from edgeplane.model.client_limits import ClientLimits
from edgeplane.model.common import Bool, Input, Output


class CDNSecurity(Output):
    project: str
    security: EdgeSecurity
    revision: int | None  # the revision that holds it (None: never changed)


class UnderAttackSet(Input):
    enabled: Bool


class UnderAttack(Output):
    """The switch and what the edge applies with it (the project's own limits, tightened to
    the under-attack values while it is on)."""

    project: str
    under_attack: bool
    limits: ClientLimits  # effective
    rate_limit: RateLimit | None  # effective
    revision: int | None
