"""The control plane's background work, run by ``edgeplane serve`` and ``edgeplane up``
through the one ``Runner`` (``edgeplane.services.runner``):

- the **liveness monitor** (every ``liveness_interval_s``): edge nodes whose heartbeat stopped
  or that report themselves unhealthy leave the GeoDNS answers, within ``node_timeout_s`` plus
  one interval plus the propagation of one snapshot;
- **re-verification** of verified domains (every ``reverify_interval_s`` per domain);
- the **world DNS check** of each domain's status (where it is delegated, whether it points at
  the edge), every ``WORLD_CHECK_S``;
- **edge deployment rollouts** (every ``liveness_interval_s``): timeouts, canaries that went
  offline (``edgeplane.services.rollouts``);
- **certificate orders** (``edgeplane.services.cert_orders``, every second): background
  orders whose replica stopped answering are claimed (one replica wins) and run again here;
- **certificate renewal** and expiry alerts (``edgeplane.certificates.renewal``), every
  ``renew_interval_s``, then the delivery of new alerts to the webhook.
- **OCSP staples** (``edgeplane.certificates.stapling``, every ``staple_interval_s``): the
  control plane fetches, checks and stores the OCSP response of every served certificate whose
  CA offers OCSP; a new one bumps the revision;
- the **TLS session ticket key rotation** (checked every minute): a revision bump when a period
  of ``snapshot.tickets.ROTATE_S`` starts, which brings every node the new keys;
- the **alert rules** (``edgeplane.services.alert_engine``, every ``alert_interval_s``) and
  the **delivery of notifications** (every second: what is due, with retries);
- **rollups and retention** (``edgeplane.services.retention``, every 5 minutes): minute
  traffic rolled up per hour, then what is past its retention deleted;
- **access log retention** (``edgeplane.services.access_logs``, every minute): lines older
  than ``access_log_retention_s`` go, and each domain that received lines keeps its newest
  ``access_log_per_domain``; likewise the edge functions' console lines
  (``edgeplane.services.function_obs``: ``function_log_retention_s``,
  ``function_log_per_function``);
- **budgets** (``edgeplane.services.budgets``, every ``budget_interval_s``): each project
  with budgets priced as of now, a ``budget`` alert per threshold newly reached this month.
- **configuration drift** (``edgeplane.iac.drift_check``, every ``drift_interval_s``): each
  project's live state against its last applied file, the ``config_drift_objects`` series.
- **security scores** (``edgeplane.services.security_scores``, checked every minute): each
  active domain probed from outside on every live edge node every
  ``security_score_interval_s``, then the compliance policies evaluated; and the **surface
  scan** of each live node's address every ``security_scan_interval_s``
  (``edgeplane.services.node_surface``);
- the **DR monitor** (``edgeplane.dr.monitor``, every second): each DR config's primary data
  center as the edge sees it; failover to the backup (or a request to confirm it) when it is
  down for ``dr_detect_s``, failback when it is healthy for ``dr_failback_after_s``;
- **DR drills** (``edgeplane.dr.drill``, every second): the drills asked for through the API,
  and each minute the scheduled ones that are due (``drill_every_days``: monthly);
- **scaling groups** (``edgeplane.scaling.controller``, every ``scaling_interval_s``): each
  group's instances moved along their steps, its metrics read and its size decided;
- **backups** (``edgeplane.backup.schedule``, checked every minute): a full weekly, an
  incremental daily, a configuration backup on every change, expired ones deleted; and the
  **verification** of every new backup, and daily of the newest again, by restoring it.

Each loop reads first and writes only on a change; network checks run outside transactions.
"""

from __future__ import annotations

import functools
import logging
import time
from datetime import datetime, timedelta
from threading import Event

from sqlalchemy import select

from edgeplane.backup import schedule as backup_schedule
from edgeplane.certificates import renewal, stapling
from edgeplane.dr import drill, monitor
from edgeplane.iac import drift_check
from edgeplane.scaling import controller as scaling_controller
from edgeplane.scaling import drivers as scaling_drivers
from edgeplane.services import (
    access_logs,
    alert_engine,
    alerts,
    budgets,
    cert_orders,
    compliance,
    domain_status,
    function_obs,
    function_rollouts,
    liveness,
    node_surface,
    notifications,
    retention,
    rollouts,
    secret_keys,
    security_scores,
    verification,
)
from edgeplane.services.log_retention import LogRetention
from edgeplane.services.runner import Job, Leadership, Runner
from edgeplane.settings import Settings
from edgeplane.snapshot import tickets
from edgeplane.snapshot.load import load_dns_env
from edgeplane.store.actor import LOCAL, PLATFORM_PROJECT
from edgeplane.store.db import Database
from edgeplane.store.tables import DomainRow, EdgeNodeRow, utcnow
from edgeplane.version import __version__

