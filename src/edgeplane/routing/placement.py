"""Pure region-placement strategies for edge deployments.

A project deploys its static site to edge regions.  The request names a strategy:

``all``
    every candidate region (every region with a live edge node, unless the request
    names a subset);
``closest``
    the region nearest each place the users are, ranked by the share of the traffic
    each region is nearest to, optionally capped at ``max_regions``;
``cheapest``
    the fewest regions that serve every user location within a latency target
    (:data:`DEFAULT_LATENCY_TARGET_MS` unless given).

Everything here is a pure function of its arguments (the country centroid table aside,
which is packaged data): no database, no network, and the same :class:`Placement` for
the same input whatever order the candidates and user locations come in.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from edgeplane.routing.distance import haversine_km
from edgeplane.routing.geoip import country_centroids

__all__ = [
    "DEFAULT_LATENCY_TARGET_MS",
    "EXACT_MAX_CANDIDATES",
    "EXACT_MAX_REGIONS",
    "FREE_REGIONS",
    "PRICE_PER_REGION_MONTH",
    "STRATEGIES",
    "Candidate",
    "Placement",
    "PlacementError",
    "UserLocation",
    "UserPlacement",
    "estimated_rtt_ms",
    "parse_location",
    "place",
    "region_cost_per_month",
]

FREE_REGIONS: Final = 3
"""Regions a deployment gets at no cost."""

PRICE_PER_REGION_MONTH: Final = 5.0
"""USD a month for each region beyond :data:`FREE_REGIONS`."""

DEFAULT_LATENCY_TARGET_MS: Final = 100.0
"""Round-trip target of the ``cheapest`` strategy when the request names none."""

STRATEGIES: Final = ("all", "closest", "cheapest")

EXACT_MAX_CANDIDATES: Final = 16
"""``cheapest`` searches every combination of at most this many candidates ..."""

EXACT_MAX_REGIONS: Final = 5
"""... for sets of up to this many regions; beyond either bound it uses greedy set cover."""

FIBRE_KM_PER_MS: Final = 200.0
"""One-way distance light covers in optical fibre per millisecond (about 2/3 of c)."""

PATH_STRETCH: Final = 1.5
"""How much longer real network paths are than the great circle."""

ACCESS_OVERHEAD_MS: Final = 5.0
"""Last-mile access, queueing and server processing, per request."""

_COORDINATES = re.compile(r"^\s*([^,\s]+)\s*,\s*([^,\s]+)\s*$")
_COUNTRY = re.compile(r"^[A-Za-z]{2}$")
_LOCATION_KEYS: Final = frozenset({"latitude", "longitude", "weight", "label", "country"})


class PlacementError(ValueError):
    """The placement request cannot be satisfied; ``field`` names the request field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Candidate:
    """A region that can take the deployment; ``nodes`` is how many live edge nodes it has."""

    code: str
    latitude: float
    longitude: float
    nodes: int = 1


@dataclass(frozen=True, slots=True)
class UserLocation:
    """A place the users are; ``weight`` is its share of the requests (any positive scale)."""

    label: str
    latitude: float
    longitude: float
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class UserPlacement:
    """Where one user location is served from: its nearest chosen region."""

    label: str
    weight: float
    region: str
    distance_km: float
    rtt_ms: float
    meets_target: bool | None
    """Whether ``rtt_ms`` is within the latency target; None when there is no target."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "weight": self.weight,
            "region": self.region,
            "distance_km": self.distance_km,
            "rtt_ms": self.rtt_ms,
            "meets_target": self.meets_target,
        }


@dataclass(frozen=True, slots=True)
class Placement:
    """The regions a deployment goes to, what they cost and why they were chosen."""

    strategy: str
    regions: tuple[str, ...]
    """Region codes, sorted."""
    cost_per_month: float
    """USD a month, from :func:`region_cost_per_month`."""
    latency_target_ms: float | None
    users: tuple[UserPlacement, ...]
    """One entry per user location, sorted by label (then coordinates and weight)."""
    reason: str
    """One human sentence saying why these regions."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form, for storing with the deployment."""
        return {
            "strategy": self.strategy,
            "regions": list(self.regions),
            "cost_per_month": self.cost_per_month,
            "latency_target_ms": self.latency_target_ms,
            "users": [u.to_dict() for u in self.users],
            "reason": self.reason,
        }


def region_cost_per_month(n_regions: int) -> float:
    """USD a month for deploying to ``n_regions``: the first 3 are free, then 5 each."""
    return max(0, n_regions - FREE_REGIONS) * PRICE_PER_REGION_MONTH


