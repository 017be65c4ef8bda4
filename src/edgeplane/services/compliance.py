"""Compliance policies per project and their evaluation.

A policy is a list of requirements from the catalogue (``model.security_score.REQUIREMENTS``);
each active domain of the project is evaluated against it from its newest security score
card (``posture.policy``). Where each (domain, requirement) stands is kept with the time its
status last changed (``compliance_states``), so the report says since when a requirement
fails. The ``compliance_failed`` series (1 per failing (domain, requirement), object
``domain/requirement``) feeds the built-in ``compliance-failed`` alert rule, which resolves
when the requirement passes again.

Evaluations run after each round of scores (``services.security_scores.run_once``) and at
once when a policy is set: no network I/O here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from edgeplane.model.enums import Role
from edgeplane.model.security_score import (
    REQUIREMENTS,
    CompliancePolicy,
    CompliancePolicyIn,
    ComplianceReport,
    DomainCompliance,
    Requirement,
    RequirementInfo,
    RequirementResult,
)
from edgeplane.posture import policy as evaluator
from edgeplane.services import security_scores
from edgeplane.services.common import validate
from edgeplane.store.actor import LOCAL, PLATFORM_PROJECT
from edgeplane.store.db import Database, Tx
from edgeplane.store.security_tables import CompliancePolicyRow, ComplianceStateRow
from edgeplane.store.tables import DomainRow, ProjectRow, utcnow

KIND = "compliance_policy"


def catalogue() -> list[RequirementInfo]:
    out = []
    for rid, (description, spec) in REQUIREMENTS.items():
        choices = list(spec) if isinstance(spec, tuple) and spec[0] != "int" else None
        default = None if spec is None else (spec[3] if spec[0] == "int" else spec[0])
        out.append(RequirementInfo(id=rid, description=description, value=default,
                                   values=choices))  # fmt: skip
    return out


def _requirements(row: CompliancePolicyRow | None) -> list[Requirement]:
    return [Requirement.model_validate(r) for r in (row.requirements if row else [])]


def _policy(project: str, row: CompliancePolicyRow | None) -> CompliancePolicy:
    return CompliancePolicy(
        project=project,
        requirements=_requirements(row),
        updated_at=row.updated_at if row else None,
        catalogue=catalogue(),
    )


def get_policy(tx: Tx) -> CompliancePolicy:
    tx.actor.require(tx.project, Role.VIEWER)
    return _policy(tx.project, tx.session.get(CompliancePolicyRow, tx.project))


def set_policy(tx: Tx, data: CompliancePolicyIn | dict[str, Any]) -> CompliancePolicy:
    """Replace the project's policy and evaluate it at once from the newest scores."""
    tx.actor.require(tx.project, Role.EDITOR)
    spec = validate(CompliancePolicyIn, data) if isinstance(data, dict) else data
    row = tx.session.get(CompliancePolicyRow, tx.project)
    before = [r.model_dump(mode="json") for r in _requirements(row)]
    after = [r.model_dump(mode="json") for r in spec.requirements]
    if row is None:
        row = CompliancePolicyRow(project_id=tx.project, requirements=after, updated_at=utcnow())
        tx.session.add(row)
    elif before != after:
        row.requirements = after
        row.updated_at = utcnow()
    tx.session.flush()
    if before != after:
        tx.record("update", KIND, tx.project, {"requirements": before}, {"requirements": after})
    evaluate_project(tx, tx.project)
    return _policy(tx.project, row)