log = logging.getLogger("edgeplane.background")

RECHECK_EVERY_S = 60.0
WORLD_CHECK_S = 300.0
WORLD_BATCH = 50  # domains checked per read of the edge nodes and per transaction


def refresh_liveness(db: Database, settings: Settings) -> bool:
    now = utcnow()
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        nodes = list(tx.session.scalars(select(EdgeNodeRow)))
        unchanged = liveness.compute(nodes, now, settings.node_timeout_s) == sorted(
            liveness.live_ids(tx)
        )
    if unchanged:
        return False
    with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
        return liveness.refresh(tx, settings, now)


def advance_rollouts(db: Database, settings: Settings) -> int:
    """Time out and follow up edge deployment rollouts (nodes going offline, slow nodes)."""
    now = utcnow()
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        if not rollouts.in_progress(tx):
            return 0
    with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
        return rollouts.advance(tx, settings, now)


def advance_function_rollouts(db: Database, settings: Settings) -> int:
    """Time out and follow up edge function rollouts (nodes going offline, slow nodes)."""
    now = utcnow()
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        if not function_rollouts.in_progress(tx):
            return 0
    with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
        return function_rollouts.advance(tx, settings, now)


def recheck_domains(db: Database, settings: Settings, stopping: Event | None = None) -> int:
    """Re-verify the verified domains that are due; the number checked."""
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        due = verification.due_for_recheck(tx, settings, utcnow())
    for _project, name, method in due:
        if stopping is not None and stopping.is_set():
            break
        with db.read(LOCAL, PLATFORM_PROJECT) as tx:
            row = tx.session.get(DomainRow, name)
            if row is None:
                continue
            attempt = verification.Attempt(
                domain=name,
                method=method,
                token=str((row.verification or {}).get("token") or ""),
                expired=False,
            )
        outcome = verification.run(attempt, settings)
        with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
            verification.record_recheck(tx, name, outcome.result, settings)
        if not outcome.result.ok:
            log.warning("re-verification of %s failed: %s", name, outcome.result.reason)
    return len(due)


def check_world_dns(db: Database, settings: Settings, stopping: Event | None = None) -> int:
    """Ask the world's DNS about every domain not checked for ``WORLD_CHECK_S``; the number
    checked. The edge nodes (our name servers and addresses) are read once per
    ``WORLD_BATCH`` domains, and their results written in one transaction: at 10,000 domains
    a check read every node's state and wrote a transaction of its own, each a domain."""
    limit = utcnow() - timedelta(seconds=WORLD_CHECK_S)
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        due = [
            name
            for name, checks in tx.session.execute(select(DomainRow.name, DomainRow.checks))
            if not (checks or {}).get("checked_at")
            or datetime.fromisoformat(str(checks["checked_at"])) < limit
        ]
    checked, stopped = 0, False
    for start in range(0, len(due), WORLD_BATCH):
        with db.read(LOCAL, PLATFORM_PROJECT) as tx:
            nodes = load_dns_env(tx.session).nodes
        results = []
        for name in due[start : start + WORLD_BATCH]:
            if stopping is not None and stopping.is_set():
                stopped = True
                break
            ours, addresses = domain_status.world_targets(name, nodes)
            results.append((name, domain_status.check_world(name, ours, addresses, settings)))
        if results:
            with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
                for name, result in results:
                    domain_status.record_world(tx, name, result)
        checked += len(results)
        if stopped:
            break
    return checked


def score_domains(db: Database, settings: Settings, stopping: Event | None = None) -> int:
    """Score the active domains that are due (``services.security_scores``), prune the old
    evaluations, evaluate the compliance policies (of the projects scored; every one when
    none was); the number of domains scored."""
    now = utcnow()
    scored = security_scores.evaluate(
        db, settings, stopping, scored_before=security_scores.due_since(settings, now)
    )
    security_scores.prune(db, settings, now)
    compliance.evaluate_all(db, {project for project, _card in scored} or None)
    return len(scored)


def renew_certificates(db: Database, settings: Settings, stopping: Event | None = None) -> int:
    attempted = renewal.run_once(db, settings, stopping=stopping)
    alerts.deliver_pending(db, settings, LOCAL, PLATFORM_PROJECT)
    return attempted


