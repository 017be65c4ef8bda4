"""One model of "region", three vocabularies.

The specification names two: the infrastructure guide (spec 000) places servers in a
``RegionType`` (americas, europe, asia_pacific, middle_east_africa); the operations guide
(spec 001) places data centers in a ``RegionCode`` (na, sa, eu, apac, mea). Edge nodes,
deployments and the ``location`` of servers and data centers use **locations**: the rows of
the ``regions`` table (``us-east``, ``eu-central``, ...; 16 seeded, platform admins add more),
each with coordinates.

They nest: every location belongs to exactly one region code, and every region code to
exactly one region type (na and sa to americas)::

    americas            na: us-east, us-central, us-west, ca-central      sa: sa-east
    europe              eu: eu-west, uk-south, eu-central, eu-north
    middle_east_africa  mea: me-central, af-south
    asia_pacific        apac: ap-south, ap-southeast, ap-east, ap-northeast, au-southeast

So wherever a region is asked for, any of the three is understood: a location implies both of
its parents, a region code its type. What is pure here: the vocabularies, how a point on the
map falls into them, and the syntax of what a user may write (``RegionRef``). Resolving a
location against the table is ``edgeplane.services.regions.resolve``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StringConstraints

from edgeplane.model.enums import RegionCode, RegionType

LOCATION_PATTERN = r"^[a-z][a-z0-9-]{1,31}$"

REGION_CODES_OF: dict[RegionType, tuple[RegionCode, ...]] = {
    t: tuple(c for c in RegionCode if c.area is t) for t in RegionType
}

VOCABULARIES = (
    "a location such as us-east (`edgeplane region list`), "
    f"a region code ({', '.join(c.value for c in RegionCode)}) "
    f"or a region type ({', '.join(t.value for t in RegionType)})"
)


def broad(value: str) -> RegionCode | RegionType | None:
    """The region code or region type ``value`` names (any case, value or member name), or
    None when it names neither (a location, or nothing)."""
    text = value.strip().lower()
    for enum in (RegionCode, RegionType):
        for member in enum:
            if text in (member.value, member.name.lower()):
                return member
    return None


def region_type_of(latitude: float, longitude: float) -> RegionType:
    """The region type a point lies in (for a location created without one)."""
    if longitude <= -30:
        return RegionType.AMERICAS
    if latitude >= 35 and longitude < 60:
        return RegionType.EUROPE
    if longitude < 60:
        return RegionType.MIDDLE_EAST_AFRICA
    return RegionType.ASIA_PACIFIC


def _south_america(latitude: float, longitude: float) -> bool:
    # South of Panama, or the Caribbean coast of Colombia and Venezuela (east of the
    # Panama-Colombia border): a straight-line approximation, good for where data centers are.
    return latitude < 7.5 or (latitude < 13.0 and longitude > -77.2)


def region_code_of(
    latitude: float, longitude: float, region_type: RegionType | None = None
) -> RegionCode:
    """The region code a point lies in, within ``region_type`` when given (which decides
    between the codes of that type: only americas has two, na and sa)."""
    kind = region_type or region_type_of(latitude, longitude)
    codes = REGION_CODES_OF[kind]
    if len(codes) == 1:
        return codes[0]
    return RegionCode.SA if _south_america(latitude, longitude) else RegionCode.NA


def describe(location: str, region_code: str | None, region_type: str | None) -> str:
    """``eu-central (eu, europe)``: a location with its parents, as the CLI shows it."""
    parents = ", ".join(p for p in (region_code, region_type) if p)
    return f"{location} ({parents})" if parents else location


def _normalize(value: Any) -> Any:
    if isinstance(value, RegionCode | RegionType):
        return value.value
    if isinstance(value, str):
        return value.strip().lower()
    return value


RegionRef = Annotated[
    str,
    BeforeValidator(_normalize),
    StringConstraints(pattern=r"^[a-z][a-z0-9_-]{1,31}$"),
    Field(
        description=f"{VOCABULARIES}; a location implies its region code and region type",
        examples=["eu-central", "eu", "europe"],
    ),
]
"""What a user may write where a region is asked for: any of the three vocabularies (letter
case ignored). Services resolve it (``edgeplane.services.regions.resolve``)."""
