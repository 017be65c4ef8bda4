"""Every section of the file, in the order objects are created (deletes run in reverse)."""

from __future__ import annotations

from functools import cache

from edgeplane.iac.kind import Kind


@cache
def kinds() -> tuple[Kind, ...]:
    from edgeplane.iac.kinds import (
        alert_rules,
        budgets,
        cdn,
        certificates,
        channels,
        data_centers,
        domains,
        dr_configs,
        edge_deployment,
        load_balancers,
        regions,
        servers,
        services,
    )

    return (
        regions.Regions(),
        data_centers.DataCenters(),
        servers.Servers(),
        services.Services(),
        dr_configs.DRConfigs(),
        load_balancers.LoadBalancers(),
        domains.Domains(),
        certificates.Certificates(),
        cdn.CDN(),
        edge_deployment.EdgeDeployment(),
        channels.Channels(),
        alert_rules.AlertRules(),
        budgets.Budgets(),
    )


def by_section() -> dict[str, Kind]:
    return {k.section: k for k in kinds()}
