"""Security scores of the active domains, evaluated from the outside against the live edge
nodes (``edgeplane.posture``) and kept over time.

The background job (``edgeplane.services.jobs.score_domains``, every minute for the domains
not scored for ``security_score_interval_s``) reads what to probe in one read transaction
(``plan``), probes every (domain, live node) outside any transaction, a few at a time, scores
each domain (``posture.score``), stores the evaluations (``evaluate``), deletes the ones older
than ``security_score_retention_s`` (``prune``) and evaluates the compliance policies
(``services.compliance``). The alert rule engine reads two series of them:
``security_score`` (the newest score) and ``security_score_drop`` (the best score of the last
``BASELINE_S`` minus the newest: a domain whose HSTS was removed drops 15 points, and the
drop resolves when it recovers, or when the lower score has been the best for a week).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from threading import Event
from typing import Any

from sqlalchemy import delete, func, select

from edgeplane.certificates.internal_ca import InternalCA
from edgeplane.errors import NotFound
from edgeplane.model.enums import Role
from edgeplane.model.security_score import DomainScore, ScoreCard, ScorePoint, ScoreSummary
from edgeplane.posture import probe as probes
from edgeplane.posture import score as scorer
from edgeplane.posture.observed import DomainSeen
from edgeplane.services import liveness
from edgeplane.settings import Settings
from edgeplane.store.actor import LOCAL, PLATFORM_PROJECT
from edgeplane.store.db import Database, Tx
from edgeplane.store.security_tables import SecurityScoreRow
from edgeplane.store.tables import CDNConfigRow, DomainRow, EdgeNodeRow, utcnow

log = logging.getLogger("edgeplane.security")

BASELINE_S = 7 * 86400.0  # a drop is measured from the best score of this window
BATCH = 50  # at most this many domains probed between two writes
WAF_MODES = ("off", "detect", "block")


def waf_mode(security: Any) -> str:
    """The WAF mode of a stored CDN ``security`` document: ``security.waf.mode`` (off /
    detect / block), ``off`` when absent or not understood (the WAF model is another
    module's; this reads it without depending on it)."""
    waf = security.get("waf") if isinstance(security, dict) else None
    mode = waf.get("mode") if isinstance(waf, dict) else waf
    return mode if isinstance(mode, str) and mode in WAF_MODES else "off"


@dataclass(frozen=True)
class Job:
    """One domain to score: its project, its probes' targets and what the config says."""

    project: str
    domain: str
    targets: tuple[probes.Target, ...]
    waf_mode: str
    dnssec: bool


def trust_pem(tx: Tx, settings: Settings) -> str:
    """The roots a served certificate may chain to besides the system's: the internal CA's
    and those of ``security_trust_file``."""
    parts = [InternalCA.root_pem(tx.session) or ""]
    if settings.security_trust_file:
        try:
            parts.append(Path(settings.security_trust_file).read_text())
        except OSError as exc:
            log.warning("security_trust_file %s: %s", settings.security_trust_file, exc)
    return "\n".join(p for p in parts if p.strip())


def _expected_ds(tx: Tx, row: DomainRow) -> tuple[str, ...]:
    if not row.dnssec or not row.dnssec_key_encrypted:
        return ()
    from edgeplane.protocol.dnssec import ds_records

    try:
        return tuple(ds_records(row.name, tx.secrets.decrypt(row.dnssec_key_encrypted)))
    except Exception:  # a key that cannot be read: the DS is only compared, never needed
        return ()


def plan(
    tx: Tx,
    settings: Settings,
    domains: Iterable[str] | None = None,
    scored_before: datetime | None = None,
) -> list[Job]:
    """What to probe: every active domain (or those named; with ``scored_before``, those not
    scored since) on every live node with an address (read only)."""
    live = liveness.live_ids(tx)
    nodes = [
        n
        for n in tx.session.scalars(select(EdgeNodeRow).order_by(EdgeNodeRow.name))
        if n.id in live and n.address
    ]
    q = select(DomainRow).where(DomainRow.status == "active").order_by(DomainRow.name)
    if domains is not None:
        q = q.where(DomainRow.name.in_(list(domains)))
    rows = list(tx.session.scalars(q))
    if scored_before is not None:
        recent = set(
            tx.session.scalars(
                select(SecurityScoreRow.domain).where(SecurityScoreRow.at >= scored_before)
            )
        )
        rows = [r for r in rows if r.name not in recent]
    if not rows or not nodes:
        return []
    trust = trust_pem(tx, settings)
    configs = tx.session.execute(select(CDNConfigRow.project_id, CDNConfigRow.security))
    security = {project: waf_mode(sec) for project, sec in configs}
    jobs = []
    for row in rows:
        ds = _expected_ds(tx, row)
        targets = tuple(
            probes.Target(
                domain=row.name,
                node=n.name,
                address=str(n.address),
                https_port=n.https_port,
                http_port=n.http_port,
                dns_port=n.dns_port,
                trust_pem=trust,
                resolvers=settings.dns_resolvers,
                expected_ds=ds,
                timeout_s=settings.security_probe_timeout_s,
            )
            for n in nodes
        )
        jobs.append(Job(row.project_id, row.name, targets, security.get(row.project_id, "off"),
                        bool(row.dnssec)))  # fmt: skip
    return jobs


def probe_and_score(job: Job, now: datetime | None = None) -> ScoreCard:
    """Probe the domain on each of its nodes (network I/O) and score it."""
    seen = tuple(probes.probe(t) for t in job.targets)
    return scorer.score(
        DomainSeen(
            domain=job.domain,
            at=now or utcnow(),
            nodes=seen,
            waf_mode=job.waf_mode,
            dnssec_wanted=job.dnssec,
        )
    )


def store(tx: Tx, project: str, card: ScoreCard) -> SecurityScoreRow:
    row = SecurityScoreRow(
        project_id=project,
        domain=card.domain,
        at=card.evaluated_at,
        score=card.score,
        grade=card.grade,
        failing=scorer.failing(card),
        card=card.model_dump(mode="json"),
    )
    tx.session.add(row)
    return row


def evaluate(
    db: Database,
    settings: Settings,
    stopping: Event | None = None,
    domains: Iterable[str] | None = None,
    scored_before: datetime | None = None,
) -> list[tuple[str, ScoreCard]]:
    """Score the active domains (or those named, or those not scored since
    ``scored_before``) now; (project, card) of each scored. A stop is looked at between
    rounds of ``2 x security_probe_concurrency`` domains."""
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        jobs = plan(tx, settings, domains, scored_before)
    done: list[tuple[str, ScoreCard]] = []
    workers = max(1, settings.security_probe_concurrency)
    step = min(BATCH, 2 * workers)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="security-probe") as pool:
        for start in range(0, len(jobs), step):
            if stopping is not None and stopping.is_set():
                break
            batch = jobs[start : start + step]
            probed = list(zip(batch, pool.map(probe_and_score, batch), strict=True))
            for job, card in probed:
                if not scorer.told(card):  # its nodes did not answer: nothing to record
                    log.warning("security score of %s: no edge node answered", job.domain)
            kept = [(job, card) for job, card in probed if scorer.told(card)]
            if kept:
                with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
                    for job, card in kept:
                        store(tx, job.project, card)
            done.extend((job.project, card) for job, card in kept)
    return done


