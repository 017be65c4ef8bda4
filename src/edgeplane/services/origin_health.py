"""What the edge nodes see of a project's CDN URL origins (pool ``origin.<project>``): the
health their checks report, which for private origins says why a certificate was refused
("certificate does not match the pinned key ...", "certificate not trusted: ..."). URL origins
are checked when their TLS settings verify the origin (``node.agent.origin_tls``); a load
balancer's backends have their own health (``load_balancers.backend_health``)."""

from __future__ import annotations

from edgeplane.model.cdn import Origin
from edgeplane.model.enums import Role
from edgeplane.model.operations import BackendHealth
from edgeplane.services.load_balancers import nodes_health, overall
from edgeplane.store.db import Tx
from edgeplane.store.tables import CDNConfigRow


def pool_id(project: str) -> str:
    return f"origin.{project}"


def origin_health(tx: Tx) -> list[BackendHealth]:
    """Per URL origin of the project's CDN config: what each edge node last saw of it."""
    tx.actor.require(tx.project, Role.VIEWER)
    row = tx.session.get(CDNConfigRow, tx.project)
    origins = [Origin.model_validate(o) for o in (row.origins or [])] if row else []
    seen = nodes_health(tx, pool_id(tx.project))
    out = []
    for origin in origins:
        if origin.url is None:
            continue
        nodes = seen.get(origin.url, [])
        out.append(
            BackendHealth(
                backend=origin.url,
                address=origin.url,
                port=None,
                weight=origin.weight,
                backup=origin.backup,
                admin_state="active",
                state=overall(nodes),
                nodes=nodes,
            )
        )
    return out
