"""The WAF of a project: its settings and exclusions (desired state), its matches (observed).

Settings and exclusions live in the project's CDN config (``EdgeSecurity.waf``): every change
goes through the CDN config row, is recorded in the audit trail and bumps the revision, so it
reaches the edge like any CDN change (``services.cdn``). A project without a CDN config gets
an empty one (no origins: the edge answers 502 until it has one), as a first cache rule does.

Matches come from the edge nodes (``POST /api/v1/edge/nodes/{id}/waf``, the agent's
``waf_log``): one row per request that matched rules (``WafMatchRow``), the project being the
match's site. ``matches`` reads a project's newest first, filtered by request id, rule, host
and time, paged by id; the rows older than ``Settings.waf_match_retention_s`` are deleted by
the retention job (``services.retention``).

The false-positive workflow: a user sees a 403 naming a request id; ``matches`` with that
request id shows the rules that refused it; ``add_exclusion`` (rule + path) switches them off
for the path, and the same request passes once the edge has the new revision.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter
from sqlalchemy import func, insert, select

from edgeplane import metrics
from edgeplane.errors import InvalidInput, NotFound
from edgeplane.model.cdn import CDNConfigCreate, EdgeSecurity
from edgeplane.model.common import new_id
from edgeplane.model.enums import Role
from edgeplane.model.waf import (
    MAX_EXCLUSIONS,
    WafExclusion,
    WafExclusionCreate,
    WafMatch,
    WafMatchPage,
    WafRuleMatch,
    WafSettings,
    WafSettingsPatch,
    WafStatus,
)
from edgeplane.protocol.messages import WafReport
from edgeplane.services import cdn
from edgeplane.services.common import validate
from edgeplane.services.edge_nodes import touch
from edgeplane.store.db import Tx
from edgeplane.store.tables import CDNConfigRow, utcnow
from edgeplane.store.waf_tables import WafMatchRow

log = logging.getLogger(__name__)

MAX_LIMIT = 500
STATUS_WINDOW = timedelta(hours=24)

matches_received = Counter(
    "edgeplane_waf_match_reports",
    "WAF matches the edge nodes reported: stored, or dropped by a node over its bounds",
    ["outcome"],
    registry=metrics.REGISTRY,
)


# Matches --------------------------------------------------------------------------------


def store(tx: Tx, node_id: str, body: WafReport) -> int:
    """Store a node's report; the number of matches stored."""
    node = touch(tx, node_id)
    rows = [
        {
            "project_id": m.site,
            "domain": m.domain,
            "node_id": node.id,
            "request_id": m.request_id,
            "at": m.at,
            "method": m.method,
            "uri": m.uri,
            "client": m.client,
            "rules": [h.model_dump(mode="json") for h in m.rules],
            "rule_ids": "," + ",".join(str(h.rule) for h in m.rules) + ",",
            "anomaly_score": m.anomaly_score,
            "action": m.action,
            "status": m.status,
        }
        for m in body.matches
    ]
    if rows:
        tx.session.execute(insert(WafMatchRow), rows)
    matches_received.labels("stored").inc(len(rows))
    if body.dropped:
        matches_received.labels("dropped").inc(body.dropped)
    return len(rows)


def _match(row: WafMatchRow) -> WafMatch:
    return WafMatch(
        id=row.id,
        request_id=row.request_id,
        at=row.at,
        node=row.node_id,
        domain=row.domain,
        method=row.method,
        uri=row.uri,
        client=row.client,
        rules=[WafRuleMatch.model_validate(r) for r in row.rules or []],
        anomaly_score=row.anomaly_score,
        action="blocked" if row.action == "blocked" else "detected",
        status=row.status,
    )