def prune(db: Database, settings: Settings, now: datetime | None = None) -> int:
    """Delete the evaluations older than the retention, keeping each domain's newest."""
    limit = (now or utcnow()) - timedelta(seconds=settings.security_score_retention_s)
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        old = tx.session.scalar(select(func.count()).where(SecurityScoreRow.at < limit))
    if not old:
        return 0
    with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
        newest = select(func.max(SecurityScoreRow.id)).group_by(
            SecurityScoreRow.project_id, SecurityScoreRow.domain
        )
        result = tx.session.execute(
            delete(SecurityScoreRow).where(
                SecurityScoreRow.at < limit, SecurityScoreRow.id.not_in(newest)
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)


def due_since(settings: Settings, now: datetime) -> datetime:
    """Domains scored before this are due (an interval ago, less a little, so that a job
    period of the interval itself does not skip every other round)."""
    return now - timedelta(seconds=settings.security_score_interval_s * 0.95)


def evaluate_now(db: Database, settings: Settings, tx_check: Tx, domain: str) -> str:
    """Check that the caller may score ``domain`` now (an editor of its project, the domain
    active); the domain's name. The probe itself runs after, outside the transaction."""
    from edgeplane.errors import Conflict

    tx_check.actor.require(tx_check.project, Role.EDITOR)
    name = domain.strip().lower().rstrip(".")
    row = tx_check.session.get(DomainRow, name)
    if row is None or row.project_id != tx_check.project:
        raise NotFound(f"domain {domain!r} not found")
    if row.status != "active":
        raise Conflict(f"domain {name!r} is {row.status}: only active domains are served")
    if not plan(tx_check, settings, [name]):
        raise Conflict("no live edge node with an address to probe the domain from")
    return name


# Reads ---------------------------------------------------------------------------------------


def _latest_rows(tx: Tx, project: str, domains: Sequence[str] | None = None
                 ) -> dict[str, SecurityScoreRow]:  # fmt: skip
    newest = (
        select(func.max(SecurityScoreRow.id))
        .where(SecurityScoreRow.project_id == project)
        .group_by(SecurityScoreRow.domain)
    )
    q = select(SecurityScoreRow).where(SecurityScoreRow.id.in_(newest))
    if domains is not None:
        q = q.where(SecurityScoreRow.domain.in_(list(domains)))
    return {r.domain: r for r in tx.session.scalars(q)}


def _best(tx: Tx, project: str, since: datetime, domain: str | None = None) -> dict[str, float]:
    q = (
        select(SecurityScoreRow.domain, func.max(SecurityScoreRow.score))
        .where(SecurityScoreRow.project_id == project, SecurityScoreRow.at >= since)
        .group_by(SecurityScoreRow.domain)
    )
    if domain is not None:
        q = q.where(SecurityScoreRow.domain == domain)
    return {d: float(s) for d, s in tx.session.execute(q)}


def _previous(tx: Tx, project: str, domain: str, before_id: int) -> float | None:
    value = tx.session.scalar(
        select(SecurityScoreRow.score)
        .where(
            SecurityScoreRow.project_id == project,
            SecurityScoreRow.domain == domain,
            SecurityScoreRow.id < before_id,
        )
        .order_by(SecurityScoreRow.id.desc())
        .limit(1)
    )
    return float(value) if value is not None else None


def latest_cards(tx: Tx, project: str) -> dict[str, ScoreCard]:
    """The newest score card of each of the project's domains (no access check)."""
    return {d: ScoreCard.model_validate(r.card) for d, r in _latest_rows(tx, project).items()}


def list_scores(tx: Tx) -> list[ScoreSummary]:
    """The newest score of each of the project's domains."""
    tx.actor.require(tx.project, Role.VIEWER)
    best = _best(tx, tx.project, utcnow() - timedelta(seconds=BASELINE_S))
    out = []
    for domain, row in sorted(_latest_rows(tx, tx.project).items()):
        out.append(
            ScoreSummary(
                domain=domain,
                score=row.score,
                grade=row.grade,
                previous_score=_previous(tx, tx.project, domain, row.id),
                best_score=best.get(domain),
                failing=list(row.failing or []),
                evaluated_at=row.at,
            )
        )
    return out


def domain_score(tx: Tx, domain: str, limit: int = 100) -> DomainScore:
    """A domain's newest score card and its history (newest first, at most ``limit``)."""
    tx.actor.require(tx.project, Role.VIEWER)
    name = domain.strip().lower().rstrip(".")
    row = _latest_rows(tx, tx.project, [name]).get(name)
    if row is None:
        owner = tx.session.get(DomainRow, name)
        if owner is None or owner.project_id != tx.project:
            raise NotFound(f"domain {domain!r} not found")
        raise NotFound(f"domain {name!r} has no security score yet (active and served?)")
    history = [
        ScorePoint.model_validate(
            {"at": r.at, "score": r.score, "grade": r.grade, "failing": list(r.failing or [])}
        )
        for r in tx.session.scalars(
            select(SecurityScoreRow)
            .where(SecurityScoreRow.project_id == tx.project, SecurityScoreRow.domain == name)
            .order_by(SecurityScoreRow.id.desc())
            .limit(limit)
        )
    ]
    card = ScoreCard.model_validate(row.card)
    best = _best(tx, tx.project, utcnow() - timedelta(seconds=BASELINE_S), name).get(name)
    return DomainScore(
        **card.model_dump(),
        previous_score=_previous(tx, tx.project, name, row.id),
        best_score=best,
        history=history,
    )


# Series (edgeplane.services.series) -----------------------------------------------------------


def series_values(
    tx: Tx, project: str, name: str, selector: dict[str, Any], now: datetime
) -> dict[str, float]:
    """``security_score`` (newest) or ``security_score_drop`` (best of the baseline window
    minus newest) per domain."""
    wanted = [selector["domain"]] if "domain" in selector else None
    latest = _latest_rows(tx, project, wanted)
    if name == "security_score":
        return {d: float(r.score) for d, r in latest.items()}
    best = _best(tx, project, now - timedelta(seconds=BASELINE_S))
    return {d: round(max(0.0, best.get(d, r.score) - r.score), 2) for d, r in latest.items()}
