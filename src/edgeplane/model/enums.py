"""The enumerations of the specification, shared by API, SDK, CLI and store."""

from __future__ import annotations

import enum
from enum import Enum


class StrEnum(enum.StrEnum):
    """A string enumeration that also accepts its member names and any letter case."""

    @classmethod
    def _missing_(cls, value: object) -> StrEnum | None:
        if isinstance(value, str):
            wanted = value.strip().lower()
            for member in cls:
                if wanted in (member.value, member.name.lower()):
                    return member
        return None


class ServerType(StrEnum):
    PRIMARY = "primary"
    SECONDARY = "secondary"
    EDGE = "edge"
    CACHE = "cache"


class RegionType(StrEnum):
    """A broad geographic area, as servers are placed in the infrastructure guide."""

    AMERICAS = "americas"
    EUROPE = "europe"
    ASIA_PACIFIC = "asia_pacific"
    MIDDLE_EAST_AFRICA = "middle_east_africa"


class RegionCode(StrEnum):
    """The operating regions of the global operations guide."""

    NA = "na"
    SA = "sa"
    EU = "eu"
    APAC = "apac"
    MEA = "mea"

    @property
    def area(self) -> RegionType:
        return _CODE_AREA[self]


_CODE_AREA = {
    RegionCode.NA: RegionType.AMERICAS,
    RegionCode.SA: RegionType.AMERICAS,
    RegionCode.EU: RegionType.EUROPE,
    RegionCode.APAC: RegionType.ASIA_PACIFIC,
    RegionCode.MEA: RegionType.MIDDLE_EAST_AFRICA,
}


class DataCenterTier(int, Enum):
    """Uptime Institute tiers 1-4; accepts 3, "3", "tier_3" or "TIER_3"."""

    TIER_1 = 1  # basic
    TIER_2 = 2  # redundant
    TIER_3 = 3  # concurrently maintainable
    TIER_4 = 4  # fault tolerant

    def __str__(self) -> str:
        return str(self.value)

    @classmethod
    def _missing_(cls, value: object) -> DataCenterTier | None:
        if isinstance(value, str):
            text = value.strip().lower().removeprefix("tier_").removeprefix("tier")
            if text.isdigit():
                return cls._value2member_map_.get(int(text))  # type: ignore[return-value]
        return None


class ServerStatus(StrEnum):
    PROVISIONING = "provisioning"
    ACTIVE = "active"
    DEGRADED = "degraded"
    MAINTENANCE = "maintenance"
    OFFLINE = "offline"


class ServiceStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class LBAlgorithm(StrEnum):
    ROUND_ROBIN = "round_robin"
    LEAST_CONN = "least_conn"
    IP_HASH = "ip_hash"
    WEIGHTED = "weighted"
    DYNAMIC = "dynamic"


# Names people write for the same algorithms.
LB_ALGORITHM_ALIASES = {
    "least_connections": LBAlgorithm.LEAST_CONN,
    "leastconn": LBAlgorithm.LEAST_CONN,
    "roundrobin": LBAlgorithm.ROUND_ROBIN,
    "iphash": LBAlgorithm.IP_HASH,
}


class Role(StrEnum):
    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return {"viewer": 0, "editor": 1, "admin": 2}[self.value]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


class Environment(StrEnum):
    DEV = "dev"
    STAGING = "staging"
    PROD = "prod"
