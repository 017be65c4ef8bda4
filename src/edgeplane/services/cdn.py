"""A project's CDN config: its origins, its ordered cache rules and its security at the edge.

One config per project (``cdn_configs``), replaced whole by ``configure``; the cache rules can
also be changed one at a time. The stored JSON is ``model_dump(mode="json")`` of the models of
``edgeplane.model.cdn``: ``Origin``, ``CacheRule`` (with its id) and ``EdgeSecurity``. The edge
snapshot reads it from there.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from edgeplane.certificates import origin_client
from edgeplane.errors import InvalidInput, NotFound
from edgeplane.model.cdn import (
    CacheRule,
    CacheRuleCreate,
    CDNConfigCreate,
    CDNDeployment,
    EdgeSecurity,
    Origin,
)
from edgeplane.model.common import new_id
from edgeplane.model.enums import Environment, Role
from edgeplane.services.common import lock_name, merge_patch, validate
from edgeplane.store.db import Tx
from edgeplane.store.tables import AuditRow, CDNConfigRow, DomainRow, LoadBalancerRow

KIND = "cdn_config"
MAX_RULES = 100
ACTIVE = "active"


def active_domains(tx: Tx) -> list[str]:
    """The project's active domains: what the edge serves for it."""
    return list(
        tx.session.scalars(
            select(DomainRow.name)
            .where(DomainRow.project_id == tx.project, DomainRow.status == ACTIVE)
            .order_by(DomainRow.name)
        )
    )


def config_revision(tx: Tx) -> int | None:
    """The revision of the newest change to the project's CDN config."""
    value = tx.session.scalar(
        select(func.max(AuditRow.revision)).where(
            AuditRow.kind == KIND, AuditRow.object_id == tx.project
        )
    )
    return int(value) if value is not None else None


def _rules(row: CDNConfigRow) -> list[CacheRule]:
    return [CacheRule.model_validate(r) for r in row.cache_rules or []]