def estimated_rtt_ms(distance_km: float) -> float:
    """Estimated round-trip time, in milliseconds, to a server ``distance_km`` away.

    The model: light in optical fibre covers about 200 km per millisecond one way;
    real paths are about 1.5 times longer than the great circle; a request goes there
    and back; and access, queueing and processing add about 5 ms::

        rtt_ms = 5 + distance_km * 1.5 * 2 / 200

    So a 100 ms target reaches about 6,300 km, a 50 ms target about 3,000 km.  It is a
    planning estimate, not a measurement: congested or indirect routes are slower.
    """
    return ACCESS_OVERHEAD_MS + distance_km * PATH_STRETCH * 2.0 / FIBRE_KM_PER_MS


# --- parsing user locations ------------------------------------------------------------


def parse_location(text: str | Mapping[str, Any]) -> UserLocation:
    """A :class:`UserLocation` from the forms a request may give.

    * ``"DE"``: an ISO 3166-1 alpha-2 country code (any case), at the country centroid;
    * ``"52.52,13.40"``: latitude and longitude in decimal degrees;
    * any of those followed by ``@weight``: ``"DE@3"``, ``"52.52,13.40@0.5"``;
    * ``{"latitude": .., "longitude": .., "weight": .., "label": ..}`` or
      ``{"country": "DE", "weight": 2, "label": ..}`` (weight and label optional).

    The weight defaults to 1 and must be a positive number.  Anything else raises
    :class:`PlacementError` with ``field="locations"``, naming the entry and the fault.
    """
    if isinstance(text, str):
        return _parse_location_text(text)
    if isinstance(text, Mapping):
        return _parse_location_mapping(text)
    raise _location_error(text, "expected a country code, 'lat,lon' or an object")


def _parse_location_text(text: str) -> UserLocation:
    body, sep, weight_text = text.strip().rpartition("@")
    if not sep:
        body, weight_text = weight_text, ""
    body = body.strip()
    weight = 1.0
    if sep:
        weight = _parse_weight(text, _to_float(text, "weight", weight_text.strip()))
    if not body:
        raise _location_error(text, "empty location")
    if _COUNTRY.match(body):
        code = body.upper()
        lat, lon = _country_point(text, code)
        return UserLocation(code, lat, lon, weight)
    match = _COORDINATES.match(body)
    if match is None:
        raise _location_error(
            text, "expected an ISO 3166 alpha-2 country code (e.g. DE) or 'lat,lon'"
        )
    lat = _check_latitude(text, _to_float(text, "latitude", match.group(1)))
    lon = _check_longitude(text, _to_float(text, "longitude", match.group(2)))
    return UserLocation(f"{lat:.10g},{lon:.10g}", lat, lon, weight)


def _parse_location_mapping(entry: Mapping[str, Any]) -> UserLocation:
    unknown = sorted(str(k) for k in entry if k not in _LOCATION_KEYS)
    if unknown:
        raise _location_error(
            entry,
            f"unknown key(s) {', '.join(unknown)}; "
            "expected latitude, longitude, country, weight, label",
        )
    weight = 1.0
    if "weight" in entry:
        weight = _parse_weight(entry, _number(entry, "weight", entry["weight"]))
    label = entry.get("label")
    if label is not None and (not isinstance(label, str) or not label.strip()):
        raise _location_error(entry, "label must be a non-empty string")
    if "country" in entry:
        if "latitude" in entry or "longitude" in entry:
            raise _location_error(entry, "give either country or latitude/longitude, not both")
        country = entry["country"]
        if not isinstance(country, str) or not _COUNTRY.match(country.strip()):
            raise _location_error(entry, f"country {country!r} is not an ISO 3166 alpha-2 code")
        code = country.strip().upper()
        lat, lon = _country_point(entry, code)
        return UserLocation(label.strip() if label else code, lat, lon, weight)
    if "latitude" not in entry or "longitude" not in entry:
        raise _location_error(entry, "needs latitude and longitude, or country")
    lat = _check_latitude(entry, _number(entry, "latitude", entry["latitude"]))
    lon = _check_longitude(entry, _number(entry, "longitude", entry["longitude"]))
    return UserLocation(label.strip() if label else f"{lat:.10g},{lon:.10g}", lat, lon, weight)


def _location_error(entry: object, why: str) -> PlacementError:
    return PlacementError("locations", f"location {entry!r}: {why}")


