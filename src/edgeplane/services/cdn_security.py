"""A project's security at the edge: read and changed as one document, and the under-attack
switch.

``EdgeSecurity`` lives in the project's CDN config (``cdn_configs.security``); a change is a
JSON merge patch of it, validated whole (``merge_patch``), recorded like every CDN change (the
CDN service's audit document and a new revision: the edge nodes get it through their
snapshot); a patch that changes nothing takes no revision. A project with no CDN config gets
one holding what the edge already served for it: no cache rules, and its only load balancer
as origin when it has exactly one (what the snapshot picks without a config).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from edgeplane.errors import InvalidInput
from edgeplane.model.cdn import CDNConfigCreate, EdgeSecurity, Origin, RateLimit
from edgeplane.model.client_limits import effective, effective_rate
from edgeplane.model.edge_security import CDNSecurity, UnderAttack
from edgeplane.model.enums import Role
from edgeplane.services import cdn
from edgeplane.services.common import merge_patch
from edgeplane.store.db import Tx
from edgeplane.store.tables import CDNConfigRow, LoadBalancerRow


def _row(tx: Tx) -> CDNConfigRow:
    row = tx.session.get(CDNConfigRow, tx.project)
    if row is not None:
        return row
    lbs = list(
        tx.session.scalars(
            select(LoadBalancerRow.id).where(LoadBalancerRow.project_id == tx.project).limit(2)
        )
    )
    origins = [Origin(load_balancer=lbs[0])] if len(lbs) == 1 else []
    cdn.configure(tx, CDNConfigCreate(origins=origins))
    created = tx.session.get(CDNConfigRow, tx.project)
    assert created is not None
    return created


def _security(row: CDNConfigRow | None) -> EdgeSecurity:
    return EdgeSecurity.model_validate(row.security or {}) if row is not None else EdgeSecurity()


def get_security(tx: Tx) -> CDNSecurity:
    """The project's security (the defaults when it has no CDN config)."""
    tx.actor.require(tx.project, Role.VIEWER)
    row = tx.session.get(CDNConfigRow, tx.project)
    revision = cdn.config_revision(tx) if row is not None else None
    return CDNSecurity(project=tx.project, security=_security(row), revision=revision)


def _save(tx: Tx, row: CDNConfigRow, security: EdgeSecurity) -> None:
    before = cdn.audit_doc(row)
    if security.model_dump(mode="json") == before["security"]:
        return  # nothing changes: no revision
    cdn.save_security(tx, row, security, before)


def update_security(tx: Tx, patch: dict[str, Any]) -> CDNSecurity:
    """A JSON merge patch of the project's ``EdgeSecurity`` (``null`` clears an optional
    field or, inside an object, resets a key to its default)."""
    tx.actor.require(tx.project, Role.EDITOR)
    if not isinstance(patch, dict):
        raise InvalidInput("the body must be a JSON object", field="body")
    current = _security(tx.session.get(CDNConfigRow, tx.project)).model_dump(mode="json")
    security = merge_patch(EdgeSecurity, current, _removals_drop_values(patch), fixed=set())
    _save(tx, _row(tx), security)
    return CDNSecurity(project=tx.project, security=security, revision=cdn.config_revision(tx))


def _removals_drop_values(patch: dict[str, Any]) -> dict[str, Any]:
    """A header whose patch says ``remove`` and nothing of its value drops the stored value
    (a removed header has none): ``{"action": "remove"}`` works on a header that had one."""
    headers = patch.get("headers")
    if not isinstance(headers, dict):
        return patch
    fixed = {
        name: {**rule, "value": None}
        if isinstance(rule, dict) and rule.get("action") == "remove" and "value" not in rule
        else rule
        for name, rule in headers.items()
    }
    return {**patch, "headers": fixed}


def under_attack(tx: Tx) -> UnderAttack:
    tx.actor.require(tx.project, Role.VIEWER)
    row = tx.session.get(CDNConfigRow, tx.project)
    return _state(tx, _security(row), cdn.config_revision(tx) if row is not None else None)


def set_under_attack(tx: Tx, enabled: bool) -> UnderAttack:
    """Turn the under-attack switch on or off (a change only when it flips)."""
    tx.actor.require(tx.project, Role.EDITOR)
    row = _row(tx)
    security = _security(row).model_copy(update={"under_attack": enabled})
    _save(tx, row, security)
    return _state(tx, security, cdn.config_revision(tx))


def _state(tx: Tx, security: EdgeSecurity, revision: int | None) -> UnderAttack:
    own = security.rate_limit
    rate = effective_rate((own.rate, own.burst) if own else None, security.under_attack)
    return UnderAttack(
        project=tx.project,
        under_attack=security.under_attack,
        limits=effective(security.limits, security.under_attack),
        rate_limit=RateLimit(rate=rate[0], burst=rate[1]) if rate is not None else None,
        revision=revision,
    )