def to_model(tx: Tx, row: CDNConfigRow, revision: int | None = None) -> CDNDeployment:
    return CDNDeployment(
        project=row.project_id,
        origins=[Origin.model_validate(o) for o in row.origins or []],
        cache_rules=_rules(row),
        security=EdgeSecurity.model_validate(row.security or {}),
        domains=active_domains(tx),
        revision=revision if revision is not None else config_revision(tx),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def audit_doc(row: CDNConfigRow) -> dict[str, Any]:
    """What the audit trail keeps of a config."""
    return {
        "origins": list(row.origins or []),
        "cache_rules": list(row.cache_rules or []),
        "security": dict(row.security or {}),
    }


def _check_origins(tx: Tx, origins: list[Origin]) -> None:
    """Either one load balancer of the project, or URL origins (at least one not a backup)."""
    lbs = [(i, o.load_balancer) for i, o in enumerate(origins) if o.load_balancer is not None]
    urls = [(i, o) for i, o in enumerate(origins) if o.url is not None]
    if lbs and urls:
        i = max(lbs[0][0], urls[0][0])
        raise InvalidInput.at(
            f"origins.{i}", "give either one load balancer or URL origins, not both"
        )
    if len(lbs) > 1:
        raise InvalidInput.at(f"origins.{lbs[1][0]}.load_balancer", "only one load balancer")
    for i, lb_id in lbs:
        if tx.session.get(LoadBalancerRow, (tx.project, lb_id)) is None:
            raise InvalidInput.at(
                f"origins.{i}.load_balancer",
                f"no load balancer {lb_id!r} in project {tx.project!r}",
            )
    seen: set[str] = set()
    for i, origin in urls:
        assert origin.url is not None
        if origin.url in seen:
            raise InvalidInput.at(f"origins.{i}.url", f"{origin.url!r} is listed twice")
        seen.add(origin.url)
    if urls and all(o.backup for _, o in urls):
        raise InvalidInput.at("origins", "at least one URL origin must not be a backup")
    for i, origin in urls[1:]:
        if origin.tls != urls[0][1].tls:
            raise InvalidInput.at(
                f"origins.{i}.tls",
                "every URL origin is one pool with one TLS setting: give each the same tls",
            )


def _rule(spec: CacheRuleCreate, rule_id: str) -> CacheRule:
    return CacheRule(id=rule_id, **spec.model_dump(exclude={"id"}))


def _build_rules(specs: list[CacheRuleCreate]) -> list[CacheRule]:
    out: list[CacheRule] = []
    used = {s.id for s in specs if s.id is not None}
    seen: set[str] = set()
    for i, spec in enumerate(specs):
        if spec.id is not None:
            if spec.id in seen:
                raise InvalidInput.at(f"cache_rules.{i}.id", f"{spec.id!r} is listed twice")
            seen.add(spec.id)
            out.append(_rule(spec, spec.id))
            continue
        rule_id = new_id("rule")
        while rule_id in used:
            rule_id = new_id("rule")
        used.add(rule_id)
        out.append(_rule(spec, rule_id))
    return out


def save_security(
    tx: Tx, row: CDNConfigRow, security: EdgeSecurity, before: dict[str, Any]
) -> None:
    """Store the project's security settings and audit the change (``before``: the config's
    ``audit_doc`` before it)."""
    row.security = security.model_dump(mode="json")
    tx.session.flush()
    tx.record("update", KIND, tx.project, before, audit_doc(row))


def configure(tx: Tx, data: CDNConfigCreate | dict[str, Any]) -> tuple[CDNDeployment, bool]:
    """Replace the project's CDN config; True when it did not exist before."""
    tx.actor.require(tx.project, Role.EDITOR)
    spec = data if isinstance(data, CDNConfigCreate) else validate(CDNConfigCreate, data)
    _check_origins(tx, spec.origins)
    if any(o.tls is not None and o.tls.client_certificate for o in spec.origins):
        origin_client.ensure(tx)
    rules = _build_rules(spec.cache_rules)
    lock_name(tx, "cdn_configs", tx.project)  # two first configs of a project at once
    row = tx.session.get(CDNConfigRow, tx.project)
    before = audit_doc(row) if row is not None else None
    created = row is None
    if row is None:
        row = CDNConfigRow(project_id=tx.project, environment=Environment.PROD.value)
        tx.session.add(row)
    row.origins = [o.model_dump(mode="json") for o in spec.origins]
    row.cache_rules = [r.model_dump(mode="json") for r in rules]
    row.security = spec.security.model_dump(mode="json")
    tx.session.flush()
    tx.record("create" if created else "update", KIND, tx.project, before, audit_doc(row))
    return to_model(tx, row), created


def _get_row(tx: Tx) -> CDNConfigRow:
    row = tx.session.get(CDNConfigRow, tx.project)
    if row is None:
        raise NotFound(f"project {tx.project!r} has no CDN config")
    return row


def get(tx: Tx) -> CDNDeployment:
    tx.actor.require(tx.project, Role.VIEWER)
    return to_model(tx, _get_row(tx))


def find(tx: Tx) -> CDNDeployment | None:
    """The project's CDN config, or None when it has none (``get`` answers 404 then)."""
    tx.actor.require(tx.project, Role.VIEWER)
    row = tx.session.get(CDNConfigRow, tx.project)
    return to_model(tx, row) if row is not None else None


def delete(tx: Tx) -> None:
    tx.actor.require(tx.project, Role.EDITOR)
    row = _get_row(tx)
    before = audit_doc(row)
    tx.session.delete(row)
    tx.record("delete", KIND, tx.project, before, None)


def uses_load_balancer(tx: Tx, lb_id: str) -> bool:
    row = tx.session.get(CDNConfigRow, tx.project)
    return row is not None and any(o.get("load_balancer") == lb_id for o in row.origins or [])


# Cache rules ------------------------------------------------------------------------------


def _save_rules(tx: Tx, row: CDNConfigRow, rules: list[CacheRule], before: dict[str, Any]) -> None:
    row.cache_rules = [r.model_dump(mode="json") for r in rules]
    tx.session.flush()
    tx.record("update", KIND, tx.project, before, audit_doc(row))


def list_rules(tx: Tx) -> list[CacheRule]:
    tx.actor.require(tx.project, Role.VIEWER)
    row = tx.session.get(CDNConfigRow, tx.project)
    return _rules(row) if row is not None else []


def get_rule(tx: Tx, rule_id: str) -> CacheRule:
    for rule in list_rules(tx):
        if rule.id == rule_id:
            return rule
    raise NotFound(f"cache rule {rule_id!r} not found in project {tx.project!r}")


def create_rule(
    tx: Tx, data: CacheRuleCreate | dict[str, Any], *, position: int | None = None
) -> CacheRule:
    """Append a rule, or insert it at ``position`` (0 first); rules are tried in order.

    A project with no CDN config gets one with no origins (the edge answers 502 until it has
    an origin or a load balancer)."""
    tx.actor.require(tx.project, Role.EDITOR)
    spec = data if isinstance(data, CacheRuleCreate) else validate(CacheRuleCreate, data)
    row = tx.session.get(CDNConfigRow, tx.project)
    if row is None:
        configure(tx, CDNConfigCreate())
        row = _get_row(tx)
    before = audit_doc(row)
    rules = _rules(row)
    if len(rules) >= MAX_RULES:
        raise InvalidInput.at("cache_rules", f"a project has at most {MAX_RULES} cache rules")
    if spec.id is not None and any(r.id == spec.id for r in rules):
        raise InvalidInput.at("id", f"cache rule {spec.id!r} already exists")
    if position is not None and not 0 <= position <= len(rules):
        raise InvalidInput.at("position", f"must be between 0 and {len(rules)}")
    used = {r.id for r in rules}
    rule_id = spec.id or new_id("rule")
    while rule_id in used:
        rule_id = new_id("rule")
    rule = _rule(spec, rule_id)
    rules.insert(len(rules) if position is None else position, rule)
    _save_rules(tx, row, rules, before)
    return rule


def update_rule(
    tx: Tx, rule_id: str, patch: dict[str, Any], *, position: int | None = None
) -> CacheRule:
    """A JSON merge patch of one rule; ``position`` moves it."""
    tx.actor.require(tx.project, Role.EDITOR)
    row = _get_row(tx)
    before = audit_doc(row)
    rules = _rules(row)
    index = next((i for i, r in enumerate(rules) if r.id == rule_id), None)
    if index is None:
        raise NotFound(f"cache rule {rule_id!r} not found in project {tx.project!r}")
    current = rules[index].model_dump(mode="json")
    spec = merge_patch(CacheRuleCreate, current, patch, fixed={"id"})
    rule = _rule(spec, rule_id)
    del rules[index]
    if position is not None and not 0 <= position <= len(rules):
        raise InvalidInput.at("position", f"must be between 0 and {len(rules)}")
    rules.insert(index if position is None else position, rule)
    _save_rules(tx, row, rules, before)
    return rule


def delete_rule(tx: Tx, rule_id: str) -> None:
    tx.actor.require(tx.project, Role.EDITOR)
    row = _get_row(tx)
    before = audit_doc(row)
    rules = _rules(row)
    kept = [r for r in rules if r.id != rule_id]
    if len(kept) == len(rules):
        raise NotFound(f"cache rule {rule_id!r} not found in project {tx.project!r}")
    _save_rules(tx, row, kept, before)