def _to_float(entry: object, what: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _location_error(entry, f"{what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise _location_error(entry, f"{what} {text!r} is not a finite number")
    return value


def _number(entry: object, what: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _location_error(entry, f"{what} {value!r} is not a number")
    if not math.isfinite(value):
        raise _location_error(entry, f"{what} {value!r} is not a finite number")
    return float(value)


def _parse_weight(entry: object, weight: float) -> float:
    if weight <= 0:
        raise _location_error(entry, f"weight {weight:g} must be positive")
    return weight


def _check_latitude(entry: object, lat: float) -> float:
    if not -90.0 <= lat <= 90.0:
        raise _location_error(entry, f"latitude {lat:g} is outside -90..90")
    return lat


def _check_longitude(entry: object, lon: float) -> float:
    if not -180.0 <= lon <= 180.0:
        raise _location_error(entry, f"longitude {lon:g} is outside -180..180")
    return lon


def _country_point(entry: object, code: str) -> tuple[float, float]:
    point = country_centroids().get(code)
    if point is None:
        raise _location_error(entry, f"unknown country code {code!r}")
    return point


# --- placement --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Problem:
    """Validated, canonically ordered input with the user x candidate distance table."""

    candidates: tuple[Candidate, ...]
    users: tuple[UserLocation, ...]
    distance: tuple[tuple[float, ...], ...]
    """distance[u][c]: kilometres from user location u to candidate c."""

    @property
    def total_weight(self) -> float:
        return math.fsum(u.weight for u in self.users)

    def nearest(self, u: int, among: Sequence[int]) -> int:
        """Index of the candidate in ``among`` nearest user u (ties: lower code)."""
        row = self.distance[u]
        return min(among, key=lambda c: (row[c], self.candidates[c].code))

    def serve(self, chosen: Sequence[int], target: float | None) -> tuple[UserPlacement, ...]:
        served = []
        for u, user in enumerate(self.users):
            c = self.nearest(u, chosen)
            km = self.distance[u][c]
            rtt = estimated_rtt_ms(km)
            meets = None if target is None else rtt <= target
            served.append(
                UserPlacement(
                    user.label, float(user.weight), self.candidates[c].code, km, rtt, meets
                )
            )
        return tuple(served)

    def weighted_rtt(self, chosen: Sequence[int]) -> float:
        """Sum over user locations of weight x RTT to the nearest region in ``chosen``."""
        return math.fsum(
            user.weight * estimated_rtt_ms(min(self.distance[u][c] for c in chosen))
            for u, user in enumerate(self.users)
        )


def place(
    strategy: str,
    candidates: Sequence[Candidate],
    users: Sequence[UserLocation] = (),
    *,
    latency_target_ms: float | None = None,
    max_regions: int | None = None,
) -> Placement:
    """Choose the regions a deployment goes to.

    ``candidates`` are the regions the request allows (those with ``nodes <= 0`` are
    ignored); ``users`` the places the traffic comes from.  ``latency_target_ms``
    defaults to :data:`DEFAULT_LATENCY_TARGET_MS` for ``cheapest``; for the other
    strategies it is optional and only fills in ``meets_target``.  ``max_regions`` caps
    ``closest``; ``all`` and ``cheapest`` cannot drop regions without breaking what they
    promise, so they raise :class:`PlacementError` when they would exceed it.

    Raises :class:`PlacementError` whose ``field`` is the faulty request field:
    ``strategy``, ``regions``, ``locations``, ``latency_target_ms`` or ``max_regions``.
    """
    if strategy not in STRATEGIES:
        raise PlacementError(
            "strategy", f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}"
        )
    target = _check_target(latency_target_ms)
    if max_regions is not None and (isinstance(max_regions, bool) or max_regions < 1):
        raise PlacementError("max_regions", f"max_regions must be at least 1, not {max_regions!r}")
    problem = _problem(candidates, users)
    if strategy == "all":
        return _place_all(problem, target, max_regions)
    if not problem.users:
        raise PlacementError(
            "locations",
            f"{strategy} needs the project's traffic or `locations`: "
            "the project has no traffic yet",
        )
    if strategy == "closest":
        return _place_closest(problem, target, max_regions)
    return _place_cheapest(
        problem, DEFAULT_LATENCY_TARGET_MS if target is None else target, max_regions
    )


def _check_target(target: float | None) -> float | None:
    if target is None:
        return None
    if isinstance(target, bool) or not isinstance(target, int | float):
        raise PlacementError("latency_target_ms", f"latency target {target!r} is not a number")
    if not math.isfinite(target) or target <= 0:
        raise PlacementError(
            "latency_target_ms", f"latency target {target!r} must be a positive number of ms"
        )
    return float(target)


def _problem(candidates: Sequence[Candidate], users: Sequence[UserLocation]) -> _Problem:
    live: dict[str, Candidate] = {}
    for cand in candidates:
        if cand.nodes <= 0:
            continue
        if not _valid_point(cand.latitude, cand.longitude):
            raise PlacementError(
                "regions",
                f"region {cand.code!r} has invalid coordinates "
                f"({cand.latitude!r}, {cand.longitude!r})",
            )
        if cand.code in live:
            raise PlacementError("regions", f"region {cand.code!r} is listed twice")
        live[cand.code] = cand
    if not live:
        raise PlacementError("regions", "no candidate region has a live edge node")
    for user in users:
        if not _valid_point(user.latitude, user.longitude):
            raise PlacementError(
                "locations",
                f"location {user.label!r} has invalid coordinates "
                f"({user.latitude!r}, {user.longitude!r})",
            )
        if not (math.isfinite(user.weight) and user.weight > 0):
            raise PlacementError(
                "locations", f"location {user.label!r}: weight {user.weight!r} must be positive"
            )
    ordered_cands = tuple(live[code] for code in sorted(live))
    ordered_users = tuple(sorted(users, key=lambda u: (u.label, u.latitude, u.longitude, u.weight)))
    distance = tuple(
        tuple(haversine_km(u.latitude, u.longitude, c.latitude, c.longitude) for c in ordered_cands)
        for u in ordered_users
    )
    return _Problem(ordered_cands, ordered_users, distance)


def _valid_point(lat: float, lon: float) -> bool:
    return (
        math.isfinite(lat)
        and math.isfinite(lon)
        and -90.0 <= lat <= 90.0
        and -180.0 <= lon <= 180.0
    )


def _placement(
    strategy: str,
    problem: _Problem,
    chosen: Sequence[int],
    target: float | None,
    reason: str,
) -> Placement:
    codes = tuple(sorted(problem.candidates[c].code for c in chosen))
    return Placement(
        strategy=strategy,
        regions=codes,
        cost_per_month=region_cost_per_month(len(codes)),
        latency_target_ms=target,
        users=problem.serve(chosen, target) if problem.users else (),
        reason=reason,
    )


def _place_all(problem: _Problem, target: float | None, max_regions: int | None) -> Placement:
    n = len(problem.candidates)
    if max_regions is not None and n > max_regions:
        raise PlacementError(
            "max_regions",
            f"all would deploy to {n} regions but max_regions is {max_regions}; "
            "name fewer regions or use closest",
        )
    chosen = range(n)
    reason = f"all {_regions(n)} with a live edge node ({_cost_phrase(n)})"
    if target is not None and problem.users:
        served = problem.serve(chosen, target)
        met = sum(1 for s in served if s.meets_target)
        reason = (
            f"all {_regions(n)} with a live edge node serve {met} of {len(served)} "
            f"locations within {target:g} ms ({_cost_phrase(n)})"
        )
    return _placement("all", problem, chosen, target, reason)


def _place_closest(problem: _Problem, target: float | None, max_regions: int | None) -> Placement:
    everyone = range(len(problem.candidates))
    share: dict[int, float] = {}
    for u, user in enumerate(problem.users):
        c = problem.nearest(u, everyone)
        share[c] = share.get(c, 0.0) + user.weight
    ranked = sorted(share, key=lambda c: (-share[c], problem.candidates[c].code))
    kept = ranked if max_regions is None else ranked[:max_regions]
    cut = ranked[len(kept) :]
    total = problem.total_weight
    name = [c.code for c in problem.candidates]
    parts = [
        f"{name[c]} is nearest to {_percent(share[c], total)} of the traffic"
        if i == 0
        else f"{name[c]} to {_percent(share[c], total)}"
        for i, c in enumerate(kept)
    ]
    reason = ", ".join(parts)
    if cut:
        left_out = ", ".join(f"{name[c]} ({_percent(share[c], total)})" for c in cut)
        reason += (
            f"; max_regions {max_regions} leaves out {left_out}, "
            "whose users go to their nearest chosen region"
        )
    reason += f" ({_cost_phrase(len(kept))})"
    return _placement("closest", problem, kept, target, reason)


def _place_cheapest(problem: _Problem, target: float, max_regions: int | None) -> Placement:
    n_cands = len(problem.candidates)
    everyone = range(n_cands)
    covers = [
        frozenset(c for c in everyone if estimated_rtt_ms(problem.distance[u][c]) <= target)
        for u in range(len(problem.users))
    ]
    unmet = [u for u, cov in enumerate(covers) if not cov]
    forced = sorted({problem.nearest(u, everyone) for u in unmet})
    # Bit masks: which coverable user locations each candidate serves within the target.
    serves = [0] * n_cands
    need = 0
    for u, cov in enumerate(covers):
        for c in cov:
            serves[c] |= 1 << u
        if cov:
            need |= 1 << u

    chosen: list[int] | None = None
    if n_cands <= EXACT_MAX_CANDIDATES:
        chosen = _exact_cover(problem, serves, need, forced)
    if chosen is None:
        chosen = _greedy_cover(problem, serves, need, forced)

    n = len(chosen)
    if max_regions is not None and n > max_regions:
        raise PlacementError(
            "max_regions",
            f"cheapest needs {_regions(n)} to serve every location within {target:g} ms "
            f"but max_regions is {max_regions}",
        )
    served = problem.serve(chosen, target)
    verb = "serves" if n == 1 else "serve"
    reason = f"{_regions(n)} {verb} every location within {target:g} ms"
    if unmet:
        misses = ", ".join(
            f"{s.label} ({s.region}, {s.rtt_ms:.0f} ms)" for s in served if not s.meets_target
        )
        if len(unmet) == len(problem.users):
            reason = (
                f"no region is within {target:g} ms of any location; "
                f"each is served from its nearest region: {misses}"
            )
        else:
            reason += f" except {misses}, which no region reaches that fast"
    reason += f" ({_cost_phrase(n)})"
    return _placement("cheapest", problem, chosen, target, reason)


def _exact_cover(
    problem: _Problem, serves: Sequence[int], need: int, forced: Sequence[int]
) -> list[int] | None:
    """Smallest cover of ``need`` containing ``forced``, of at most EXACT_MAX_REGIONS.

    Among the smallest covers: least traffic-weighted RTT, then smallest codes.  None
    when no cover is that small.
    """
    base = 0
    for c in forced:
        base |= serves[c]
    others = [c for c in range(len(problem.candidates)) if c not in forced]
    for size in range(max(len(forced), 1), EXACT_MAX_REGIONS + 1):
        best: tuple[float, tuple[str, ...]] | None = None
        best_set: list[int] = []
        for extra in itertools.combinations(others, size - len(forced)):
            mask = base
            for c in extra:
                mask |= serves[c]
            if mask & need != need:
                continue
            chosen = sorted([*forced, *extra])
            key = (
                problem.weighted_rtt(chosen),
                tuple(problem.candidates[c].code for c in chosen),
            )
            if best is None or key < best:
                best, best_set = key, chosen
        if best is not None:
            return best_set
    return None


def _greedy_cover(
    problem: _Problem, serves: Sequence[int], need: int, forced: Sequence[int]
) -> list[int]:
    """Greedy set cover: the region serving the most uncovered traffic weight first.

    Ties go to the lower code.  Regions made redundant by later picks are dropped.
    """
    weights = [u.weight for u in problem.users]

    def weight_of(mask: int) -> float:
        return math.fsum(w for u, w in enumerate(weights) if mask >> u & 1)

    chosen = list(forced)
    covered = 0
    for c in chosen:
        covered |= serves[c]
    added: list[int] = []
    while need & ~covered:
        pool = [c for c in range(len(problem.candidates)) if c not in chosen]
        pick = min(
            pool,
            key=lambda c: (-weight_of(serves[c] & need & ~covered), problem.candidates[c].code),
        )
        chosen.append(pick)
        added.append(pick)
        covered |= serves[pick]
    for c in reversed(added):
        rest = [o for o in chosen if o != c]
        mask = 0
        for o in rest:
            mask |= serves[o]
        if mask & need == need:
            chosen = rest
    return sorted(chosen)


# --- wording ----------------------------------------------------------------------------


def _regions(n: int) -> str:
    return "1 region" if n == 1 else f"{n} regions"


def _cost_phrase(n: int) -> str:
    if n <= FREE_REGIONS:
        return f"free: the first {FREE_REGIONS} regions cost nothing"
    extra = n - FREE_REGIONS
    return (
        f"USD {region_cost_per_month(n):g}/month: {_regions(extra)} beyond the first "
        f"{FREE_REGIONS} at USD {PRICE_PER_REGION_MONTH:g} each"
    )


def _percent(part: float, total: float) -> str:
    value = 100.0 * part / total
    if 0 < value < 1:
        return "<1%"
    return f"{value:.0f}%"