class TicketKeyRotation:
    """Bumps the revision when a period of the TLS session ticket keys starts, so that every
    node gets the new keys (``snapshot.tickets``); nothing about the keys is written."""

    def __init__(self, rotate_s: int = tickets.ROTATE_S) -> None:
        self.rotate_s = rotate_s
        self.period: int | None = None  # the period seen last (None: not yet)

    def __call__(self, db: Database, now: float | None = None) -> bool:
        period = tickets.period_of(time.time() if now is None else now, self.rotate_s)
        if self.period is None or period == self.period:
            self.period = period  # at start: the snapshots built from now hold this period
            return False
        with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
            tx.record("rotate", "tls_ticket_keys", str(period), None, {"period": period},
                      global_object=True)  # fmt: skip
        self.period = period
        log.info("TLS session ticket keys rotated (period %d)", period)
        return True


def control_plane_jobs(db: Database, settings: Settings, stopping: Event) -> list[Job]:
    """Every periodic job of a control plane, for the runner (``stopping``: the runner's, which
    the jobs over many items look at between items)."""
    return [
        Job("liveness", settings.liveness_interval_s, lambda: refresh_liveness(db, settings)),
        Job(
            "edge deployment rollouts",
            settings.liveness_interval_s,
            lambda: advance_rollouts(db, settings),
        ),
        Job(
            "function rollouts",
            settings.liveness_interval_s,
            lambda: advance_function_rollouts(db, settings),
        ),
        Job("re-verification", RECHECK_EVERY_S, lambda: recheck_domains(db, settings, stopping)),
        Job("world DNS check", WORLD_CHECK_S / 10, lambda: check_world_dns(db, settings, stopping)),
        Job(
            "renewal", settings.renew_interval_s, lambda: renew_certificates(db, settings, stopping)
        ),
        Job(
            "certificate orders",
            1.0,
            functools.partial(cert_orders.Resumer(db, settings), stopping),
        ),
        Job(
            "OCSP staples",
            settings.staple_interval_s,
            lambda: stapling.run_once(db, stopping=stopping),
        ),
        Job("TLS ticket key rotation", 60.0, functools.partial(TicketKeyRotation(), db)),
        Job("secret re-encryption", 1.0, functools.partial(secret_keys.Reencryptor(db), stopping)),
        Job(
            "access log retention",
            access_logs.RETENTION_EVERY_S,
            functools.partial(LogRetention(access_logs.LINES), db, settings, stopping),
        ),
        Job(
            "function log retention",
            function_obs.RETENTION_EVERY_S,
            functools.partial(LogRetention(function_obs.LINES), db, settings, stopping),
        ),
        Job(
            "alert rules",
            settings.alert_interval_s,
            functools.partial(
                alert_engine.Engine(db, settings.alert_interval_s).evaluate, stopping
            ),
        ),
        Job("notifications", 1.0, lambda: notifications.deliver_due(db, stopping)),
        Job("rollups and retention", 300.0, lambda: retention.run_once(db, settings, stopping)),
        Job("budgets", settings.budget_interval_s, lambda: budgets.check_budgets(db, settings)),
        Job(
            "configuration drift",
            settings.drift_interval_s,
            lambda: drift_check.run_once(db, settings, stopping),
        ),
        Job(
            "security scores",
            min(settings.security_score_interval_s, 60.0),
            lambda: score_domains(db, settings, stopping),
        ),
        Job(
            "edge surface scan",
            min(settings.security_scan_interval_s, 60.0),
            lambda: node_surface.scheduled(db, settings, stopping),
        ),
        Job("DR monitor", 1.0, lambda: monitor.run_once(db, settings)),
        Job(
            "scaling groups",
            settings.scaling_interval_s,
            lambda: scaling_controller.run(db, settings, stopping),
            close=scaling_drivers.stop_local,
        ),
        Job("DR drills", 1.0, functools.partial(drill.Drills(db, settings), stopping)),
        Job(
            "backups",
            min(backup_schedule.CHECK_EVERY_S, settings.backup_incremental_every_s),
            functools.partial(backup_schedule.Backups(db, settings), stopping),
            close=backup_schedule.stop_streaming,
        ),
        Job(
            "backup verification",
            min(backup_schedule.CHECK_EVERY_S, settings.backup_verify_every_s),
            lambda: backup_schedule.run_verification(db, settings, stopping),
        ),
    ]


def control_plane_runner(db: Database, settings: Settings) -> Runner:
    """The runner of a control plane's background work: its jobs run on one replica at a
    time, the holder of the ``runner`` lease (``Leadership``)."""
    stopping = Event()
    leadership = Leadership(
        db,
        ttl_s=settings.leader_ttl_s,
        renew_s=settings.leader_renew_s,
        info={"url": settings.public_url or "", "version": __version__},
    )
    return Runner(control_plane_jobs(db, settings, stopping), stopping, leadership)
