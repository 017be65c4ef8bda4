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
from edgeplane.version import __version__

if TYPE_CHECKING:
    from edgeplane.costs.model import CostModel
    from edgeplane.model.cdn import CacheKey, CacheRule
    from edgeplane.model.cdn import CDNConfigCreate as CDNConfig
    from edgeplane.model.dns_records import DNSRecord
    from edgeplane.model.operations import Backend, HealthCheck
    from edgeplane.sdk.backup_service import BackupService
    from edgeplane.sdk.cdn_service import CDNService
    from edgeplane.sdk.cost_service import CostService
    from edgeplane.sdk.domain_service import DomainService
    from edgeplane.sdk.edge_service import DeploymentStrategy, EdgeDeploymentService
    from edgeplane.sdk.function_service import FunctionService
    from edgeplane.sdk.global_operations import GlobalOperations
    from edgeplane.sdk.infrastructure_manager import InfrastructureManager
    from edgeplane.sdk.load_balancer_service import LoadBalancerService
    from edgeplane.sdk.monitoring_service import MonitoringService
    from edgeplane.sdk.project_service import ProjectService
    from edgeplane.sdk.resource_manager import ResourceManager
    from edgeplane.sdk.scaling_service import ScalingService
    from edgeplane.sdk.security_service import SecurityService
    from edgeplane.sdk.ssl_service import CertType, SSLService


__all__ = [
    "Backend",
    "BackupService",
    "CDNConfig",
    "CDNService",
    "CacheKey",
    "CacheRule",
    "CertType",
    "CostModel",
    "CostService",
    "DNSRecord",
    "DataCenterTier",
    "DeploymentStrategy",
    "DomainService",
    "EdgeDeploymentService",
    "Environment",
    "FunctionService",
    "GlobalOperations",
    "HealthCheck",
    "InfrastructureManager",
    "LBAlgorithm",
    "LoadBalancerService",
    "MonitoringService",
    "ProjectService",
    "RegionCode",
    "RegionType",
    "ResourceManager",
    "Role",
    "SSLService",
    "ScalingService",
    "SecurityService",
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
    lazy = _LAZY.get(name)
    if lazy is not None:
        import importlib

        return getattr(importlib.import_module(lazy[0]), lazy[1])
    raise AttributeError(f"module 'edgeplane' has no attribute {name!r}")


# Public name -> (module, attribute), loaded on first use.
_LAZY = {
    "BackupService": ("edgeplane.sdk.backup_service", "BackupService"),
    "CDNService": ("edgeplane.sdk.cdn_service", "CDNService"),
    "CostService": ("edgeplane.sdk.cost_service", "CostService"),
    "CostModel": ("edgeplane.costs.model", "CostModel"),
    "DomainService": ("edgeplane.sdk.domain_service", "DomainService"),
    "EdgeDeploymentService": ("edgeplane.sdk.edge_service", "EdgeDeploymentService"),
    "DeploymentStrategy": ("edgeplane.sdk.edge_service", "DeploymentStrategy"),
    "FunctionService": ("edgeplane.sdk.function_service", "FunctionService"),
    "LoadBalancerService": ("edgeplane.sdk.load_balancer_service", "LoadBalancerService"),
    "MonitoringService": ("edgeplane.sdk.monitoring_service", "MonitoringService"),
    "ProjectService": ("edgeplane.sdk.project_service", "ProjectService"),
    "ResourceManager": ("edgeplane.sdk.resource_manager", "ResourceManager"),
    "ScalingService": ("edgeplane.sdk.scaling_service", "ScalingService"),
    "SecurityService": ("edgeplane.sdk.security_service", "SecurityService"),
    "CacheKey": ("edgeplane.model.cdn", "CacheKey"),
    "CacheRule": ("edgeplane.model.cdn", "CacheRule"),
    "CDNConfig": ("edgeplane.model.cdn", "CDNConfigCreate"),
    "HealthCheck": ("edgeplane.model.operations", "HealthCheck"),
    "Backend": ("edgeplane.model.operations", "Backend"),
    "DNSRecord": ("edgeplane.model.dns_records", "DNSRecord"),
    "SSLService": ("edgeplane.sdk.ssl_service", "SSLService"),
    "CertType": ("edgeplane.sdk.ssl_service", "CertType"),
}