def matches(
    tx: Tx,
    *,
    request_id: str | None = None,
    rule: int | None = None,
    host: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
    before: int | None = None,
) -> WafMatchPage:
    """The project's matches, newest first; ``before`` (an id): the page after it."""
    tx.actor.require(tx.project, Role.VIEWER)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput.at("limit", f"must be between 1 and {MAX_LIMIT}")
    q = select(WafMatchRow).where(WafMatchRow.project_id == tx.project)
    if request_id:
        q = q.where(WafMatchRow.request_id == request_id)
    if rule is not None:
        q = q.where(WafMatchRow.rule_ids.contains(f",{rule},"))
    if host:
        q = q.where(WafMatchRow.domain == host.strip().lower().rstrip("."))
    if since is not None:
        q = q.where(WafMatchRow.at >= since)
    if before is not None:
        q = q.where(WafMatchRow.id < before)
    rows = list(tx.session.scalars(q.order_by(WafMatchRow.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return WafMatchPage(
        items=[_match(r) for r in rows], next_before=rows[-1].id if more and rows else None
    )


# Settings and exclusions ------------------------------------------------------------------


def _row(tx: Tx, *, create: bool) -> CDNConfigRow | None:
    row = tx.session.get(CDNConfigRow, tx.project)
    if row is None and create:
        cdn.configure(tx, CDNConfigCreate())
        row = tx.session.get(CDNConfigRow, tx.project)
    return row


def _security(row: CDNConfigRow | None) -> EdgeSecurity:
    return EdgeSecurity.model_validate(row.security or {}) if row is not None else EdgeSecurity()


def settings(tx: Tx) -> WafSettings:
    tx.actor.require(tx.project, Role.VIEWER)
    return _security(_row(tx, create=False)).waf


def update_settings(tx: Tx, data: WafSettingsPatch | dict[str, Any]) -> WafSettings:
    """Change the mode, paranoia level or threshold (the fields given)."""
    tx.actor.require(tx.project, Role.EDITOR)
    patch = data if isinstance(data, WafSettingsPatch) else validate(WafSettingsPatch, data)
    row = _row(tx, create=True)
    assert row is not None
    before = cdn.audit_doc(row)
    security = _security(row)
    changes = patch.model_dump(exclude_none=True)
    waf = validate(WafSettings, {**security.waf.model_dump(mode="json"), **changes})
    if waf != security.waf:
        cdn.save_security(tx, row, security.model_copy(update={"waf": waf}), before)
    return waf


def exclusions(tx: Tx) -> list[WafExclusion]:
    return settings(tx).exclusions


def add_exclusion(tx: Tx, data: WafExclusionCreate | dict[str, Any]) -> WafExclusion:
    """Switch rules off for the project (under a path prefix when given)."""
    tx.actor.require(tx.project, Role.EDITOR)
    spec = data if isinstance(data, WafExclusionCreate) else validate(WafExclusionCreate, data)
    row = _row(tx, create=True)
    assert row is not None
    before = cdn.audit_doc(row)
    security = _security(row)
    current = security.waf.exclusions
    if len(current) >= MAX_EXCLUSIONS:
        raise InvalidInput.at("exclusions", f"a project has at most {MAX_EXCLUSIONS} exclusions")
    used = {e.id for e in current}
    if spec.id is not None and spec.id in used:
        raise InvalidInput.at("id", f"exclusion {spec.id!r} already exists")
    exclusion_id = spec.id or new_id("wafx")
    while exclusion_id in used:
        exclusion_id = new_id("wafx")
    exclusion = WafExclusion(id=exclusion_id, rules=spec.rules, path=spec.path, note=spec.note)
    waf = security.waf.model_copy(update={"exclusions": [*current, exclusion]})
    cdn.save_security(tx, row, security.model_copy(update={"waf": waf}), before)
    return exclusion


def delete_exclusion(tx: Tx, exclusion_id: str) -> None:
    tx.actor.require(tx.project, Role.EDITOR)
    row = _row(tx, create=False)
    security = _security(row)
    kept = [e for e in security.waf.exclusions if e.id != exclusion_id]
    if row is None or len(kept) == len(security.waf.exclusions):
        raise NotFound(f"WAF exclusion {exclusion_id!r} not found in project {tx.project!r}")
    before = cdn.audit_doc(row)
    waf = security.waf.model_copy(update={"exclusions": kept})
    cdn.save_security(tx, row, security.model_copy(update={"waf": waf}), before)


def status(tx: Tx) -> WafStatus:
    """The settings, the revision of the newest CDN change and the last day's matches."""
    waf = settings(tx)
    since = utcnow() - STATUS_WINDOW
    base = select(WafMatchRow).where(WafMatchRow.project_id == tx.project, WafMatchRow.at >= since)
    total = tx.session.scalar(select(func.count()).select_from(base.subquery())) or 0
    blocked = (
        tx.session.scalar(
            select(func.count()).select_from(base.where(WafMatchRow.action == "blocked").subquery())
        )
        or 0
    )
    top: dict[str, int] = {}
    for rules in tx.session.scalars(
        select(WafMatchRow.rules)
        .where(WafMatchRow.project_id == tx.project, WafMatchRow.at >= since)
        .order_by(WafMatchRow.id.desc())
        .limit(10_000)
    ):
        for hit in rules or []:
            key = str(hit.get("rule"))
            top[key] = top.get(key, 0) + 1
    best = dict(sorted(top.items(), key=lambda kv: (-kv[1], kv[0]))[:10])
    return WafStatus(
        project=tx.project,
        mode=waf.mode,
        paranoia_level=waf.paranoia_level,
        anomaly_threshold=waf.anomaly_threshold,
        exclusions=len(waf.exclusions),
        revision=cdn.config_revision(tx),
        matches_24h=int(total),
        blocked_24h=int(blocked),
        top_rules_24h=best,
    )
