"""Edgeplane: self-hosted edge infrastructure from one control plane.

The public Python API mirrors the specification: ``InfrastructureManager`` (servers, services,
global routing) and ``GlobalOperations`` (data centers, load balancers, disaster recovery).
"""

from typing import TYPE_CHECKING, Any

from edgeplane.model.enums import (
    DataCenterTier,
    Environment,
    LBAlgorithm,
    RegionCode,
    RegionType,
    Role,
    ServerStatus,
    ServerType,
)

if TYPE_CHECKING:
    from edgeplane.sdk.global_operations import GlobalOperations
    from edgeplane.sdk.infrastructure_manager import InfrastructureManager

__version__ = "0.1.0"

__all__ = [
    "DataCenterTier",
    "Environment",
    "GlobalOperations",
    "InfrastructureManager",
    "LBAlgorithm",
    "RegionCode",
    "RegionType",
    "Role",
    "ServerStatus",
    "ServerType",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # The SDK classes load on first use, so that importing a submodule stays cheap.
    if name == "InfrastructureManager":
        from edgeplane.sdk.infrastructure_manager import InfrastructureManager

        return InfrastructureManager
    if name == "GlobalOperations":
        from edgeplane.sdk.global_operations import GlobalOperations

        return GlobalOperations
    raise AttributeError(f"module 'edgeplane' has no attribute {name!r}")
