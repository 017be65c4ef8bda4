"""``cdn``: the project's CDN config, one object or absent: its origins (URLs or a load
balancer), its cache rules in the order they are tried, and its security at the edge (HTTPS,
HSTS, rate limit, IP allow and deny lists), as ``POST /api/v1/infrastructure/cdn`` takes it.

Every rule has an ``id``: export writes each rule's, and a rule the file gives without one is
named after its pattern (``rule-<digest>``), the same on every plan, so that it is compared
with what the apply made of it. A config the file creates is made whole (``configure``); a
change of its origins or security replaces those, and its rules are changed one at a time
through the rule calls (create, patch, move, delete), each keeping its id. ``cdn: null``
with ``--prune`` deletes the config.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel

from edgeplane.iac.kind import Context, Item, Kind, changed_fields
from edgeplane.model.cdn import CacheRuleCreate, CDNConfigCreate
from edgeplane.services import cdn
from edgeplane.store.tables import CDNConfigRow


class CDNItem(CDNConfigCreate):
    """The project's CDN config: origins, cache rules (tried in order; a rule without ``id``
    is named after its pattern) and security."""


def _rule_id(pattern: str, taken: set[str]) -> str:
    """The id of a rule the file names not: from its pattern, unique among ``taken``."""
    base = "rule-" + hashlib.sha256(pattern.encode()).hexdigest()[:12]
    rule_id, n = base, 1
    while rule_id in taken:
        n += 1
        rule_id = f"{base}-{n}"
    return rule_id


def _canonical(doc: dict[str, Any]) -> Item:
    return CDNItem.model_validate(doc).model_dump(mode="json")


def _rule_spec(rule: Item) -> CacheRuleCreate:
    return CacheRuleCreate.model_validate(rule)


class CDN(Kind):
    section = "cdn"
    noun = "CDN config"
    singleton = True
    item = CDNItem
    audit_kinds = frozenset({cdn.KIND})

    def read(self, ctx: Context) -> list[Item]:
        row = ctx.tx.session.get(CDNConfigRow, ctx.tx.project)
        if row is None:
            return []
        return [
            _canonical(
                {
                    "origins": list(row.origins or []),
                    "cache_rules": list(row.cache_rules or []),
                    "security": dict(row.security or {}),
                }
            )
        ]

    def canonical(self, ctx: Context, item: BaseModel) -> Item:
        assert isinstance(item, CDNItem)
        doc = item.model_dump(mode="json")
        taken = {r["id"] for r in doc["cache_rules"] if r["id"] is not None}
        for rule in doc["cache_rules"]:
            if rule["id"] is None:
                rule["id"] = _rule_id(rule["pattern"], taken)
                taken.add(rule["id"])
        return _canonical(doc)

    def audit_matches(self, key: str, kind: str, object_id: str) -> bool:
        return kind in self.audit_kinds  # the project's config: its id is the project's

    def create(self, ctx: Context, item: Item) -> None:
        cdn.configure(ctx.tx, CDNConfigCreate.model_validate(item))

    def update(self, ctx: Context, before: Item, after: Item) -> None:
        tx = ctx.tx
        patch = changed_fields(before, after)
        if "origins" in patch or "security" in patch:
            whole = {**after, "cache_rules": before["cache_rules"]}
            cdn.configure(tx, CDNConfigCreate.model_validate(whole))
        if "cache_rules" in patch:
            self._rules(ctx, before["cache_rules"], after["cache_rules"])

    def _rules(self, ctx: Context, before: list[Item], after: list[Item]) -> None:
        """The fewest rule calls from ``before`` to ``after``: deletes, then each rule of
        ``after`` in order created, patched or moved to its place."""
        tx = ctx.tx
        wanted = {r["id"] for r in after}
        order = [r["id"] for r in before if r["id"] in wanted]
        for rule in before:
            if rule["id"] not in wanted:
                cdn.delete_rule(tx, rule["id"])
        had = {r["id"]: r for r in before}
        for position, rule in enumerate(after):
            old = had.get(rule["id"])
            if old is None:
                cdn.create_rule(tx, _rule_spec(rule), position=position)
                order.insert(position, rule["id"])
                continue
            patch = {k: v for k, v in changed_fields(old, rule).items() if k != "id"}
            moved = order.index(rule["id"]) != position
            if patch or moved:
                cdn.update_rule(tx, rule["id"], patch, position=position if moved else None)
                order.remove(rule["id"])
                order.insert(position, rule["id"])

    def delete(self, ctx: Context, item: Item) -> None:
        cdn.delete(ctx.tx)

    def warnings(
        self, ctx: Context, action: str, before: Item | None, after: Item | None
    ) -> list[str]:
        if action != "delete":
            return []
        served = cdn.active_domains(ctx.tx)
        if not served:
            return []
        return [
            f"the project's {len(served)} active domain(s) lose their origins, cache rules and "
            "security settings: the edge sends them to the project's load balancer if it has "
            "exactly one, else answers 502"
        ]