def evaluate_project(tx: Tx, project: str, now: datetime | None = None) -> int:
    """Bring the project's compliance states up to date from its newest score cards; the
    number of states whose status changed (no access check: the caller made it)."""
    now = now or utcnow()
    requirements = _requirements(tx.session.get(CompliancePolicyRow, project))
    domains = list(
        tx.session.scalars(
            select(DomainRow.name).where(
                DomainRow.project_id == project, DomainRow.status == "active"
            )
        )
    )
    cards = security_scores.latest_cards(tx, project)
    states = {
        (s.domain, s.requirement): s
        for s in tx.session.scalars(
            select(ComplianceStateRow).where(ComplianceStateRow.project_id == project)
        )
    }
    wanted: set[tuple[str, str]] = set()
    changed = 0
    for domain in domains:
        card = cards.get(domain)
        checked = card.evaluated_at if card is not None else now
        for outcome in evaluator.evaluate(requirements, card):
            key = (domain, outcome.id)
            wanted.add(key)
            state = states.get(key)
            if state is None:
                tx.session.add(
                    ComplianceStateRow(
                        project_id=project,
                        domain=domain,
                        requirement=outcome.id,
                        value=outcome.value,
                        status=outcome.status,
                        evidence=outcome.evidence,
                        details=outcome.details,
                        since=now,
                        checked_at=checked,
                    )
                )
                changed += 1
                continue
            if state.status != outcome.status or state.value != outcome.value:
                state.since = now
                changed += 1
            if (state.status, state.value, state.evidence, state.details, state.checked_at) != (
                outcome.status, outcome.value, outcome.evidence, outcome.details, checked
            ):  # fmt: skip
                state.status, state.value = outcome.status, outcome.value
                state.evidence, state.details = outcome.evidence, outcome.details
                state.checked_at = checked
    for key, state in states.items():
        if key not in wanted:
            tx.session.delete(state)
    tx.session.flush()
    return changed


def evaluate_all(db: Database, projects: set[str] | None = None) -> int:
    """Evaluate the policies of ``projects`` (None: every project with a policy or states)."""
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        with_policy = set(tx.session.scalars(select(CompliancePolicyRow.project_id)))
        with_states = set(tx.session.scalars(select(ComplianceStateRow.project_id).distinct()))
        existing = set(tx.session.scalars(select(ProjectRow.id)))
    todo = (with_policy | with_states) & existing
    if projects is not None:
        todo &= projects | with_states
    changed = 0
    for project in sorted(todo):
        with db.transaction(LOCAL, project) as tx:
            changed += evaluate_project(tx, project)
    return changed


def report(tx: Tx) -> ComplianceReport:
    tx.actor.require(tx.project, Role.VIEWER)
    requirements = _requirements(tx.session.get(CompliancePolicyRow, tx.project))
    order: dict[str, int] = {r.id: i for i, r in enumerate(requirements)}
    per_domain: dict[str, list[RequirementResult]] = {}
    last: datetime | None = None
    for s in tx.session.scalars(
        select(ComplianceStateRow)
        .where(ComplianceStateRow.project_id == tx.project)
        .order_by(ComplianceStateRow.domain)
    ):
        if s.requirement not in order:
            continue
        per_domain.setdefault(s.domain, []).append(
            RequirementResult(
                id=s.requirement,
                value=s.value,
                status=s.status,
                evidence=s.evidence,
                details=dict(s.details or {}),
                since=s.since,
                checked_at=s.checked_at,
            )
        )
        last = s.checked_at if last is None else max(last, s.checked_at)
    domains = []
    for domain, results in sorted(per_domain.items()):
        results.sort(key=lambda r: order[r.id])
        failing = [r.id for r in results if r.status == "fail"]
        domains.append(
            DomainCompliance(
                domain=domain,
                compliant=all(r.status == "pass" for r in results),
                failing=failing,
                requirements=results,
            )
        )
    return ComplianceReport(
        project=tx.project,
        requirements=requirements,
        compliant=all(d.compliant for d in domains),
        failing=sum(len(d.failing) for d in domains),
        evaluated_at=last,
        domains=domains,
    )


def series_values(tx: Tx, project: str, selector: dict[str, Any]) -> dict[str, float]:
    """``compliance_failed``: 1 per failing (domain, requirement), 0 per passing one; object
    ``domain/requirement`` (unknown ones have no value)."""
    q = select(ComplianceStateRow).where(ComplianceStateRow.project_id == project)
    if "domain" in selector:
        q = q.where(ComplianceStateRow.domain == selector["domain"])
    if "requirement" in selector:
        q = q.where(ComplianceStateRow.requirement == selector["requirement"])
    return {
        f"{s.domain}/{s.requirement}": 1.0 if s.status == "fail" else 0.0
        for s in tx.session.scalars(q)
        if s.status in ("pass", "fail")
    }
